"""`POST /build` with the real clients: the docker CLI's classic builder (DOCKER_BUILDKIT=0),
docker-py ``images.build`` and docker-compose 1.29 ``build``; a failing RUN compared with a
private dockerd; compressed contexts; a client that hangs up mid-build."""

from __future__ import annotations

import bz2
import io
import json
import lzma
import socket
import subprocess
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from docker.errors import BuildError

from tests.compat.conftest import DockerCli
from tests.support import build_oracle as oracle
from tests.support.docker import Dockerd, started
from tests.support.engine import Engine

DOCKERFILE = """\
ARG BASE
FROM $BASE AS build
ARG GREETING=hello
RUN mkdir /out && echo "$GREETING" > /out/greeting

FROM $BASE AS final
COPY --from=build /out/greeting /greeting
COPY app.txt /app.txt
CMD ["cat", "/greeting", "/app.txt"]

FROM final AS extra
RUN echo never built with --target final
"""


@pytest.fixture(scope="module")
def classic(docker: DockerCli) -> DockerCli:
    return DockerCli(docker.binary, dict(docker.env, DOCKER_BUILDKIT="0"))


@pytest.fixture(scope="module")
def client(docker_engine: Engine) -> Iterator[docker.DockerClient]:
    c = docker.DockerClient(base_url=docker_engine.docker_host, timeout=120)
    yield c
    c.close()


def _context(root: Path, dockerfile: str = DOCKERFILE, name: str = "Dockerfile") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / name).write_text(dockerfile)
    (root / "app.txt").write_text("app\n")
    return root


def test_cli_build_with_flags_tags_and_runs(classic: DockerCli, pulled: str,
                                           tmp_path: Path) -> None:
    ctx = _context(tmp_path / "ctx", name="build.Dockerfile")
    iid = tmp_path / "iid"
    tag = "built/cli-" + ("debian" if classic.binary == "/usr/bin/docker" else "newer")
    done = classic("build", "-t", f"{tag}:1", "-t", f"{tag}:2", "-f",
                   str(ctx / "build.Dockerfile"), "--build-arg", f"BASE={pulled}",
                   "--build-arg", "GREETING=bonjour", "--target", "final", "--iidfile",
                   str(iid), "--label", "from=cli", str(ctx), timeout=180)
    try:
        assert "Step 1/" in done.stdout and "never built" not in done.stdout
        assert f"Successfully tagged {tag}:2" in done.stdout
        image_id = iid.read_text()
        assert image_id.startswith("sha256:")
        inspect = json.loads(classic("image", "inspect", f"{tag}:1").stdout)[0]
        assert inspect["Id"] == image_id
        assert inspect["Config"]["Labels"] == {"from": "cli"}
        assert classic("run", "--rm", f"{tag}:2").stdout == "bonjour\napp\n"
        # -q: the image ID alone, the same one (every step cached).
        quiet = classic("build", "-q", "-f", str(ctx / "build.Dockerfile"), "--build-arg",
                        f"BASE={pulled}", "--build-arg", "GREETING=bonjour", "--target",
                        "final", "--label", "from=cli", str(ctx), timeout=120)
        assert quiet.stdout.strip() == image_id
    finally:
        classic("rmi", f"{tag}:1", f"{tag}:2", check=False)


def test_cli_build_from_stdin_dockerfile(classic: DockerCli, pulled: str) -> None:
    done = classic("build", "-q", "-", input=f"FROM {pulled}\nENV FROM_STDIN=1\n")
    image_id = done.stdout.strip()
    env = json.loads(classic("image", "inspect", image_id).stdout)[0]["Config"]["Env"]
    assert "FROM_STDIN=1" in env


@pytest.fixture(scope="module")
def dockerd(pulled: str, busybox_ref: str) -> Iterator[Dockerd]:
    d = started()
    try:
        d.docker("pull", busybox_ref)
        yield d
    finally:
        d.close()


def _failing(classic: DockerCli, argv: list[str], env: dict[str, str],
             ctx: Path, quiet: bool) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*argv, "build", *(["-q"] if quiet else []), str(ctx)],
                          env=dict(env, DOCKER_BUILDKIT="0"), capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("quiet", [False, True], ids=["verbose", "quiet"])
