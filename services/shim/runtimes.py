"""OCI runtime drivers: the command lines of the runtime CLI (runc's verbs).

Every runtime gets its own state root ($MUELLE_RUN/runtime/<name>) so engines and
runtimes side by side never clash. crun 1.8 refuses cgroup v1/v2 hybrid hosts; it runs
in a private mount namespace where the v2 mount at /sys/fs/cgroup/unified is unmounted.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.core.config import Config
from services.runtime import api
from services.runtime.api import NotRunning
from services.shim.runtime_output import error_text
from vocab.errors import FailedPrecondition, InvalidArgument, MuelleError

__all__ = ["KNOWN", "NativeRuntime", "Runtime", "Runtimes", "error_text"]

KNOWN = ("muelle", "runc", "crun")
UNIFIED = "/sys/fs/cgroup/unified"
# Runs crun in a private mount namespace without the hybrid cgroup2 mount.
_CRUN_WRAPPER = 'umount -l /sys/fs/cgroup/unified 2>/dev/null; exec "$0" "$@"'


def _hybrid() -> bool:
    try:
        with open("/proc/self/mountinfo") as f:
            return any(line.split()[4] == UNIFIED for line in f)
    except OSError:
        return False


@dataclass
class Runtime:
    """One OCI runtime binary and its state root."""

    name: str
    path: str
    root: Path

    def prefix(self) -> list[str]:
        """argv prefix of every command: wrapper (crun on hybrid hosts), binary, --root."""
        base = [self.path, "--root", str(self.root)]
        if self.name == "crun" and _hybrid():
            return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                    _CRUN_WRAPPER, *base]
        return base

    def create_argv(self, cid: str, bundle: str, pid_file: str,
                    console_socket: str = "") -> list[str]:
        console = ["--console-socket", console_socket] if console_socket else []
        return [*self.prefix(), "create", "--bundle", bundle, "--pid-file", pid_file,
                *console, cid]

    def delete_argv(self, cid: str, force: bool = False) -> list[str]:
        return [*self.prefix(), "delete", *(["--force"] if force else []), cid]

    def create_command(self, cid: str, bundle: str, pid_file: str,
                       console_socket: str = "") -> str:
        """``create`` for the monitor (its --create): JSON of the command line to run."""
        return json.dumps(self.create_argv(cid, bundle, pid_file, console_socket))

    def delete_command(self, cid: str, force: bool = False) -> str:
        return json.dumps(self.delete_argv(cid, force))

    def exec_argv(self, cid: str, process_file: str, pid_file: str,
                  console_socket: str = "") -> list[str]:
        """``exec`` in the foreground: the runtime exits with the process's code. With a
        console socket, detached (runc and crun take one only so): services/shim/exec_wait
        waits for the process then."""
        console = ["--detach", "--tty", "--console-socket", console_socket] \
            if console_socket else []
        return [*self.prefix(), "exec", "--process", process_file, "--pid-file", pid_file,
                *console, cid]

    def _run(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            return subprocess.run([*self.prefix(), *args], capture_output=True, text=True,
                                  timeout=timeout, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise FailedPrecondition(f"{self.name} {args[0]}: {exc}") from exc

    def start(self, cid: str) -> None:
        proc = self._run("start", cid)
        if proc.returncode != 0:
            raise FailedPrecondition(f"{self.name} start: {error_text(proc.stderr)}")

    def pause(self, cid: str) -> None:
        proc = self._run("pause", cid)
        if proc.returncode != 0:
            raise FailedPrecondition(f"{self.name} pause: {error_text(proc.stderr)}")

    def resume(self, cid: str) -> None:
        proc = self._run("resume", cid)
        if proc.returncode != 0:
            raise FailedPrecondition(f"{self.name} resume: {error_text(proc.stderr)}")

    def kill(self, cid: str, signal: int) -> None:
        """NotRunning if the runtime has no running container to signal."""
        proc = self._run("kill", cid, str(signal))
        if proc.returncode != 0:
            # Told apart by the runtime's state, not by the words of its message.
            state = self.state(cid)
            if state is None or state.get("status") == "stopped":
                raise NotRunning(f"container {cid} is not running")
            raise FailedPrecondition(f"{self.name} kill: {error_text(proc.stderr)}")

    def may_know(self, cid: str) -> bool:
        """Whether the runtime may have state for ``cid``: runc, crun and muelle-runtime
        all keep it in ``<root>/<id>/``. A cheap check that spares a ``state`` process."""
        return (self.root / cid).exists()

    def state(self, cid: str) -> dict[str, Any] | None:
        """The runtime's state JSON, or None when it does not know the container."""
        proc = self._run("state", cid)
        if proc.returncode != 0:
            return None
        try:
            data = json.loads(proc.stdout)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def delete(self, cid: str, force: bool = False) -> None:
        proc = self._run("delete", *(["--force"] if force else []), cid)
        if proc.returncode != 0 and self.state(cid) is not None:
            raise FailedPrecondition(f"{self.name} delete: {error_text(proc.stderr)}")

    def version(self) -> str:
        try:
            proc = subprocess.run([self.path, "--version"], capture_output=True, text=True,
                                  timeout=10, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"unavailable: {exc}"
        lines = (proc.stdout or proc.stderr).strip().splitlines()
        return lines[0] if lines else ""


class NativeRuntime(Runtime):
    """muelle's own runtime from this installation, through its library face
    (services/runtime/api.py): start/kill/state/delete in this process, create and the
    monitor's delete as face calls the monitor runs warm (monitor.start_runtime), never
    as a new interpreter each. Errors read as the CLI's would; NotRunning stays
    NotRunning."""

    def face(self) -> api.Runtime:
        self.root.mkdir(parents=True, exist_ok=True)
        return api.Runtime(self.root)

    def _call(self, verb: str, fn: Callable[[api.Runtime], object]) -> object:
        try:
            return fn(self.face())
        except NotRunning as exc:
            raise NotRunning(str(exc)) from None
        except MuelleError as exc:
            raise FailedPrecondition(f"{self.name} {verb}: {exc}") from None
        except OSError as exc:
            raise FailedPrecondition(f"{self.name} {verb}: {exc.strerror or exc}") from None

    def create_command(self, cid: str, bundle: str, pid_file: str,
                       console_socket: str = "") -> str:
        return api.encode(api.Create(str(self.root), cid, bundle, pid_file, console_socket))

    def delete_command(self, cid: str, force: bool = False) -> str:
        return api.encode(api.Delete(str(self.root), cid, force))

    def may_know(self, cid: str) -> bool:
        return self.face().knows(cid)

    def start(self, cid: str) -> None:
        self._call("start", lambda rt: rt.start(cid))

    def pause(self, cid: str) -> None:
        self._call("pause", lambda rt: rt.pause(cid))

    def resume(self, cid: str) -> None:
        self._call("resume", lambda rt: rt.resume(cid))

    def kill(self, cid: str, signal: int) -> None:
        def signal_it(rt: api.Runtime) -> None:
            try:
                rt.kill(cid, signal)
            except api.ContainerNotFound:  # deleted meanwhile: not running either
                raise NotRunning(f"container {cid} is not running") from None

        try:
            self._call("kill", signal_it)
        except NotRunning:
            raise NotRunning(f"container {cid} is not running") from None

    def state(self, cid: str) -> dict[str, Any] | None:
        try:
            data = self._call("state", lambda rt: rt.state(cid))
        except FailedPrecondition:
            return None
        return data if isinstance(data, dict) else None

    def delete(self, cid: str, force: bool = False) -> None:
        try:
            self._call("delete", lambda rt: rt.delete(cid, force))
        except FailedPrecondition:
            if self.state(cid) is not None:
                raise


class Runtimes:
    """Name -> Runtime, from cfg.shim.runtimes or the PATH."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.default = cfg.shim.default_runtime or "muelle"
        self._root = cfg.run / "runtime"

    def binary(self, name: str) -> str | None:
        configured = self.cfg.shim.runtimes.get(name)
        if configured:
            return configured if os.access(configured, os.X_OK) else None
        if name == "muelle":
            candidate = Path(sys.executable).parent / "muelle-runtime"
            if os.access(candidate, os.X_OK):
                return str(candidate)
            return shutil.which("muelle-runtime")
        if name in KNOWN:
            return shutil.which(name)
        return None

    def names(self) -> list[str]:
        return list(dict.fromkeys([*KNOWN, *self.cfg.shim.runtimes]))

    def get(self, name: str = "") -> Runtime:
        name = name or self.default
        if name not in self.names():
            raise InvalidArgument(f"unknown runtime {name!r}")
        path = self.binary(name)
        if not path:
            raise FailedPrecondition(f"runtime {name!r} is not installed")
        return self._make(name, path)

    def _make(self, name: str, path: str) -> Runtime:
        if name == "muelle" and not self.cfg.shim.runtimes.get(name):
            return NativeRuntime(name, path, self._root / name)
        return Runtime(name, path, self._root / name)

    def available(self) -> list[Runtime]:
        out = []
        for name in self.names():
            path = self.binary(name)
            if path:
                out.append(self._make(name, path))
        return out
