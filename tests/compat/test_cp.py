"""`docker cp` out of a container (GET/HEAD /containers/{id}/archive) against muelle's
Docker API and a private dockerd: the same files, modes, links and errors; a symlink in
the container never reaches the host's files."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from tests.compat.conftest import DockerCli


def _tree(root: Path) -> list[tuple[str, str, str]]:
    """(path, kind and mode, contents or link target) of everything under ``root``."""
    out = []
    for top, dirs, files in os.walk(root):
        for name in sorted(dirs + files):
            p = Path(top) / name
            st = p.lstat()
            if p.is_symlink():
                out.append((str(p.relative_to(root)), "link", os.readlink(p)))
            elif p.is_dir():
                out.append((str(p.relative_to(root)), f"dir {st.st_mode & 0o7777:o}", ""))
            else:
                out.append((str(p.relative_to(root)), f"file {st.st_mode & 0o7777:o}",
                            p.read_text()))
    return sorted(out)


def _copies(docker: DockerCli, image: str, out: Path, host_dir: Path) -> list[object]:
    name = f"cp-{uuid.uuid4().hex[:6]}"
    docker("run", "--name", name, image, "sh", "-c",
           "mkdir -p /data/dir/sub && echo one > /data/dir/f && echo two > /data/dir/sub/g "
           "&& chmod 640 /data/dir/f && ln -s f /data/dir/link && echo solo > /data/file "
           f"&& ln -s {host_dir} /data/escdir && ln -s ../../../../..{host_dir}/secret "
           "/data/escfile")
    seen: list[object] = []
    try:
        for i, src in enumerate(("/data/dir", "/data/file", "/data/dir/.", "/data/escdir",
                                 "/data/escfile", "/data/escdir/.", "/data/escdir/secret",
                                 "/nosuch")):
            dest = out / str(i)
            dest.mkdir()
            proc = docker("cp", f"{name}:{src}", str(dest), check=False)
            stderr = proc.stderr.replace(name, "C").replace(str(out), "OUT").strip()
            seen.append((src, proc.returncode, stderr,
                         _tree(dest)))
    finally:
        docker("rm", "-f", name)
    return seen


def test_cp_from_a_container_as_on_dockerd(muelle_cli: DockerCli, dockerd_cli: DockerCli,
                                            pulled: str, tmp_path: Path,
                                            host_dir: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "d").mkdir()
    on_muelle = _copies(muelle_cli, pulled, tmp_path / "m", host_dir)
    on_dockerd = _copies(dockerd_cli, pulled, tmp_path / "d", host_dir)
    assert on_muelle[0] == ("/data/dir", 0, "", [
        ("dir", "dir 755", ""), ("dir/f", "file 640", "one\n"), ("dir/link", "link", "f"),
        ("dir/sub", "dir 755", ""), ("dir/sub/g", "file 644", "two\n")])
    for got in on_muelle:  # nothing of the host ever comes through a link
        assert "HOST SECRET" not in repr(got)
    assert on_muelle == on_dockerd
