"""Container output in the kubelet's CRI log format, at the path the pod's config names.

The kubelet (``kubectl logs``, its log rotation) reads ``<log_directory>/<log_path>``, one
line per chunk of output::

    2016-10-06T00:17:09.669794202Z stdout F a whole line
    2016-10-06T00:17:09.669794202Z stderr P part of a line (no newline yet)

A follower thread per started container reads the engine's log stream (engine.v1
ContainerLogs, follow) and appends those lines; it ends when the container stops and its
stream ends. The engine keeps the output itself, so a follower started late (muelle-cri
restarted) catches up from the last time already in the file, without duplicating it.
ReopenContainerLog makes the follower reopen the path (the kubelet renamed the file to
rotate it).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

from muelle.engine.v1 import engine_pb2, engine_pb2_grpc

from services.core.logging import get_logger
from vocab import timefmt
from vocab.errors import MuelleError


def cri_lines(entry: engine_pb2.LogEntry) -> list[bytes]:
    """The CRI log lines of one chunk of output: full lines tagged F, a trailing part of a
    line P (the next chunk continues it)."""
    stamp = entry.time or timefmt.now_rfc3339()
    stream = "stderr" if entry.stream == "stderr" else "stdout"
    out = []
    parts = entry.data.split(b"\n")
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if last and not part:
            break  # the chunk ended with a newline
        tag = b"P" if last else b"F"
        out.append(f"{stamp} {stream} ".encode() + tag + b" " + part + b"\n")
    return out


def last_time(path: str) -> int:
    """ns of the last line already in the CRI log at ``path`` (0: none)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 65536))
            tail = f.read().splitlines()
    except OSError:
        return 0
    for line in reversed(tail):
        stamp = line.split(b" ", 1)[0].decode(errors="replace")
        try:
            return timefmt.parse_ns(stamp)
        except ValueError:
            continue
    return 0


class Follower(threading.Thread):
    """Appends one container's output to its CRI log file until the output ends."""

    def __init__(self, engine: engine_pb2_grpc.EngineStub, cid: str, path: str,
                 on_end: Callable[[str], None]) -> None:
        super().__init__(name=f"cri-log-{cid[:12]}", daemon=True)
        self.engine = engine
        self.cid = cid
        self.path = path
        self.on_end = on_end
        self._lock = threading.Lock()  # the file descriptor: written here, reopened by RPCs
        self._fd = -1
        self._done = False

    def _open(self) -> int:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)

    def reopen(self) -> None:
        """Open the path anew (the kubelet renamed the file to rotate it): the new file
        exists when this returns, as the kubelet checks."""
        fd = self._open()
        with self._lock:
            if self._done:  # the output ended meanwhile: nothing writes any more
                os.close(fd)
                return
            old, self._fd = self._fd, fd
        if old >= 0:
            os.close(old)

    def close(self) -> None:
        """For a follower that never started."""
        with self._lock:
            self._done = True
            if self._fd >= 0:
                os.close(self._fd)
            self._fd = -1

    def run(self) -> None:
        after = last_time(self.path)
        try:
            if self._fd < 0:
                self.reopen()
            req = engine_pb2.ContainerLogsRequest(container=self.cid, follow=True,
                                                  stdout=True, stderr=True)
            for entry in self.engine.ContainerLogs(req):
                if after and entry.time and _ns(entry.time) <= after:
                    continue  # written by the follower before a restart of muelle-cri
                with self._lock:
                    os.write(self._fd, b"".join(cri_lines(entry)))
        except (MuelleError, OSError) as exc:
            get_logger().warning("cri log follower ended", container=self.cid, error=str(exc))
        finally:
            with self._lock:
                self._done = True
                if self._fd >= 0:
                    os.close(self._fd)
                self._fd = -1
            self.on_end(self.cid)


def _ns(text: str) -> int:
    try:
        return timefmt.parse_ns(text)
    except ValueError:
        return 0


class Logs:
    """The followers of this process, one per container at most."""

    def __init__(self, engine: engine_pb2_grpc.EngineStub) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._followers: dict[str, Follower] = {}

    def follow(self, cid: str, path: str, start: Callable[[], object] = lambda: None) -> None:
        """Follow the container's output into ``path``. The file exists before ``start``
        (the engine's StartContainer) runs, as the kubelet opens it right after: an error
        making it fails the start, as in containerd."""
        if not path:
            start()
            return
        with self._lock:
            if cid in self._followers:
                follower = None
            else:
                follower = Follower(self.engine, cid, path, self._ended)
                self._followers[cid] = follower
        if follower is None:
            start()
            return
        try:
            follower.reopen()
            start()
        except BaseException:
            self._ended(cid)
            follower.close()
            raise
        follower.start()

    def _ended(self, cid: str) -> None:
        with self._lock:
            self._followers.pop(cid, None)

    def reopen(self, cid: str) -> bool:
        """Reopen the follower's file; False when none runs (the container stopped)."""
        with self._lock:
            follower = self._followers.get(cid)
        if follower is None:
            return False
        follower.reopen()
        return True

    def wait(self, cid: str, timeout: float) -> None:
        """Until the container's follower has written all output (its stream ended)."""
        with self._lock:
            follower = self._followers.get(cid)
        if follower is not None:
            follower.join(timeout)
