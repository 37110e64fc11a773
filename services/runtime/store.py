"""The state store: one directory per container under --root, plus liveness checks.

    <root>/<id>/state.json   what create recorded (pid, its start time, bundle, cgroups)
    <root>/<id>/exec.fifo    exists while the init waits for ``start`` (status created)

The status is derived, never stored: the init is gone or its pid was reused (start time
differs) -> stopped; the fifo still exists -> created; else running.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, NamedTuple

from services.runtime.errors import ContainerNotFound
from vocab.errors import AlreadyExists, InvalidArgument

OCI_VERSION = "1.0.2"
DEFAULT_ROOT = "/run/muelle-runtime"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}$")


def check_id(cid: str) -> str:
    if not _ID.match(cid or ""):
        raise InvalidArgument(f"invalid container id {cid!r}")
    return cid


class State(NamedTuple):
    # A NamedTuple, not a dataclass: dataclasses imports inspect, ~10 ms of every call.
    id: str
    bundle: str
    pid: int = 0
    start_time: int = 0  # field 22 of /proc/<pid>/stat, to detect pid reuse
    created: str = ""
    cgroups_path: str = ""
    annotations: dict[str, str] = {}  # never mutated, like the tuple itself

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


def _make_private(root: Path) -> None:
    """The state root and any parent made for it are 0700, as runc's MkdirAll(root, 0700)
    (Path.mkdir would give made parents 0777 less the umask)."""
    missing = []
    path = root
    while not path.exists():
        missing.append(path)
        path = path.parent
    for path in reversed(missing):
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            continue  # made meanwhile by a parallel create


class Store:
    def __init__(self, root: str | os.PathLike[str] = DEFAULT_ROOT) -> None:
        self.root = Path(root)

    def dir(self, cid: str) -> Path:
        return self.root / check_id(cid)

    def fifo(self, cid: str) -> Path:
        return self.dir(cid) / "exec.fifo"

    def reserve(self, cid: str) -> Path:
        """Create the container's directory; fails if the id is taken."""
        _make_private(self.root)
        path = self.dir(cid)
        try:
            path.mkdir(mode=0o700)  # state.json names the bundle, pid and cgroup: ours alone
        except FileExistsError:
            raise AlreadyExists(f"container {cid!r} already exists") from None
        return path

    def save(self, state: State) -> None:
        path = self.dir(state.id) / "state.json"
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with open(fd, "w") as f:
            f.write(json.dumps(state._asdict()))  # dumps: the C encoder (dump is pure Python)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def load(self, cid: str) -> State:
        path = self.dir(cid) / "state.json"
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ContainerNotFound(f"container {cid!r} does not exist") from None
        except (OSError, ValueError) as exc:
            raise ContainerNotFound(f"container {cid!r}: unreadable state: {exc}") from None
        return State(**data)

    def status(self, state: State) -> str:
        if not state.pid or proc_start_time(state.pid) != state.start_time:
            return "stopped"
        if self.fifo(state.id).exists():
            return "created"
        from services.runtime.cgroups import is_frozen

        return "paused" if is_frozen(state.cgroups_path) else "running"

    def remove(self, cid: str) -> None:
        import shutil  # only create and delete remove; shutil costs the other verbs ~4 ms

        shutil.rmtree(self.dir(cid), ignore_errors=True)

    def ids(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / "state.json").exists())
