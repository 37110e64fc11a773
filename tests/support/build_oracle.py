"""The Dockerfile that exercises every instruction, and how two builds of it are compared:
the step lines, the image config field by field, history (text and empty_layer flags), the
layer count and the exported rootfs entry by entry. Shared by tests/e2e/test_build_oracle.py
(muelle's CLI vs a private dockerd's classic builder) and tests/compat/test_build.py (the
docker CLI's classic builder against muelle's Docker API vs the same against dockerd)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
# The flags both builds get (labels from the command line, one with a space).
LABEL_FLAGS = ("--label", "from.cli=yes", "--label", "a.b=two words")
# Each engine gives a container its own /etc/hostname, hosts and resolv.conf; Docker adds
# /.dockerenv and /etc/mtab (its init layer), muelle the mount points of the image's
# volumes (created with the container). None of them is the image's.
NOT_THE_IMAGE = {".dockerenv", "etc/hostname", "etc/hosts", "etc/resolv.conf", "etc/mtab",
                 "cache", "data"}
FIELDS = ("Env", "Cmd", "Entrypoint", "WorkingDir", "User", "Labels", "ExposedPorts",
          "Volumes", "StopSignal", "Healthcheck", "OnBuild")

Run = Callable[..., Any]  # a CLI: run("save", "-o", path, ref), raising when it fails


def context(root: Path) -> Path:
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


Entry = tuple[str, int, int, int, str]


def entries(tar_path: Path, skip: frozenset[str] | set[str] = frozenset()) -> dict[str, Entry]:
    """Each entry of an exported rootfs: kind, mode, owner, and what it holds (a regular
    file's or hardlink's content digest, a symlink's target). ``skip``: more names that are
    not the image's (the mount points of its volumes)."""
    out: dict[str, Entry] = {}
    digests: dict[str, str] = {}
    with tarfile.open(tar_path) as tar:
        for m in tar.getmembers():
            name = m.name.removeprefix("./").rstrip("/")
            what = ""
            if m.isfile():
                data = tar.extractfile(m).read()  # type: ignore[union-attr]
                what = digests[name] = hashlib.sha256(data).hexdigest()
            elif m.islnk():
                what = digests.get(m.linkname.removeprefix("./"), "")
            elif m.issym():
                what = m.linkname
            if not name or name in NOT_THE_IMAGE | skip or name.split("/")[0] in (
                    "dev", "proc", "sys"):
                continue
            kind = "link" if m.islnk() else m.type.decode()
            out[name] = (kind, m.mode & 0o7777, m.uid, m.gid, what)  # Go writes type bits too
    return out


def masked(created_by: str) -> str:
    """History text without what cannot agree: the sources' content hash (Docker's is a
    tarsum) and HEALTHCHECK's (Docker prints its Go struct)."""
    text = re.sub(r"(file|dir|multi):[0-9a-f]{64}", r"\1:<hash>", created_by)
    return re.sub(r"HEALTHCHECK .*", "HEALTHCHECK <config>", text)


def saved(run: Run, path: Path, ref: str) -> dict[str, Any]:
    """The image config, as `save` writes it."""
    run("save", "-o", str(path), ref)
    with tarfile.open(path) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        return json.load(tar.extractfile(manifest[0]["Config"]))  # type: ignore[no-any-return, arg-type]


def step_lines(output: str) -> list[str]:
    return [ln for ln in output.splitlines() if ln.startswith("Step ")]


def _unset(field: str, config: dict[str, Any]) -> Any:
    return None if config.get(field) == "" else config.get(field)


def _same_history(ours_cfg: dict[str, Any], theirs_cfg: dict[str, Any]) -> None:
    texts = [[masked(h.get("created_by", "")) for h in cfg["history"]]
             for cfg in (ours_cfg, theirs_cfg)]
    assert texts[0] == texts[1], "\n".join(f"{a} | {b}" for a, b in zip(*texts, strict=False))
    empty = [[bool(h.get("empty_layer")) for h in cfg["history"]]
             for cfg in (ours_cfg, theirs_cfg)]
    assert empty[0] == empty[1], f"empty_layer: {empty}"


def assert_same_images(ours: Run, theirs: Run, ref: str, tmp_path: Path,
                       names: tuple[str, str] = ("oracle-ours", "oracle-theirs"),
                       history: bool = True) -> None:
    """``ref`` as built on each side: config field by field, history (unless not
    ``history``: an image BuildKit built), layer count, and the rootfs of a container of
    each (created as ``names``; the caller removes them)."""
    ours_cfg = saved(ours, tmp_path / "ours.tar", ref)
    theirs_cfg = saved(theirs, tmp_path / "theirs.tar", ref)
    for field in FIELDS:
        # Docker writes an unset WorkingDir or User as "" (no omitempty), muelle leaves it out.
        mine = ours_cfg["config"].get(field) or _unset(field, ours_cfg["config"])
        docker = theirs_cfg["config"].get(field) or _unset(field, theirs_cfg["config"])
        assert mine == docker, f"{field}: {mine!r} != {docker!r}"
    if history:
        _same_history(ours_cfg, theirs_cfg)
    layers = [len(cfg["rootfs"]["diff_ids"]) for cfg in (ours_cfg, theirs_cfg)]
    assert layers[0] == layers[1], f"layers: {layers}"

    ours("create", "--name", names[0], ref)
    theirs("create", "--name", names[1], ref)
    ours("export", "-o", str(tmp_path / "ours-fs.tar"), names[0])
    theirs("export", "-o", str(tmp_path / "theirs-fs.tar"), names[1])
    volumes = {v.strip("/") for v in ours_cfg["config"].get("Volumes") or {}}
    mine = entries(tmp_path / "ours-fs.tar", volumes)
    docker = entries(tmp_path / "theirs-fs.tar", volumes)
    # tests/support is not rewritten by pytest: the messages say what differs.
    only_ours, only_docker = sorted(set(mine) - set(docker)), sorted(set(docker) - set(mine))
    assert only_ours == only_docker == [], f"only in muelle's rootfs: {only_ours}, " \
                                           f"only in Docker's: {only_docker}"
    differ = {k: (v, docker[k]) for k, v in mine.items() if docker[k] != v}
    assert differ == {}, f"(muelle, Docker): {differ}"


def completed(proc: subprocess.CompletedProcess[str]) -> str:
    """A build's stdout, after checking that it succeeded."""
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout
