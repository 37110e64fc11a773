"""The build corpus: one folder per case under tests/e2e/build_corpus/<name>/ (a Dockerfile
and its context files), each built by muelle and by a private dockerd's classic builder and
compared with tests/support/build_oracle.py.

Every Dockerfile starts from the test's busybox image through ``ARG BASE`` / ``FROM $BASE``
(the build gets ``--build-arg BASE=<image>``); ``@BASE@`` in a Dockerfile is replaced by the
image's reference where an instruction takes no variables (``COPY --from=<image>``). What git
cannot hold (hardlinks, tar files, file modes) the case's hook below makes in the copy."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path

CORPUS = Path(__file__).resolve().parent.parent / "e2e" / "build_corpus"

# The --build-arg flags a case gets besides BASE.
BUILD_ARGS: dict[str, tuple[str, ...]] = {
    "args-before-from": ("OVERRIDDEN=from-cli", "EMPTY_FROM_CLI=", "UNUSED_CLI=1"),
}
# Cases Docker builds only with BuildKit (its classic builder refuses COPY --chmod): the
# Docker side builds them with DOCKER_BUILDKIT=1, and the comparison leaves out the step
# lines and history text (BuildKit writes its own).
BUILDKIT = {"chmod-buildkit"}


def names() -> list[str]:
    return sorted(p.name for p in CORPUS.iterdir() if (p / "Dockerfile").is_file())


def params(only: set[str] | None = None) -> list[str]:
    """The cases (or ``only`` these) for parametrize: every one must equal Docker's."""
    return [name for name in names() if only is None or name in only]


def _hardlinks(ctx: Path) -> None:
    os.link(ctx / "data" / "orig", ctx / "data" / "twin")


def _member(tar: tarfile.TarFile, name: str, data: bytes | None = None, mode: int = 0o644,
            link: str = "", owner: tuple[int, int] = (1234, 5678)) -> None:
    info = tarfile.TarInfo(name)
    info.uid, info.gid = owner
    info.mode, info.mtime = mode, 1700000000
    if data is None and not link:
        info.type, info.mode = tarfile.DIRTYPE, 0o750
    elif link:
        info.type, info.linkname = tarfile.SYMTYPE, link
    else:
        info.size = len(data or b"")
    tar.addfile(info, io.BytesIO(data) if data else None)


def _archives(ctx: Path) -> None:
    for name, mode in (("plain.tar", "w"), ("comp.tar.gz", "w:gz")):
        with tarfile.open(ctx / name, mode) as tar:  # type: ignore[call-overload]
            _member(tar, "inner")
            _member(tar, "inner/file", b"from the tar\n", mode=0o600)
            _member(tar, "inner/link", link="file")
            _member(tar, "top.txt", b"top\n", owner=(0, 0))


def _modes(ctx: Path) -> None:
    os.chmod(ctx / "data-1.csv", 0o600)
    os.chmod(ctx / "dir1" / "sub", 0o700)


def _chown_modes(ctx: Path) -> None:
    os.chmod(ctx / "dir" / "sub", 0o750)
    os.chmod(ctx / "dir" / "f", 0o640)


HOOKS: dict[str, Callable[[Path], None]] = {
    "hardlinks": _hardlinks,
    "add-archives": _archives,
    "copy-globs": _modes,
    "chown-by-name": _chown_modes,
}


def context(name: str, root: Path, base: str) -> Path:
    """A fresh copy of case ``name``'s context under ``root``, ready to build."""
    ctx = root / name
    shutil.copytree(CORPUS / name, ctx, symlinks=True)
    dockerfile = ctx / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace("@BASE@", base))
    if name in HOOKS:
        HOOKS[name](ctx)
    return ctx


def build_args(name: str, base: str) -> list[str]:
    out = ["--build-arg", f"BASE={base}"]
    for arg in BUILD_ARGS.get(name, ()):
        out += ["--build-arg", arg]
    return out
