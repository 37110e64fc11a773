"""services/core/inroot.py, the one in-root resolver, run both ways (openat2 and the walk):
every escape the three resolvers it replaced were tested against (runtime paths.secure_join
and open_in_root, the unpack's resolve_dir, the shim's users.read_in_root), with the shared
hostile layout of tests/support/escapes.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from services.core import inroot
from tests.support.escapes import ESCAPES, INSIDE, build, resolver_way
from vocab.errors import InvalidArgument

__all__ = ["resolver_way"]  # the fixture: every test here runs with openat2 and the walk

pytestmark = pytest.mark.usefixtures("resolver_way")


def _real(fd: int) -> str:
    try:
        return os.readlink(inroot.fd_path(fd))
    finally:
        os.close(fd)


def test_both_ways_are_really_taken(resolver_way: str) -> None:
    assert inroot.has_openat2() is (resolver_way == "openat2")


# -- the shared escape table: every path names <root>/host --------------------------------


@pytest.mark.parametrize("path", ESCAPES)
def test_open_lands_on_the_rootfs_host_dir(tmp_path: Path, path: str) -> None:
    layout = build(tmp_path)
    assert _real(inroot.open_in_root(str(layout.root), path)) == f"{layout.root}/host"
    assert _real(inroot.open_in_root(str(layout.root), path + "/passwd")) == \
        f"{layout.root}/host/passwd"
    made = inroot.open_in_root(str(layout.root), path + "/new/x", "dir")
    assert _real(made) == f"{layout.root}/host/new/x"
    assert _real(inroot.open_in_root(str(layout.root), path + "/f", "file")) == \
        f"{layout.root}/host/f"
    assert layout.untouched()


@pytest.mark.parametrize("path", ESCAPES)
def test_join_lands_on_the_rootfs_host_dir(tmp_path: Path, path: str) -> None:
    layout = build(tmp_path)
    assert inroot.join_in_root(str(layout.root), path) == f"{layout.root}/host"
    assert inroot.join_in_root(str(layout.root), path + "/passwd") == \
        f"{layout.root}/host/passwd"
    # A component that does not exist yet is appended below the resolved parent.
    assert inroot.join_in_root(str(layout.root), path + "/new/x") == \
        f"{layout.root}/host/new/x"


@pytest.mark.parametrize("path", ESCAPES)
def test_dir_lands_on_the_rootfs_host_dir(tmp_path: Path, path: str) -> None:
    layout = build(tmp_path)
    assert inroot.dir_in_root(str(layout.root), path) == f"{layout.root}/host"
    assert inroot.dir_in_root(str(layout.root), path + "/new", make=True) == \
        f"{layout.root}/host/new"
    assert layout.untouched()


@pytest.mark.parametrize("path", ESCAPES)
def test_read_gets_the_rootfs_file(tmp_path: Path, path: str) -> None:
    layout = build(tmp_path)
    assert inroot.read_in_root(str(layout.root), path + "/passwd", 1 << 20) == INSIDE


@pytest.mark.parametrize("target", ["../host/passwd", "../../host/passwd",
                                    "../../../host/passwd", "/../host/passwd"])
def test_a_file_link_climbing_out_reads_the_rootfs_file(tmp_path: Path, target: str) -> None:
    # etc/passwd -> "../../host/passwd": from <root>/etc one ".." is the root, the next
    # would be the host's directory holding the root, which has a host/passwd.
    layout = build(tmp_path)
    (layout.root / "etc" / "passwd").symlink_to(target)
    assert inroot.read_in_root(str(layout.root), "/etc/passwd", 1 << 20) == INSIDE


# -- ".." and symlinks ---------------------------------------------------------------------


@pytest.mark.parametrize(("path", "want"), [
    ("..", ""), ("../..", ""), ("../../..", ""), ("/up1", ""), ("/up3", ""),
    ("/etc/..", ""), ("/etc/../..", ""), ("/etc/deep/../..", ""), ("/etc/deep/../../etc", "/etc"),
])
def test_dotdot_stops_at_the_root(tmp_path: Path, path: str, want: str) -> None:
    layout = build(tmp_path)
    assert inroot.join_in_root(str(layout.root), path).rstrip("/") == f"{layout.root}{want}"
    assert _real(inroot.open_in_root(str(layout.root), path)) == f"{layout.root}{want}"


@pytest.mark.parametrize("unsafe", ["/../../x", "../x", "/a/../../x", "/a/../../../x"])
def test_dotdot_stays_at_the_root_when_making(tmp_path: Path, unsafe: str) -> None:
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    assert _real(inroot.open_in_root(str(root), unsafe, "dir")) == str(root / "x")
    assert not (tmp_path / "x").exists()


def test_links_to_the_host_are_followed_in_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "abs").symlink_to("/etc")
    (root / "slash").symlink_to("/")  # "/" of the container: the root itself
    (root / "host").symlink_to(outside)  # an absolute host path: taken in the root
    (root / "up").symlink_to("../../../..")
    assert inroot.join_in_root(str(root), "/abs/passwd") == f"{root}/etc/passwd"
    assert inroot.join_in_root(str(root), "/up/etc") == f"{root}/etc"
    assert inroot.join_in_root(str(root), "../../x") == f"{root}/x"
    assert inroot.join_in_root(str(root), "/new/dir") == f"{root}/new/dir"
    assert _real(inroot.open_in_root(str(root), "/slash/t1", "dir")) == str(root / "t1")
    assert _real(inroot.open_in_root(str(root), "/up/t2", "dir")) == str(root / "t2")
    made = _real(inroot.open_in_root(str(root), "/host/t3", "dir"))
    assert made == f"{root}{outside}/t3"
    assert inroot.dir_in_root(str(root), "/host/t4", make=True) == f"{root}{outside}/t4"
    assert list(outside.iterdir()) == []


def test_a_dangling_link_is_made_in_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "d").symlink_to("/made/below")
    (root / "f").symlink_to("/made/file")
    assert _real(inroot.open_in_root(str(root), "/d/x", "dir")) == f"{root}/made/below/x"
    assert _real(inroot.open_in_root(str(root), "/f", "file")) == f"{root}/made/file"
    assert (root / "made" / "file").is_file()


def test_symlink_loops_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "loop").symlink_to("loop")
    (root / "a").symlink_to("b")
    (root / "b").symlink_to("a")
    for path in ("/loop/x", "/a/x", "/loop"):
        with pytest.raises(InvalidArgument, match="too many levels of symbolic links"):
            inroot.open_in_root(str(root), path)
        with pytest.raises(InvalidArgument, match="too many levels of symbolic links"):
            inroot.join_in_root(str(root), path)
        with pytest.raises(InvalidArgument):
            inroot.dir_in_root(str(root), path, make=True)
        assert inroot.read_in_root(str(root), path, 100) is None


def test_a_chain_at_the_kernel_limit_resolves_and_one_more_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "end").mkdir(parents=True)
    (root / "l0").symlink_to("end")
    for i in range(1, inroot.MAX_SYMLINKS + 1):
        (root / f"l{i}").symlink_to(f"l{i - 1}")
    last = inroot.MAX_SYMLINKS - 1
    assert _real(inroot.open_in_root(str(root), f"/l{last}")) == str(root / "end")
    with pytest.raises(InvalidArgument):
        inroot.open_in_root(str(root), f"/l{last + 1}")


# -- what is missing, made, or not a directory --------------------------------------------


def test_missing_dirs_and_files_are_made_inside(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    assert _real(inroot.open_in_root(str(root), "/a/b/c", "dir")) == str(root / "a/b/c")
    assert (root / "a/b/c").is_dir()
    assert _real(inroot.open_in_root(str(root), "/a/f", "file")) == str(root / "a/f")
    assert (root / "a/f").is_file()
    with pytest.raises(FileNotFoundError):
        inroot.open_in_root(str(root), "/missing")
    with pytest.raises(FileNotFoundError):
        inroot.dir_in_root(str(root), "/missing")


def test_made_dirs_get_the_mode_asked_whatever_the_umask(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    old = os.umask(0o077)
    try:
        inroot.dir_in_root(str(root), "/a/b", make=True, mode=0o755)
    finally:
        os.umask(old)
    assert (root / "a").stat().st_mode & 0o777 == 0o755
    assert (root / "a/b").stat().st_mode & 0o777 == 0o755


def test_a_file_in_the_middle(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "f").write_text("")
    with pytest.raises(NotADirectoryError):
        inroot.open_in_root(str(root), "/f/x", "dir")
    with pytest.raises(NotADirectoryError):
        inroot.open_in_root(str(root), "/f/x")
    with pytest.raises(NotADirectoryError):
        inroot.dir_in_root(str(root), "/f", make=True)  # the last one must be a dir too
    with pytest.raises(NotADirectoryError):
        inroot.dir_in_root(str(root), "/f/x", make=True)
    assert inroot.read_in_root(str(root), "/f/x", 100) is None
    # A string answer appends what cannot be looked up, and ".." takes it off again.
    assert inroot.join_in_root(str(root), "/f/x") == f"{root}/f/x"
    assert inroot.join_in_root(str(root), "/f/../y") == f"{root}/y"
    assert inroot.join_in_root(str(root), "/missing/../y") == f"{root}/y"


def test_a_fifo_is_never_opened_for_reading(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    os.mkfifo(tmp_path / "etc" / "passwd")
    assert inroot.read_in_root(str(tmp_path), "/etc/passwd", 100) is None  # would block


def test_read_stops_at_the_limit(tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(b"x" * 100)
    assert inroot.read_in_root(str(tmp_path), "/big", 10) == b"x" * 10
    assert inroot.read_in_root(str(tmp_path), "/", 10) is None  # a directory


# -- races ---------------------------------------------------------------------------------


def test_a_symlink_swapped_in_during_the_walk_is_followed_in_the_root(tmp_path: Path) -> None:
    """What a container sharing a volume does while we resolve (CVE-2024-45310): the dir
    the walk is about to enter becomes a link to the host. The kernel's openat2 is atomic
    against it; the walk (forced here, whatever the kernel) opens every component with
    O_NOFOLLOW and takes the new link in the root."""
    root = tmp_path / "root"
    (root / "vol" / "d").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    swapped: list[str] = []

    def swap(path: str) -> None:
        if path == f"{root}/vol/d" and not swapped:
            (root / "vol" / "d").rmdir()
            (root / "vol" / "d").symlink_to(outside)
            swapped.append(path)

    made = inroot.dir_in_root(str(root), "/vol/d/target", make=True, on_step=swap)
    assert swapped and made == f"{root}{outside}/target"
    assert list(outside.iterdir()) == []


def test_a_relative_swap_to_the_parent_of_the_root_stays_in(tmp_path: Path) -> None:
    layout = build(tmp_path)
    (layout.root / "vol").mkdir()

    def swap(path: str) -> None:
        if path == f"{layout.root}/vol" and (layout.root / "vol").is_dir():
            (layout.root / "vol").rmdir()
            (layout.root / "vol").symlink_to("../../host")

    made = inroot.dir_in_root(str(layout.root), "/vol/pwned", make=True, on_step=swap)
    assert made == f"{layout.root}/host/pwned"
    assert layout.untouched()


def test_join_in_root_leaves_no_fd_open(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        inroot.join_in_root(str(tmp_path), "/etc/missing")
        inroot.join_in_root(str(tmp_path), "/etc")
    assert len(os.listdir("/proc/self/fd")) == before
