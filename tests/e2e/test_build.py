"""`muelle build` against a whole engine and the busybox test image: a multi-stage
Dockerfile with COPY --from, RUN, ENV/ARG, USER/WORKDIR and .dockerignore; the cache on a
second build; a failing RUN; and the built image running."""

from __future__ import annotations

import functools
import http.server
import json
import re
import signal
import subprocess
import tarfile
import threading
import time
from pathlib import Path

import pytest

from engine import launcher
from tests.support.engine import CLI, Engine

pytestmark = pytest.mark.root

DOCKERFILE = """\
# a comment
ARG BASE
FROM $BASE AS build
ARG GREETING=hello
ENV OUT=/out \\
    NAME="build stage"
WORKDIR /src
COPY . .
RUN mkdir -p $OUT && echo "$GREETING from $NAME" > $OUT/greeting \\
 && cat app.txt >> $OUT/greeting && ls -A /src > $OUT/listing

FROM ${BASE}
LABEL org.example.stage="final" version=1
ENV APP_HOME=/app
WORKDIR $APP_HOME/data
COPY --from=build /out/ ./
COPY --chown=nobody:nogroup app.txt sub/owned.txt
COPY --chmod=750 sub/ /opt/sub/
USER nobody
EXPOSE 8080 53/udp
VOLUME /cache
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s --retries=2 CMD ["true"]
ONBUILD RUN echo triggered
ENTRYPOINT ["sh", "-c"]
CMD ["cat greeting; id -u; pwd"]
"""


