"""users.py: every user format, errors, and no symlink escape out of the rootfs (the
resolver's own escape table is tests/unit/core/test_inroot.py; these run both its ways)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from services.shim.users import User, resolve
from tests.support.escapes import ESCAPES, build, resolver_way
from vocab.errors import InvalidArgument

__all__ = ["resolver_way"]  # the fixture: every test here runs both ways

pytestmark = pytest.mark.usefixtures("resolver_way")

PASSWD = (b"root:x:0:0:root:/root:/bin/sh\n"
          b"app:x:1000:1000:app:/home/app:/bin/sh\n"
          b"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
GROUP = b"root:x:0:\nwheel:x:10:root,app\nstaff:x:50:app\napp:x:1000:\n"


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_bytes(PASSWD)
    (tmp_path / "etc" / "group").write_bytes(GROUP)
    return tmp_path


@pytest.mark.parametrize(("arg", "want"), [
    ("", User(0, 0, [0, 10], "/root", "root")),
    ("root", User(0, 0, [0, 10], "/root", "root")),
    ("app", User(1000, 1000, [1000, 10, 50], "/home/app", "app")),
    ("1000", User(1000, 1000, [1000, 10, 50], "/home/app", "app")),
    ("app:staff", User(1000, 50, [50], "/home/app", "app")),
    ("app:7", User(1000, 7, [7], "/home/app", "app")),
    ("1000:wheel", User(1000, 10, [10], "/home/app", "app")),
    ("4242", User(4242, 0, [0], "/", "")),
    ("4242:4343", User(4242, 4343, [4343], "/", "")),
])
def test_formats(rootfs: Path, arg: str, want: User) -> None:
    assert resolve(str(rootfs), arg) == want


def test_unknown_user(rootfs: Path) -> None:
    with pytest.raises(InvalidArgument,
                       match="unable to find user ghost: no matching entries in passwd file"):
        resolve(str(rootfs), "ghost")


def test_unknown_group(rootfs: Path) -> None:
    with pytest.raises(InvalidArgument, match="unable to find group ghosts"):
        resolve(str(rootfs), "app:ghosts")


@pytest.mark.parametrize("arg", [":10", "99999999999"])
def test_invalid(rootfs: Path, arg: str) -> None:
    with pytest.raises(InvalidArgument):
        resolve(str(rootfs), arg)


def test_missing_files(tmp_path: Path) -> None:
    assert resolve(str(tmp_path), "5:6") == User(5, 6, [6], "/", "")
    with pytest.raises(InvalidArgument):
        resolve(str(tmp_path), "app")


def test_symlink_out_of_rootfs_is_not_followed(tmp_path: Path) -> None:
    host = tmp_path / "host"
    host.mkdir()
    (host / "passwd").write_bytes(b"evil:x:0:0::/:/bin/sh\n")
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    # Absolute and relative links that would leave the rootfs if followed on the host.
    os.symlink(str(host / "passwd"), rootfs / "etc" / "passwd")
    with pytest.raises(InvalidArgument):
        resolve(str(rootfs), "evil")
    (rootfs / "etc" / "passwd").unlink()
    os.symlink("../../../host/passwd", rootfs / "etc" / "passwd")
    with pytest.raises(InvalidArgument):
        resolve(str(rootfs), "evil")
    (rootfs / "etc").rename(rootfs / "etc.old")
    os.symlink(str(host), rootfs / "etc")
    with pytest.raises(InvalidArgument):
        resolve(str(rootfs), "evil")


def test_symlink_inside_rootfs_is_resolved_in_it(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "passwd").write_bytes(PASSWD)
    (tmp_path / "etc").mkdir()
    os.symlink("/data/passwd", tmp_path / "etc" / "passwd")
    assert resolve(str(tmp_path), "app").uid == 1000


@pytest.mark.parametrize("path", ESCAPES)
def test_dotdot_and_links_stay_in_rootfs(tmp_path: Path, path: str) -> None:
    layout = build(tmp_path)
    # Each escape names /host from the root: as an absolute link target in /etc too.
    (layout.root / "etc" / "passwd").symlink_to("/" + path + "/passwd")
    assert resolve(str(layout.root), "inside").name == "inside"
    with pytest.raises(InvalidArgument, match="unable to find user outside"):
        resolve(str(layout.root), "outside")


@pytest.mark.parametrize("target", ["../host/passwd", "../../host/passwd",
                                    "../../../host/passwd", "/../host/passwd"])
def test_passwd_link_climbing_out_reads_the_rootfs_file(tmp_path: Path, target: str) -> None:
    # An image whose etc/passwd is "../../host/passwd": from <rootfs>/etc one ".." is the
    # rootfs, the next would be the host's directory holding the rootfs, with a host/passwd.
    layout = build(tmp_path)
    (layout.root / "etc" / "passwd").symlink_to(target)
    assert resolve(str(layout.root), "inside").name == "inside"
    with pytest.raises(InvalidArgument, match="unable to find user outside"):
        resolve(str(layout.root), "outside")
