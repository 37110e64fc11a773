"""The state store: one directory per container under --root, plus liveness checks.

    <root>/<id>/state.json   what create recorded (pid, its start time, bundle, cgroups)
    <root>/<id>/exec.fifo    exists while the init waits for ``start`` (status created)

The status is derived, never stored: the init is gone or its pid was reused (start time
differs) -> stopped; the fifo still exists -> created; else running.
"""

from __future__ import annotations

import os

from services.runtime import cjson
from services.runtime.errors import ContainerNotFound
from services.runtime.paths import clean, join
from services.runtime.scoped import suppress
from vocab.errors import AlreadyExists, InvalidArgument

# No pathlib, re or typing at run time: this is on the path of every create (see
# tests/unit/runtime/test_lean.py); paths are strings.
TYPE_CHECKING = False  # mypy treats TYPE_CHECKING as true wherever it is defined
if TYPE_CHECKING:
    from typing import Any

OCI_VERSION = "1.0.2"
DEFAULT_ROOT = "/run/muelle-runtime"
_ID_FIRST = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_ID_REST = _ID_FIRST | frozenset("_.+-")


def check_id(cid: str) -> str:
    """runc's rule: [A-Za-z0-9][A-Za-z0-9_.+-]{0,127}."""
    if not cid or len(cid) > 128 or cid[0] not in _ID_FIRST or not _ID_REST.issuperset(cid):
        raise InvalidArgument(f"invalid container id {cid!r}")
    return cid


class State:
    """What create recorded. A plain class: typing.NamedTuple and dataclasses cost every
    runtime call their imports."""

    __slots__ = ("id", "bundle", "pid", "start_time", "created", "cgroups_path",
                 "annotations")

    def __init__(self, id: str, bundle: str, pid: int = 0,
                 start_time: int = 0, created: str = "", cgroups_path: str = "",
                 annotations: dict[str, str] | None = None) -> None:
        self.id = id
        self.bundle = bundle
        self.pid = pid
        self.start_time = start_time  # field 22 of /proc/<pid>/stat, to detect pid reuse
        self.created = created
        self.cgroups_path = cgroups_path
        self.annotations: dict[str, str] = {} if annotations is None else annotations

    def as_dict(self) -> dict[str, Any]:
        """The fields in order: state.json's content."""
        return {name: getattr(self, name) for name in self.__slots__}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, State) and self.as_dict() == other.as_dict()

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value

    def __repr__(self) -> str:
        return "State(" + ", ".join(f"{k}={v!r}" for k, v in self.as_dict().items()) + ")"

    def oci(self, status: str) -> dict[str, Any]:
        """The runtime-spec state JSON."""
        return {"ociVersion": OCI_VERSION, "id": self.id, "status": status,
                "pid": self.pid if status != "stopped" else 0, "bundle": self.bundle,
                "annotations": self.annotations, "created": self.created}


def proc_start_time(pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks, or None if it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            raw = f.read()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def _make_private(root: str) -> None:
    """The state root and any parent made for it are 0700, as runc's MkdirAll(root, 0700)
    (os.makedirs would give made parents 0777 less the umask)."""
    missing = []
    path = root
    while not os.path.exists(path):
        missing.append(path)
        parent = os.path.dirname(path) or "."
        if parent == path:
            break
        path = parent
    for path in reversed(missing):
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            continue  # made meanwhile by a parallel create


def _rmtree(path: str) -> None:
    """shutil.rmtree(path, ignore_errors=True) for a state dir, without shutil's imports
    (zlib, bz2, lzma...: ~7 ms): symlinks are removed, never followed."""
    try:
        entries = list(os.scandir(path))
    except OSError:
        entries = []
    for entry in entries:
        with suppress(OSError):
            if entry.is_dir(follow_symlinks=False):
                _rmtree(entry.path)
            else:
                os.unlink(entry.path)
    with suppress(OSError):
        os.rmdir(path)


class Store:
    def __init__(self, root: str | os.PathLike[str] = DEFAULT_ROOT) -> None:
        self.root = clean(root)

    def dir(self, cid: str) -> str:
        return join(self.root, check_id(cid))

    def fifo(self, cid: str) -> str:
        return join(self.dir(cid), "exec.fifo")

    def reserve(self, cid: str) -> str:
        """Create the container's directory; fails if the id is taken."""
        _make_private(self.root)
        path = self.dir(cid)
        try:
            os.mkdir(path, 0o700)  # state.json names the bundle, pid and cgroup: ours alone
        except FileExistsError:
            raise AlreadyExists(f"container {cid!r} already exists") from None
        return path

    def save(self, state: State) -> None:
        path = join(self.dir(state.id), "state.json")
        tmp = join(self.dir(state.id), "state.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with open(fd, "w") as f:
            f.write(cjson.dumps(state.as_dict()))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def load(self, cid: str) -> State:
        path = join(self.dir(cid), "state.json")
        try:
            with open(path) as f:
                data = cjson.loads(f.read())
        except FileNotFoundError:
            raise ContainerNotFound(f"container {cid!r} does not exist") from None
        except (OSError, ValueError) as exc:
            raise ContainerNotFound(f"container {cid!r}: unreadable state: {exc}") from None
        return State(**data)

    def status(self, state: State) -> str:
        if not state.pid or proc_start_time(state.pid) != state.start_time:
            return "stopped"
        if os.path.exists(self.fifo(state.id)):
            return "created"
        from services.runtime.cgroups import is_frozen

        return "paused" if is_frozen(state.cgroups_path) else "running"

    def remove(self, cid: str) -> None:
        _rmtree(self.dir(cid))

    def ids(self) -> list[str]:
        try:
            names = os.listdir(self.root)
        except OSError:
            return []
        return sorted(n for n in names if os.path.exists(join(join(self.root, n), "state.json")))