def _context(tmp_path: Path, dockerfile: str) -> Path:
    """A build context of just this Dockerfile."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(dockerfile)
    return ctx


@pytest.fixture
def context(tmp_path: Path) -> Path:
    ctx = tmp_path / "ctx"
    (ctx / "sub").mkdir(parents=True)
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    (ctx / "app.txt").write_text("app data\n")
    (ctx / "sub" / "tool.sh").write_text("echo tool\n")
    (ctx / "secret.key").write_text("do not send")
    (ctx / "logs").mkdir()
    (ctx / "logs" / "a.log").write_text("x")
    (ctx / "keep.log").write_text("kept")
    (ctx / ".dockerignore").write_text("secret.key\n*.log\nlogs\n!keep.log\n")
    return ctx


def test_multi_stage_build_runs_and_caches(engine: Engine, image: str, context: Path,
                                           tmp_path: Path) -> None:
    iid = tmp_path / "iid"
    first = engine.cli("build", "-t", "demo/built:1", "-t", "demo/built:2",
                       "--build-arg", f"BASE={image}", "--iidfile", str(iid), str(context))
    out = first.stdout
    try:
        assert re.search(r"^Step 1/22 : ARG BASE$", out, re.M), out
        assert "Step 2/22 : FROM $BASE AS build" in out
        assert re.search(r"^ ---> Running in [0-9a-f]{12}$", out, re.M)
        assert "Using cache" not in out
        image_id = iid.read_text()
        assert image_id.startswith("sha256:")
        assert f"Successfully built {image_id[7:19]}\n" in out
        assert "Successfully tagged demo/built:1\n" in out
        assert "Successfully tagged demo/built:2\n" in out

        run = engine.cli("run", "--rm", "demo/built:1").stdout
        # .dockerignore left out secret.key and the logs, kept keep.log
        assert run.split("\n") == ["hello from build stage", "app data", "65534",
                                   "/app/data", ""]
        listing = engine.cli("run", "--rm", "demo/built:1", "cat listing").stdout.split()
        assert listing == [".dockerignore", "Dockerfile", "app.txt", "keep.log", "sub"]
        stat = engine.cli("run", "--rm", "-u", "0", "demo/built:1",
                          "stat -c '%U:%G %a %n' sub/owned.txt /opt/sub/tool.sh").stdout
        assert stat.split("\n")[:2] == ["nobody:nogroup 644 sub/owned.txt",
                                        "root:root 750 /opt/sub/tool.sh"]

        doc = json.loads(engine.cli("inspect", "demo/built:1").stdout)[0]["Config"]
        assert doc["Entrypoint"] == ["sh", "-c"]
        assert doc["Cmd"] == ["cat greeting; id -u; pwd"]
        assert doc["WorkingDir"] == "/app/data" and doc["User"] == "nobody"
        assert "APP_HOME=/app" in doc["Env"] and not any("OUT=" in e for e in doc["Env"])
        assert doc["Labels"] == {"org.example.stage": "final", "version": "1"}
        assert set(doc["ExposedPorts"]) == {"8080/tcp", "53/udp"}
        assert set(doc["Volumes"]) == {"/cache"} and doc["StopSignal"] == "SIGINT"

        # --pull fetches the base again; it is the same image, so the cache still holds
        second = engine.cli("build", "--pull", "-t", "demo/built:1", "--build-arg",
                            f"BASE={image}", str(context)).stdout
        assert "Digest: sha256:" in second
        # every step but the ARG before FROM and the FROMs
        assert second.count(" ---> Using cache") == 19, second
        assert f"Successfully built {image_id[7:19]}" in second
        # Changing a copied file invalidates from that COPY on, and only then.
        (context / "app.txt").write_text("new data\n")
        third = engine.cli("build", "--build-arg", f"BASE={image}", str(context)).stdout
        assert third.count(" ---> Using cache") == 6, third
    finally:
        engine.cli("rmi", "demo/built:1", "demo/built:2", check=False)


def test_failing_run_shows_output_and_code(engine: Engine, image: str, tmp_path: Path) -> None:
    ctx = _context(tmp_path, f"FROM {image}\nRUN echo about to fail; exit 3\n")
    proc = engine.cli("build", str(ctx), check=False)
    assert proc.returncode == 1
    assert "about to fail" in proc.stdout
    assert proc.stderr.strip() == ("The command '/bin/sh -c echo about to fail; exit 3' "
                                   "returned a non-zero code: 3")
    # the step's container is gone
    assert engine.cli("ps", "-aq").stdout.strip() == ""


def test_bad_dockerfile_names_the_line(engine: Engine, image: str, tmp_path: Path) -> None:
    ctx = _context(tmp_path, f"FROM {image}\nNOPE x\n")
    proc = engine.cli("build", str(ctx), check=False)
    assert proc.returncode == 1
    assert "line 2: unknown instruction: NOPE" in proc.stderr
    (ctx / "Dockerfile").write_text(f"FROM {image}\nCOPY ../outside /x\n")
    proc = engine.cli("build", str(ctx), check=False)
    assert "forbidden path outside the build context" in proc.stderr


def test_stdin_dockerfile_quiet_and_target(engine: Engine, image: str) -> None:
    df = (f"FROM {image} AS one\nRUN echo one > /one\n"
          f"FROM {image} AS two\nRUN echo two > /two\n").encode()
    proc = engine.cli("build", "-q", "--target", "one", "-t", "demo/one:1", "-", input=df)
    try:
        assert re.fullmatch(r"sha256:[0-9a-f]{64}\n", proc.stdout), proc.stdout
        out = engine.cli("run", "--rm", "demo/one:1", "sh", "-c", "cat /one; ls /two",
                         check=False)
        assert out.stdout == "one\n" and out.returncode != 0
    finally:
        engine.cli("rmi", "demo/one:1", check=False)


def test_interrupted_build_leaves_no_container(engine: Engine, image: str,
                                               tmp_path: Path) -> None:
    ctx = _context(tmp_path, f"FROM {image}\nRUN echo started; sleep 600\n")
    proc = subprocess.Popen([CLI, "build", str(ctx)], env=engine.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line == "started\n":
                break
        assert engine.cli("ps", "-aq").stdout.strip() != ""
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # The gateway notices the client left, stops the step and removes its container.
    deadline = time.monotonic() + 60
    while engine.cli("ps", "-aq").stdout.strip():
        assert time.monotonic() < deadline, "the build's container was not removed"
        time.sleep(0.2)
    assert not list((engine.root / "gateway" / "builds").iterdir())


def test_scratch_build_and_a_consistent_store(engine: Engine, image: str,
                                              tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "hello").write_text("hi\n")
    (ctx / "Dockerfile").write_text('FROM scratch\nLABEL a=b\nCOPY --chmod=755 hello /data/\n'
                                    'CMD ["/data/hello"]\n')
    engine.cli("build", "-t", "demo/scratch:1", str(ctx))
    try:
        doc = json.loads(engine.cli("inspect", "demo/scratch:1").stdout)[0]
        assert len(doc["RootFS"]["Layers"]) == 1 and doc["Config"]["Cmd"] == ["/data/hello"]
        engine.cli("create", "--name", "from-scratch", "demo/scratch:1")
        out = engine.cli("export", "-o", str(tmp_path / "fs.tar"), "from-scratch")
        assert out.returncode == 0
        with tarfile.open(tmp_path / "fs.tar") as tar:
            assert {"data", "data/hello"} <= set(tar.getnames())
        assert "no problems found" in engine.cli("system", "check").stdout
    finally:
        engine.cli("rm", "-f", "from-scratch", check=False)
        engine.cli("rmi", "demo/scratch:1", check=False)


def test_run_steps_use_the_build_network(engine: Engine, image: str, tmp_path: Path) -> None:
    ctx = _context(tmp_path, f"FROM {image}\nRUN ls /sys/class/net > /nets\n"
                                    'CMD ["cat", "/nets"]\n')
    engine.cli("build", "-t", "demo/nets:1", str(ctx))
    # The network is not part of a step's cache key (nor is it in Docker's): --no-cache.
    engine.cli("build", "--no-cache", "--network", "none", "-t", "demo/nets:2", str(ctx))
    try:
        assert engine.cli("run", "--rm", "demo/nets:1").stdout.split() == ["eth0", "lo"]
        assert engine.cli("run", "--rm", "demo/nets:2").stdout.split() == ["lo"]
    finally:
        engine.cli("rmi", "demo/nets:1", "demo/nets:2", check=False)


def test_context_tar_on_stdin_and_copy_from_an_image(engine: Engine, image: str,
                                                     tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "Dockerfile").write_text(f"FROM {image}\nCOPY --from={image} /etc/passwd /copied\n"
                                    "COPY note /note\n")
    (src / "note").write_text("from the tar\n")
    archive = tmp_path / "ctx.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src, arcname=".")
    with archive.open("rb") as f:
        proc = subprocess.run([CLI, "build", "-t", "demo/stdin:1", "-"], stdin=f,
                              env=engine.env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    try:
        out = engine.cli("run", "--rm", "demo/stdin:1", "sh", "-c",
                         "cat /note; cmp /copied /etc/passwd && echo same").stdout
        assert out == "from the tar\nsame\n"
    finally:
        engine.cli("rmi", "demo/stdin:1", check=False)


def test_cache_survives_a_gateway_restart(engine: Engine, image: str, tmp_path: Path) -> None:
    ctx = _context(tmp_path, f"FROM {image}\nRUN echo $$ > /pid\nENV DONE=1\n")
    first = engine.cli("build", str(ctx)).stdout
    launcher.stop(engine.cfg, services=("gateway",))
    launcher.start(engine.cfg, str(engine.config_file), services=("gateway",))
    again = engine.cli("build", str(ctx)).stdout
    assert again.count(" ---> Using cache") == 2, again
    assert first.splitlines()[-1] == again.splitlines()[-1]  # Successfully built <same>


def test_add_of_a_url(engine: Engine, image: str, tmp_path: Path) -> None:
    www = tmp_path / "www"
    www.mkdir()
    (www / "notes.txt").write_text("served\n")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    url = f"http://127.0.0.1:{server.server_address[1]}/notes.txt"
    (ctx / "Dockerfile").write_text(f"FROM {image}\nADD {url} /srv/\n")
    try:
        engine.cli("build", "-t", "demo/url:1", str(ctx))
        out = engine.cli("run", "--rm", "demo/url:1", "sh", "-c",
                         "cat /srv/notes.txt; stat -c '%a %u' /srv/notes.txt").stdout
        assert out == "served\n600 0\n"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
        engine.cli("rmi", "demo/url:1", check=False)
