"""The on-disk record of one container: $MUELLE_ROOT/shim/containers/<id>/.

    config.json   OCI runtime config (the bundle)       rootfs/      mount point
    meta.json     runtime, created_at, rootfs mounts     container.log json-file log
    monitor.pid   pid of the current monitor             init.pid     runtime's pid file
    started.json  started_at of the current run          status.json  exit status (monitor)
    monitor.log   the monitor's own diagnostics           delete.lock  see after_delete
    status.spare  room for status.json on a full disk

Files are replaced atomically (temp + fsync + rename), so a crash leaves either the old or
the new version, which is what live restore reads back.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.core import modes
from vocab.errors import InvalidArgument, is_no_space, no_space

ID_RE = re.compile(r"^[0-9a-f]{64}$")
STATUS_FILE = "status.json"  # the monitor writes it when the run ends


def check_id(cid: str) -> str:
    if not ID_RE.match(cid):
        raise InvalidArgument(f"invalid container id {cid!r}: want 64 lowercase hex chars")
    return cid


def write_json(path: Path, data: Any, durable: bool = True, spare: Path | None = None,
               what: str = "") -> None:
    """Replace ``path`` atomically. ``durable=False`` skips the fsync (0.2-2 ms here),
    for what a host crash makes moot anyway: an exit status or start time (the monitor
    dies with the host), a create's in-progress marker.

    On a full disk the new text goes into the blocks of the file it replaces, or of
    ``spare`` (a file set aside for this, renamed into place), when it fits: stopping a
    container and recording its exit must work when the disk is full. Otherwise
    ResourceExhausted, naming ``what`` (default: the path), and nothing is changed."""
    text = json.dumps(data).encode()  # dumps: the C encoder; dump is pure Python (~1 ms)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        # 0600: a container's config.json holds its environment (core/modes.py)
        with os.fdopen(modes.open_private(tmp), "wb") as f:
            f.write(text)
            if durable:
                f.flush()
                os.fsync(f.fileno())
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()  # a half-written temp file would hold space and mislead no one
        if not is_no_space(exc):
            raise
        if not _overwrite(path, text, durable) and \
                not (spare is not None and _overwrite(spare, text, durable, rename_to=path)):
            raise no_space(what or str(path), exc) from exc
        return
    os.replace(tmp, path)


def _overwrite(target: Path, text: bytes, durable: bool, rename_to: Path | None = None
               ) -> bool:
    """``text`` written over ``target``'s own blocks (a file's last block has room past
    its end), padded with spaces (valid JSON) to its old size, so no block is allocated;
    then renamed to ``rename_to``. False if it does not fit. One pwrite of a few hundred
    bytes: a kill leaves the old text or the new, not half of it."""
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        st = os.fstat(fd)
        size = st.st_size
        if len(text) > max(size, st.st_blocks * 512):
            return False
        os.pwrite(fd, text.ljust(size), 0)
        if durable:
            os.fsync(fd)
    except OSError:
        return False
    finally:
        os.close(fd)
    if rename_to is not None:
        os.replace(target, rename_to)
    return True


def make_spare(path: Path, size: int = 1024) -> None:
    """Set aside ``size`` bytes of blocks at ``path`` for write_json(spare=...) to use
    when the disk is full. Best effort: on a disk full already there is none."""
    with contextlib.suppress(OSError):
        fd = modes.open_private(path)
        try:
            os.write(fd, b" " * size)  # real bytes (not fallocate): overwritten in place
        except OSError:
            os.close(fd)
            path.unlink()
        else:
            os.close(fd)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None


# How long the shim waits for a monitor's runtime delete before it kills it (the runtime's
# own hook timeouts are the hooks' business; this bounds a hook without one).
DELETE_PATIENCE = 30.0


@dataclass
class ContainerDir:
    path: Path

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def config(self) -> Path:
        return self.path / "config.json"

    @property
    def rootfs(self) -> Path:
        return self.path / "rootfs"

    @property
    def meta(self) -> Path:
        return self.path / "meta.json"

    @property
    def userns(self) -> Path:
        """The container's user namespace, pinned (a bind mount) while it exists."""
        return self.path / "userns"

    @property
    def log(self) -> Path:
        return self.path / "container.log"

    @property
    def monitor_pid(self) -> Path:
        return self.path / "monitor.pid"

    @property
    def monitor_start(self) -> Path:
        """The monitor's start time in clock ticks: with its pid, who it is (a pid alone
        may be reused; a forked monitor's command line is its fork server's)."""
        return self.path / "monitor.start"

    @property
    def init_pid(self) -> Path:
        return self.path / "init.pid"

    @property
    def started(self) -> Path:
        return self.path / "started.json"

    @property
    def status(self) -> Path:
        return self.path / STATUS_FILE

    @property
    def status_spare(self) -> Path:
        """Blocks the monitor sets aside for status.json, used when the disk is full."""
        return self.path / "status.spare"

    @property
    def monitor_log(self) -> Path:
        return self.path / "monitor.log"

    @property
    def delete_lock(self) -> Path:
        """flock'ed by the monitor's runtime delete, which outlives the monitor: whoever
        deletes or recreates the container's runtime state takes it first (after_delete)."""
        return self.path / "delete.lock"

    @contextlib.contextmanager
    def after_delete(self, patience: float = DELETE_PATIENCE) -> Iterator[None]:
        """Held while the monitor's runtime delete (if any) is done and none can start. A
        delete still running after ``patience`` seconds (a poststop hook that hangs) is
        killed: its holder wrote its pid in the lock file."""
        try:
            fd = os.open(self.delete_lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:  # no container dir: nothing to wait for
            yield
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self._await_lock(fd, patience)
            yield
        finally:
            os.close(fd)

    def _await_lock(self, fd: int, patience: float) -> None:
        # Blocked in flock on a thread, so the lock is ours the moment the holder exits
        # (a run --rm waits for exactly that); past ``patience``, the holder is killed.
        import threading

        taker = threading.Thread(target=fcntl.flock, args=(fd, fcntl.LOCK_EX),
                                 name="delete-lock", daemon=True)
        taker.start()
        taker.join(patience)
        if taker.is_alive():
            holder = self.read_pid(self.delete_lock)
            if holder > 0:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(holder, signal.SIGKILL)
            taker.join()  # released as the killed holder exits

    def read_meta(self) -> dict[str, Any]:
        return read_json(self.meta) or {}

    def read_status(self) -> dict[str, Any] | None:
        data = read_json(self.status)
        return data if isinstance(data, dict) else None

    def read_pid(self, path: Path) -> int:
        try:
            return int(path.read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def clear_run(self) -> None:
        """Forget the previous run before starting a new one."""
        for path in (self.status, self.started, self.init_pid, self.monitor_pid,
                     self.monitor_start):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


class Store:
    def __init__(self, root: Path) -> None:
        self.root = root / "containers"
        self._root_text = str(self.root)
        # Not listable; each container's dir is 0700 (services/shim/access.py).
        modes.private_dir(root, modes.TRAVERSE_DIR)
        modes.private_dir(self.root, modes.TRAVERSE_DIR)

    def dir(self, cid: str) -> ContainerDir:
        return ContainerDir(self.root / check_id(cid))

    def all(self) -> list[ContainerDir]:
        return [ContainerDir(self.root / name) for name in self.ids()]

    def ids(self) -> list[str]:
        """The IDs of every container dir, sorted."""
        # scandir's entry types: no stat per container (list() runs this per `ps`)
        with os.scandir(self.root) as entries:
            return sorted(e.name for e in entries
                          if e.is_dir(follow_symlinks=False) and ID_RE.match(e.name))

    def status_file(self, cid: str) -> str:
        """ContainerDir.status as a string, without a path object: list() asks this of
        every container."""
        return f"{self._root_text}/{cid}/{STATUS_FILE}"


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie counts as dead.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False
