"""`docker cp` both ways through a container's mounts (a named volume, a bind mount, a
read-only bind mount, a tmpfs) on a running and on a stopped container, against muelle's
Docker API and a private dockerd: the copies land in and come from what the container sees
at those paths (not the directories under the mount points), a read-only bind is refused
with dockerd's error, and a symlink in a volume pointing at "/", ".." or a host path never
reaches the host."""

from __future__ import annotations

import uuid
from pathlib import Path

from tests.compat.conftest import DockerCli

# What the container sees: every file under its mounts and the root's marker files.
LIST = ("for f in /marker /in-root /vol/* /bind/* /robind/* /scratch/*; do "
        "[ -L \"$f\" ] && echo \"$f -> $(readlink $f)\" && continue; "
        "[ -f \"$f\" ] && echo \"$f: $(cat $f)\"; done; true")

OUT = ("/vol/f", "/vol", "/vol/.", "/bind/f", "/robind/f", "/scratch/f", "/vol/up/marker",
       "/vol/dotdot/marker", "/vol/dotdot", "/vol/esc/secret", "/vol/esc/", "/vol/nosuch",
       "/bind/hostup/marker", "/bind/hostup/secret")
IN = ("/vol/", "/vol/sub/", "/bind/", "/robind/", "/scratch/", "/vol/up/", "/vol/dotdot/",
      "/vol/esc/", "/vol/up", "/bind/hostup/")

# dockerd (20.10 here; Moby since gives each copy a private tmpfs) never reaches a running
# container's tmpfs: a copy out finds nothing there, a copy in is lost under the mount
# point. muelle copies from and into what the container sees there; these are the only
# answers that differ, each checked on its own.
TMPFS_OUT = ("out", "/scratch/f", 0, "", [("f", "tmpfs file\n")])
DOCKERD_TMPFS_OUT: tuple[object, ...] = (
    "out", "/scratch/f", 1, "Error: No such container:path: C:/scratch/f", [])
TMPFS_IN = "/scratch/file: running into /scratch/\n"


def _tree(root: Path) -> list[tuple[str, str]]:
    out = []
    for p in sorted(root.rglob("*")):
        if p.is_symlink():
            out.append((str(p.relative_to(root)), "-> " + str(p.readlink())))
        elif p.is_file():
            out.append((str(p.relative_to(root)), p.read_text()))
        else:
            out.append((str(p.relative_to(root)), "dir"))
    return out


def _phase(docker: DockerCli, name: str, work: Path, src: Path, tag: str) -> list[object]:
    seen: list[object] = []
    norm = (name, "C"), (str(work), "WORK"), (str(src), "SRC")
    for i, path in enumerate(OUT):
        dest = work / f"{tag}-out{i}"
        dest.mkdir()
        proc = docker("cp", f"{name}:{path}", str(dest), check=False)
        err = proc.stderr
        for a, b in norm:
            err = err.replace(a, b)
        seen.append(("out", path, proc.returncode, err.strip(), _tree(dest)))
    for path in IN:
        (src / "file").write_text(f"{tag} into {path}\n")
        proc = docker("cp", str(src / "file"), f"{name}:{path}", check=False)
        err = proc.stderr
        for a, b in norm:
            err = err.replace(a, b)
        seen.append(("in", path, proc.returncode, err.strip()))
    return seen


def _copies(docker: DockerCli, image: str, work: Path, host_dir: Path) -> list[object]:
    name, vol = f"cpv-{uuid.uuid4().hex[:6]}", f"cpv-{uuid.uuid4().hex[:6]}"
    bind, robind, src = work / "bind", work / "robind", work / "src"
    for d in (bind, robind, src):
        d.mkdir()
    (bind / "f").write_text("bind file\n")
    (robind / "f").write_text("read-only bind file\n")
    (bind / "hostup").symlink_to("../..")  # on the host: the test's tmp dir
    docker("volume", "create", vol)
    docker("run", "-d", "--name", name, "-v", f"{vol}:/vol", "-v", f"{bind}:/bind",
           "-v", f"{robind}:/robind:ro", "--tmpfs", "/scratch", image, "sleep", "1000")
    seen: list[object] = []
    try:
        docker("exec", name, "sh", "-c",
               "echo root marker > /marker && echo vol file > /vol/f && ln -s / /vol/up "
               f"&& ln -s ../../.. /vol/dotdot && ln -s {host_dir} /vol/esc "
               "&& echo tmpfs file > /scratch/f")
        seen += _phase(docker, name, work, src, "running")
        seen.append(docker("exec", name, "sh", "-c", LIST).stdout)
        docker("kill", name)
        seen += _phase(docker, name, work, src, "stopped")
        docker("start", name)
        seen.append(docker("exec", name, "sh", "-c", LIST).stdout)
        seen.append(_tree(bind))
        seen.append(_tree(robind))
        seen += _read_only_rootfs(docker, image, vol, src)
    finally:
        docker("rm", "-f", name)
        docker("volume", "rm", vol)
    return seen


def _read_only_rootfs(docker: DockerCli, image: str, vol: str, src: Path) -> list[object]:
    """--read-only: a copy into the rootfs is refused, one into a volume is not."""
    name = f"cpv-ro-{uuid.uuid4().hex[:6]}"
    docker("create", "--name", name, "--read-only", "-v", f"{vol}:/vol", image, "true")
    seen: list[object] = []
    try:
        for path in ("/", "/vol/"):
            proc = docker("cp", str(src / "file"), f"{name}:{path}", check=False)
            seen.append(("read-only rootfs", path, proc.returncode,
                         proc.stderr.replace(name, "C").strip()))
        return seen
    finally:
        docker("rm", "-f", name)


def test_cp_through_volumes_binds_and_tmpfs_as_on_dockerd(
        muelle_cli: DockerCli, dockerd_cli: DockerCli, pulled: str, tmp_path: Path,
        host_dir: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "d").mkdir()
    (host_dir / "marker").write_text("HOST MARKER\n")
    on_dockerd = _copies(dockerd_cli, pulled, tmp_path / "d", host_dir)
    on_muelle = _copies(muelle_cli, pulled, tmp_path / "m", host_dir)
    # nothing written through a link, nor beside the bind mounts on the host
    assert sorted(p.name for p in host_dir.iterdir()) == ["marker", "secret"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "host", "m"]
    for got in on_muelle:  # nothing of the host ever comes through a link
        assert "HOST SECRET" not in repr(got) and "HOST MARKER" not in repr(got)
    assert on_muelle[5] == TMPFS_OUT  # the running container's tmpfs, as it sees it
    on_muelle[5] = DOCKERD_TMPFS_OUT
    listing = len(OUT) + len(IN)
    assert TMPFS_IN in str(on_muelle[listing])
    on_muelle[listing] = str(on_muelle[listing]).replace(TMPFS_IN, "")
    assert on_muelle == on_dockerd
    # what dockerd answers, and so muelle: spelled out
    assert ("in", "/robind/", 1,
            "Error response from daemon: mounted volume is marked read-only") in on_muelle
    assert ("read-only rootfs", "/", 1,
            "Error response from daemon: container rootfs is marked read-only") in on_muelle
    assert ("read-only rootfs", "/vol/", 0, "") in on_muelle
    assert ("out", "/vol/up/marker", 0, "", [("marker", "root marker\n")]) in on_muelle