def test_failing_run_exit_code_and_message_as_dockerd(classic: DockerCli, dockerd: Dockerd,
                                                     pulled: str, tmp_path: Path,
                                                     quiet: bool) -> None:
    ctx = _context(tmp_path / "ctx", f"FROM {pulled}\nRUN echo before; exit 5\n")
    ours = _failing(classic, [classic.binary], classic.env, ctx, quiet)
    theirs = _failing(classic, [classic.binary, "-H", dockerd.host], dockerd.env(), ctx,
                      quiet)
    assert (ours.returncode, theirs.returncode) == (5, 5)
    message = "The command '/bin/sh -c echo before; exit 5' returned a non-zero code: 5"

    def shape(p: subprocess.CompletedProcess[str]) -> tuple[list[str], list[str]]:
        # The lines both print, without the IDs that differ and the CLI's own notes.
        keep = ("Step ", "before", "The command")
        return ([ln for ln in p.stdout.splitlines() if ln.startswith(keep)],
                [ln for ln in p.stderr.splitlines() if ln.startswith(keep)])

    assert shape(ours) == shape(theirs)
    assert ours.stderr.rstrip().endswith(message)
    assert classic("ps", "-aq").stdout == ""


def test_bad_dockerfile_is_an_error_response(classic: DockerCli, tmp_path: Path) -> None:
    ctx = _context(tmp_path / "ctx", "FROM scratch\nFOO bar\n")
    done = classic("build", str(ctx), check=False)
    assert done.returncode == 1
    assert "Error response from daemon:" in done.stderr and "line 2" in done.stderr
    assert "FOO" in done.stderr


def test_docker_py_build_logs_and_error(client: docker.DockerClient, pulled: str,
                                       tmp_path: Path) -> None:
    ctx = _context(tmp_path / "ctx")
    image, stream = client.images.build(path=str(ctx), tag="built/py:1", rm=True,
                                        buildargs={"BASE": pulled}, target="final")
    logs = list(stream)
    try:
        assert image.id.startswith("sha256:") and "built/py:1" in image.tags
        lines = [x.get("stream", "") for x in logs]
        assert any(ln.startswith("Step 1/") for ln in lines)
        assert {"ID": image.id} in [x.get("aux") for x in logs]
        assert client.containers.run(image.id, remove=True) == b"hello\napp\n"
        # A gzip context (docker-py's gzip=True) gives the same image from the cache.
        again, _ = client.images.build(path=str(ctx), gzip=True, rm=True, target="final",
                                       buildargs={"BASE": pulled})
        assert again.id == image.id
    finally:
        client.images.remove("built/py:1")
    bad = _context(tmp_path / "bad", f"FROM {pulled}\nRUN echo out; exit 3\n")
    with pytest.raises(BuildError) as err:
        client.images.build(path=str(bad), rm=True)
    assert err.value.msg == "The command '/bin/sh -c echo out; exit 3' returned a non-zero " \
                            "code: 3"
    shown = [x.get("stream") for x in err.value.build_log]
    assert "out\n" in shown


