"""A build step without a container (Dockerfile COPY, ADD, WORKDIR, metadata): a new layer
holding a tar's entries placed at a path of the parent image, or no layer at all.

Where the entries land follows Docker's classic builder: ``dest`` is resolved in the
parent's filesystem (symlinks followed inside it); a single file goes to ``dest`` itself
unless ``dest`` ends in "/" or is a directory; otherwise ``dest`` is a directory, made when
missing. Missing parent directories are made 0755, owned by the ``--chown`` owner (Docker's
MkdirAllAndChownNew); existing ones are written with their own metadata (what overlay's
copy-up puts in Docker's layer). Entries never leave ``dest``: names with ``..`` or an
absolute hardlink outside the tar are refused.
"""

from __future__ import annotations

import posixpath
import stat
import tarfile
import tempfile
import time
from collections.abc import Iterable
from typing import IO

from services.core.passwd import parse_group, parse_passwd
from services.imagestore.view import read_file, resolve
from vocab.errors import InvalidArgument

MAX_ID = 2**31 - 1


def owner(layers: list[str], chown: str) -> tuple[int, int]:
    """``user[:group]`` to numbers, as the classic builder's parseChownFlag: names from
    the image's /etc/passwd and /etc/group; a user alone stands for the group too."""
    user, _, group = chown.partition(":")
    if not user:
        raise InvalidArgument(f"invalid --chown value {chown!r}")
    users = {p.name: p.uid for p in parse_passwd(read_file(layers, "/etc/passwd") or b"")}
    groups = {g.name: g.gid for g in parse_group(read_file(layers, "/etc/group") or b"")}
    return _id(user, users, "uid", "user"), _id(group or user, groups, "gid", "group")


def _id(text: str, names: dict[str, int], what: str, kind: str) -> int:
    if text.isdigit():
        if int(text) > MAX_ID:
            raise InvalidArgument(f"--chown id {text} is out of range")
        return int(text)
    if text not in names:
        raise InvalidArgument(f"unable to convert uid/gid chown string to host mapping: "
                              f"can't find {what} for {kind} {text}: no such {kind}: {text}")
    return names[text]


def _clean_member(name: str) -> str:
    clean = posixpath.normpath("/" + name).lstrip("/")
    if ".." in name.split("/"):
        raise InvalidArgument(f"refusing tar entry {name!r}: it points outside its root")
    return "" if clean == "." else clean


class Placement:
    """Where the entries of one AddFiles tar go, decided against the parent's files."""

    def __init__(self, layers: list[str], dest: str, single_name: str,
                 chown: str, chmod: str) -> None:
        if not dest.startswith("/"):
            raise InvalidArgument(f"destination {dest!r} must be an absolute path")
        self.layers = layers
        self.ids = owner(layers, chown) if chown else None
        try:
            self.mode = int(chmod, 8) if chmod else None
        except ValueError:
            raise InvalidArgument(f"invalid --chmod value {chmod!r}: not an octal number") \
                from None
        if self.mode is not None and not 0 <= self.mode <= 0o7777:
            raise InvalidArgument(f"invalid --chmod value {chmod!r}")
        rel, found = resolve(layers, dest)
        is_dir = rel == "" or (found is not None and stat.S_ISDIR(found.st.st_mode))
        self.single = bool(single_name) and not dest.endswith("/") and not is_dir
        self.dir = posixpath.dirname(rel) if self.single else rel
        self.file = rel if self.single else ""
        if not self.single and found is not None and not is_dir:
            raise InvalidArgument(f"cannot copy to {dest}: it is not a directory in the image")
        self.dir_existed = self.dir == "" or self._is_dir(self.dir)
        self.written = 0  # entries of our own (not existing parents) written

    def _is_dir(self, rel: str) -> bool:
        r, found = resolve(self.layers, "/" + rel, follow_last=False)
        return found is not None and stat.S_ISDIR(found.st.st_mode)

    def _parents(self, tar: tarfile.TarFile, upto: str) -> None:
        """The directories above ``upto`` (not itself)."""
        parts = [p for p in upto.split("/") if p]
        now = int(time.time())
        for n in range(1, len(parts)):
            rel = "/".join(parts[:n])
            _, found = resolve(self.layers, "/" + rel, follow_last=False)
            info = tarfile.TarInfo(rel)
            info.type = tarfile.DIRTYPE
            info.uname = info.gname = ""
            if found is not None and stat.S_ISDIR(found.st.st_mode):
                st = found.st
                info.mode, info.uid, info.gid = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid
                info.mtime = int(st.st_mtime)
            else:
                info.mode, info.mtime = 0o755, now
                info.uid, info.gid = self.ids or (0, 0)
                self.written += 1
            tar.addfile(info)

    def write(self, src: IO[bytes], out: IO[bytes]) -> None:
        """The layer tar: parents, then the entries of ``src`` renamed and re-owned."""
        tar = tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT)  # noqa: SIM115
        # An existing dest directory is written too, with its own metadata (copy-up).
        self._parents(tar, self.file if self.single else
                      (self.dir + "/." if self.dir_existed and self.dir else self.dir))
        made_root = False
        names: dict[str, str] = {}
        try:
            reader = tarfile.open(fileobj=src, mode="r|*")  # noqa: SIM115
        except tarfile.TarError as exc:
            raise InvalidArgument(f"not a valid tar of files to add: {exc}") from None
        with reader:
            for m in reader:
                name = _clean_member(m.name)
                if self.single:
                    if name == "" or names:
                        raise InvalidArgument("a single-file copy holds more than one entry")
                    final = self.file
                else:
                    if name == "" and self.dir_existed:
                        continue  # an existing directory keeps its metadata
                    final = posixpath.join(self.dir, name) if name else self.dir
                if not self.single and not made_root and not self.dir_existed \
                        and final != self.dir:
                    self._root(tar)
                made_root = made_root or final == self.dir or self.dir_existed
                names[name] = final
                m.name = final
                m.uname = m.gname = ""
                if self.ids is not None:
                    m.uid, m.gid = self.ids
                if self.mode is not None and not m.issym() and not m.islnk():
                    m.mode = self.mode
                if m.islnk():
                    link = _clean_member(m.linkname)
                    if link not in names:
                        raise InvalidArgument(f"hardlink {m.name} to {m.linkname!r}, which is "
                                              "not earlier in the tar")
                    m.linkname = names[link]
                self.written += 1
                if m.isreg():
                    tar.addfile(m, reader.extractfile(m))
                else:
                    tar.addfile(m)
        if not made_root and not self.dir_existed and not self.single:
            self._root(tar)  # WORKDIR, or an empty directory copied
        tar.close()

    def _root(self, tar: tarfile.TarFile) -> None:
        """``dest`` itself, a directory not in the parent: 0755, the --chown owner."""
        info = tarfile.TarInfo(self.dir)
        info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, int(time.time())
        info.uname = info.gname = ""
        info.uid, info.gid = self.ids or (0, 0)
        self.written += 1
        tar.addfile(info)


def spool(chunks: Iterable[bytes], directory: str) -> IO[bytes]:
    """The streamed tar in an unnamed temp file, rewound."""
    f = tempfile.TemporaryFile(dir=directory)  # noqa: SIM115 - handed to the caller
    try:
        for chunk in chunks:
            f.write(chunk)
        f.seek(0)
    except BaseException:
        f.close()
        raise
    return f



