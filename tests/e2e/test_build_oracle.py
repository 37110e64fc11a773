"""The same Dockerfile built by muelle and by a private dockerd's classic builder
(DOCKER_BUILDKIT=0): the image configs agree field by field, the history's empty_layer
flags agree, and the exported root filesystems hold the same entries with the same
types, modes and owners."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.docker import Dockerd
from tests.support.engine import Engine

pytestmark = pytest.mark.root

DOCKERFILE = """\
ARG BASE
FROM $BASE AS build
ARG GREETING=hello
ENV OUT=/out
RUN mkdir -p $OUT/sub && echo "$GREETING" > $OUT/greeting && ln $OUT/greeting $OUT/hard \\
 && ln -s greeting $OUT/soft && chmod 600 $OUT/sub

FROM ${BASE}
LABEL org.example.stage="final" version=1
ENV APP_HOME=/app PATH=/app/bin:$PATH
WORKDIR $APP_HOME/data/deep
COPY --from=build /out/ ./
COPY --chown=nobody:nogroup app.txt owned/
COPY dir /opt/dir/
COPY *.txt /txt/
ADD bundle.tar /unpacked/
RUN rm -rf /home && echo changed > /etc/motd && true
RUN true
USER nobody:nogroup
EXPOSE 8080 53/udp
VOLUME ["/cache", "/data"]
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s --timeout=2s --retries=2 CMD ["true"]
ONBUILD RUN echo triggered
ENTRYPOINT ["sh", "-c"]
CMD ["echo hi"]
"""
# Each engine gives a container its own /etc/hostname, hosts and resolv.conf; Docker adds
# /.dockerenv and /etc/mtab (its init layer), muelle the mount points of the image's
# volumes (created with the container). None of them is the image's.
NOT_THE_IMAGE = {".dockerenv", "etc/hostname", "etc/hosts", "etc/resolv.conf", "etc/mtab",
                 "cache", "data"}
FIELDS = ("Env", "Cmd", "Entrypoint", "WorkingDir", "User", "Labels", "ExposedPorts",
          "Volumes", "StopSignal", "Healthcheck", "OnBuild")


def _context(root: Path) -> Path:
    ctx = root / "ctx"
    (ctx / "dir" / "nested").mkdir(parents=True)
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    (ctx / "app.txt").write_text("app\n")
    (ctx / "b.txt").write_text("b\n")
    (ctx / "dir" / "nested" / "x").write_text("x\n")
    os.chmod(ctx / "dir" / "nested" / "x", 0o755)
    os.symlink("nested/x", ctx / "dir" / "link")
    src = root / "bundle"
    (src / "inner").mkdir(parents=True)
    (src / "inner" / "file").write_text("from the tar\n")
    with tarfile.open(ctx / "bundle.tar", "w") as tar:
        tar.add(src / "inner", arcname="inner")
    return ctx


def _entries(tar_path: Path) -> dict[str, tuple[str, int, int, int]]:
    out = {}
    with tarfile.open(tar_path) as tar:
        for m in tar.getmembers():
            name = m.name.removeprefix("./").rstrip("/")
            if not name or name in NOT_THE_IMAGE or name.split("/")[0] in ("dev", "proc",
                                                                           "sys"):
                continue
            kind = "link" if m.islnk() else m.type.decode()
            out[name] = (kind, m.mode & 0o7777, m.uid, m.gid)  # Go writes type bits too
    return out


def _masked(created_by: str) -> str:
    """History text without what cannot agree: the sources' content hash (Docker's is a
    tarsum) and HEALTHCHECK's (Docker prints its Go struct)."""
    text = re.sub(r"(file|dir|multi):[0-9a-f]{64}", r"\1:<hash>", created_by)
    return re.sub(r"HEALTHCHECK .*", "HEALTHCHECK <config>", text)


def _saved(run: Callable[..., Any], path: Path) -> dict[str, Any]:
    """The image config, as `save` writes it."""
    run("save", "-o", str(path), "oracle/built:1")
    with tarfile.open(path) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        return json.load(tar.extractfile(manifest[0]["Config"]))  # type: ignore[no-any-return, arg-type]


def test_build_matches_dockers_classic_builder(engine: Engine, image: str, dockerd: Dockerd,
                                               tmp_path: Path) -> None:
    ctx = _context(tmp_path)
    dockerd.docker("pull", image)
    env = dict(dockerd.env(), DOCKER_BUILDKIT="0")
    flags = ("--label", "from.cli=yes", "--label", "a.b=two words")
    theirs = subprocess.run(dockerd.argv("build", "-t", "oracle/built:1", "--build-arg",
                                         f"BASE={image}", *flags, str(ctx)),
                            env=env, capture_output=True, text=True, timeout=300)
    assert theirs.returncode == 0, theirs.stdout + theirs.stderr
    ours = engine.cli("build", "-t", "oracle/built:1", "--build-arg", f"BASE={image}",
                      *flags, str(ctx))
    try:
        # The step lines are the same text.
        steps = [ln for ln in ours.stdout.splitlines() if ln.startswith("Step ")]
        docker_steps = [ln for ln in theirs.stdout.splitlines() if ln.startswith("Step ")]
        assert steps == docker_steps, "\n".join(steps[-3:] + docker_steps[-3:])

        ours_cfg = _saved(engine.cli, tmp_path / "ours.tar")
        theirs_cfg = _saved(dockerd.docker, tmp_path / "theirs.tar")
        for field in FIELDS:
            assert ours_cfg["config"].get(field) == theirs_cfg["config"].get(field), field
        texts = [[_masked(h.get("created_by", "")) for h in cfg["history"]]
                 for cfg in (ours_cfg, theirs_cfg)]
        assert texts[0] == texts[1]
        empty = [[bool(h.get("empty_layer")) for h in cfg["history"]]
                 for cfg in (ours_cfg, theirs_cfg)]
        assert empty[0] == empty[1]
        assert len(ours_cfg["rootfs"]["diff_ids"]) == len(theirs_cfg["rootfs"]["diff_ids"])

        engine.cli("create", "--name", "oracle-ours", "oracle/built:1")
        dockerd.docker("create", "--name", "oracle-theirs", "oracle/built:1")
        engine.cli("export", "-o", str(tmp_path / "ours-fs.tar"), "oracle-ours")
        dockerd.docker("export", "-o", str(tmp_path / "theirs-fs.tar"), "oracle-theirs")
        mine, docker = _entries(tmp_path / "ours-fs.tar"), _entries(tmp_path / "theirs-fs.tar")
        assert sorted(set(mine) - set(docker)) == []
        assert sorted(set(docker) - set(mine)) == []
        assert {k: (v, docker[k]) for k, v in mine.items() if docker[k] != v} == {}
    finally:
        engine.cli("rm", "-f", "oracle-ours", check=False)
        engine.cli("rmi", "oracle/built:1", check=False)
        dockerd.docker("rm", "-f", "oracle-theirs", check=False)