def _tar(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, text in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    return buf.getvalue()


@pytest.mark.parametrize("compress", [bz2.compress, lzma.compress], ids=["bzip2", "xz"])
def test_compressed_contexts(client: docker.DockerClient, pulled: str, compress: object
                             ) -> None:
    assert callable(compress)
    body = compress(_tar({"Dockerfile": f"FROM {pulled}\nCOPY f /f\n", "f": "x"}))
    api = client.api
    out = [json.loads(chunk) for chunk in api.build(
        fileobj=io.BytesIO(body), custom_context=True, rm=True, decode=False)]
    ids = [x["aux"]["ID"] for x in out if "aux" in x]
    assert len(ids) == 1, out
    client.images.remove(ids[0])


def test_unsupported_options_are_refused_by_name(client: docker.DockerClient, pulled: str
                                                 ) -> None:
    body = _tar({"Dockerfile": f"FROM {pulled}\n"})
    with pytest.raises(docker.errors.APIError) as err:
        list(client.api.build(fileobj=io.BytesIO(body), custom_context=True,
                              extra_hosts={"a": "1.2.3.4"}))
    assert err.value.status_code == 400 and "extrahosts" in str(err.value)
    with pytest.raises(docker.errors.APIError) as err:
        list(client.api.build(fileobj=io.BytesIO(body), custom_context=True,
                              buildargs="not json"))  # type: ignore[arg-type]
    assert err.value.status_code == 400


def test_client_hanging_up_cancels_the_build(docker_engine: Engine, classic: DockerCli,
                                             pulled: str) -> None:
    body = _tar({"Dockerfile": f"FROM {pulled}\nRUN echo started; sleep 600\n"})
    path = docker_engine.docker_host.removeprefix("unix://")
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(path)
        s.sendall(b"POST /v1.41/build?rm=1 HTTP/1.1\r\nHost: d\r\nContent-Type: "
                  b"application/x-tar\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        seen = b""
        while b'"started\\n"' not in seen:  # the RUN's output, not its Step line
            data = s.recv(65536)
            assert data, seen
            seen += data
        assert classic("ps", "-aq").stdout.strip() != ""  # the RUN step's container
    # Gone: the step stops and its container is removed (bounded wait, no sleep-based
    # timing assertion).
    for _ in range(300):
        if classic("ps", "-aq").stdout.strip() == "":
            break
        time.sleep(0.1)
    assert classic("ps", "-aq").stdout.strip() == ""


def test_compose_build(docker_engine: Engine, pulled: str, tmp_path: Path) -> None:
    project = tmp_path / "proj"
    _context(project / "app")
    (project / "docker-compose.yml").write_text(
        "version: '3.8'\nservices:\n  web:\n    build:\n      context: ./app\n"
        f"      args:\n        BASE: {pulled}\n        GREETING: compose\n"
        "      target: final\n    image: built/compose:1\n")
    env = {"DOCKER_HOST": docker_engine.docker_host, "PATH": "/usr/bin:/bin",
           "DOCKER_CONFIG": str(tmp_path / "cfg"), "COMPOSE_DOCKER_CLI_BUILD": "0"}
    done = subprocess.run(["docker-compose", "-p", "cb", "build"], cwd=project, env=env,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Successfully built" in done.stdout + done.stderr
    try:
        c = docker.DockerClient(base_url=docker_engine.docker_host)
        try:
            assert c.containers.run("built/compose:1", remove=True) == b"compose\napp\n"
        finally:
            c.close()
    finally:
        docker_engine.cli("rmi", "built/compose:1", check=False)


def test_builder_prune(classic: DockerCli, pulled: str, tmp_path: Path) -> None:
    ctx = _context(tmp_path / "ctx", f"FROM {pulled}\nRUN echo x > /x\nENV A=1\n")
    classic("build", "-q", "-t", "built/prune:1", str(ctx))
    try:
        out = classic("builder", "prune", "-f").stdout
        assert "Deleted build cache objects:" in out and "Total reclaimed space:" in out
        assert "Using cache" not in classic("build", "-t", "built/prune:1", str(ctx)).stdout
    finally:
        classic("rmi", "built/prune:1", check=False)


def test_intermediate_images_are_listed_with_all_only(classic: DockerCli, pulled: str,
                                                     tmp_path: Path) -> None:
    """As dockerd: a build's step images have children, so `docker images` hides them and
    `docker images -a` lists them as <none>; a failed build's last step has none: shown."""
    ctx = _context(tmp_path / "ctx", f"FROM {pulled}\nRUN echo 1 > /1\nRUN echo 2 > /2\n"
                                     "ENV DONE=1\n")
    image_id = classic("build", "-q", "-t", "built/steps:1", str(ctx)).stdout.strip()

    def untagged(*flags: str) -> set[str]:
        out = classic("images", *flags, "--no-trunc", "--format",
                      "{{.Repository}} {{.ID}}").stdout
        return {ln.split()[1] for ln in out.splitlines() if ln.startswith("<none>")}

    try:
        hidden = untagged("-a") - untagged()
        assert len(hidden) == 2 and image_id not in hidden
        bad = _context(tmp_path / "bad", f"FROM {pulled}\nRUN echo {uuid.uuid4()} > /3\n"
                                         "RUN exit 1\n")  # never cached before
        before = untagged()
        assert classic("build", str(bad), check=False).returncode == 1
        assert len(untagged() - before) == 1  # the last image made, as dockerd shows it
    finally:
        classic("rmi", "built/steps:1", check=False)


def test_cli_build_matches_dockerd(classic: DockerCli, dockerd: Dockerd, pulled: str,
                                   tmp_path: Path) -> None:
    """The oracle's Dockerfile (every instruction; tests/support/build_oracle.py) built
    by the docker CLI's classic builder against muelle's Docker API and against a private
    dockerd: the same step lines, config, history and exported rootfs."""
    ctx = oracle.context(tmp_path)
    ref = "oracle/cli:1"
    theirs_cli = DockerCli(classic.binary, dict(dockerd.env(), DOCKER_HOST=dockerd.host,
                                                DOCKER_BUILDKIT="0"))
    argv = ("build", "--no-cache", "-t", ref, "--build-arg", f"BASE={pulled}",
            *oracle.LABEL_FLAGS, str(ctx))
    ours = classic(*argv, timeout=300).stdout
    theirs = theirs_cli(*argv, timeout=300).stdout
    try:
        assert oracle.step_lines(ours) == oracle.step_lines(theirs) != []
        oracle.assert_same_images(classic, theirs_cli, ref, tmp_path,
                                  names=("cli-oracle-ours", "cli-oracle-theirs"))
    finally:
        classic("rm", "-f", "cli-oracle-ours", check=False)
        classic("rmi", ref, check=False)
        theirs_cli("rm", "-f", "cli-oracle-theirs", check=False)
        theirs_cli("rmi", ref, check=False)
