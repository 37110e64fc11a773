"""muelle-runtime as a library: the one face of ``services/runtime`` for everyone else.

The shim (its runtime driver, monitors and fork server), and the runtime's own command
line (main.py), call muelle's OCI runtime here and nowhere else:

* ``Runtime(root)``: the verbs on one state root (create, run, start, state, kill, pause,
  resume, exec, delete, list, knows), with typed errors: ``ContainerNotFound``,
  ``NotRunning``, ``NotSealed``; everything else is a MuelleError of the core taxonomy
  (or an OSError), whose message is what the CLI prints (``describe``).
* The warm paths: ``Create``/``Delete`` are typed calls that cross a process boundary
  as JSON (``encode``/``decode``: shim -> fork server -> monitor) and run through
  ``invoke``, forked warm (``spawn``) or in the calling process (``here``): no command
  line is built or parsed in between. ``preload`` imports what they need once, in the
  fork server, before it forks.
* What the shim reads or calls beside the verbs: ``proc_start_time``, ``is_frozen``,
  ``update_cgroup``, ``prime_migration``, ``sealed_command`` (how to start a module from
  a sealed copy of the interpreter), and ``linux``, the runtime's ctypes seam of Linux
  system calls (mount, setns, unshare...), which the shim's namespace helpers (and the
  CRI's pinned pod namespaces) use as well.

The verbs that go into a container (create, run, exec) refuse to run unless this process
executes a sealed copy of the interpreter (sealed.py, CVE-2019-5736 class): the CLI
re-executes itself so first; a library caller (the shim's monitors) must have been started
sealed (``sealed_command``). It is never re-executed from here.

Each verb imports its module when called, as the CLI did: ``start`` and ``state`` (three
runtime processes per container) need neither the init, nor seccomp, nor ctypes.
"""

from __future__ import annotations

import os
import sys

from services.runtime.errors import ContainerNotFound, NotRunning
from services.runtime.sealed import NotSealed
from services.runtime.store import DEFAULT_ROOT, Store, proc_start_time
from vocab.errors import MuelleError

# The CLI's create and run come through here: nothing at run time from typing, pathlib,
# json or contextlib (tests/unit/runtime/test_lean.py). The warm paths' values (calls.py)
# and the ctypes seam (linux.py) load when first asked for.
TYPE_CHECKING = False  # mypy treats TYPE_CHECKING as true wherever it is defined
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    from services.runtime import linux as linux
    from services.runtime.calls import Call as Call
    from services.runtime.calls import Create as Create
    from services.runtime.calls import Delete as Delete
    from services.runtime.cgroups.files import Primer
    from services.runtime.warm import WarmChild as WarmChild

__all__ = [
    "DEFAULT_ROOT", "ContainerNotFound", "Create", "Delete", "NotRunning", "NotSealed",
    "Runtime", "WarmChild", "decode", "describe", "encode", "here", "invoke", "is_frozen",
    "linux", "parse_signal", "preload", "prime_migration", "proc_start_time",
    "sealed_command", "spawn", "update_cgroup",
]


def __getattr__(name: str) -> Any:
    # ``linux`` loads ctypes: only for those who ask for it (not start or state); the warm
    # paths' values need typing and contextlib, which the CLI does without.
    if name == "linux":
        from services.runtime import linux

        return linux
    if name in ("Call", "Create", "Delete"):
        from services.runtime import calls

        return getattr(calls, name)
    if name == "WarmChild":
        from services.runtime.warm import WarmChild

        return WarmChild
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _sealed() -> None:
    from services.runtime import sealed

    sealed.ensure([], reexec=False)


class Runtime:
    """muelle-runtime's verbs on one state root (``--root`` of the CLI)."""

    def __init__(self, root: str | os.PathLike[str] = DEFAULT_ROOT) -> None:
        self.store = Store(root)

    @property
    def root(self) -> Path:
        from pathlib import Path

        return Path(self.store.root)

    def create(self, cid: str, bundle: str, pid_file: str | None = None,
               console_socket: str | None = None) -> None:
        """Create the container from the bundle; its init waits for ``start``."""
        _sealed()
        from services.runtime import create

        create.create(self.store, cid, bundle, pid_file, console_socket)

    def run(self, cid: str, bundle: str, pid_file: str | None = None,
            console_socket: str | None = None) -> int:
        """create + start + wait: the container's exit code."""
        _sealed()
        from services.runtime import run

        return run.run(self.store, cid, bundle, pid_file, console_socket)

    def exec(self, cid: str, process_file: str, pid_file: str | None = None,
             detach: bool = False, console_socket: str | None = None) -> int:
        """Run process.json in the container: its exit code (0 when detached)."""
        _sealed()
        from services.runtime import exec as exec_verb

        return exec_verb.exec_(self.store, cid, process_file, pid_file, detach,
                               console_socket)

    def start(self, cid: str) -> None:
        from services.runtime import start

        start.start(self.store, cid)

    def state(self, cid: str) -> dict[str, Any]:
        """The OCI state (id, pid, status, bundle...); ContainerNotFound if unknown."""
        from services.runtime import state

        return state.state(self.store, cid)

    def knows(self, cid: str) -> bool:
        """Whether there may be state for ``cid`` (a stat, no state read)."""
        return os.path.exists(self.store.dir(cid))

    def list(self) -> list[dict[str, Any]]:
        from services.runtime import state

        return state.listing(self.store)

    def kill(self, cid: str, signal: int, all_processes: bool = False) -> None:
        """Signal the init (or every process of the cgroup); NotRunning if stopped."""
        from services.runtime import kill

        kill.kill(self.store, cid, signal, all_processes)

    def pause(self, cid: str) -> None:
        from services.runtime import pause

        pause.pause(self.store, cid)

    def resume(self, cid: str) -> None:
        from services.runtime import pause

        pause.resume(self.store, cid)

    def delete(self, cid: str, force: bool = False) -> None:
        from services.runtime import delete

        delete.delete(self.store, cid, force)


def parse_signal(value: str) -> int:
    """KILL, SIGKILL, sigkill, 9 -> 9; InvalidArgument otherwise."""
    from services.runtime import kill

    return kill.parse_signal(value)


# -- the warm paths ------------------------------------------------------------------------


def encode(call: Call) -> str:
    """The call as JSON, to cross into another process of muelle's (a monitor)."""
    from services.runtime import calls, cjson

    verb = "create" if isinstance(call, calls.Create) else "delete"
    return cjson.dumps({"verb": verb, **call._asdict()})


def decode(text: str | dict[str, Any]) -> Call:
    from services.runtime import calls, cjson

    data = cjson.loads(text) if isinstance(text, str) else dict(text)
    kind = calls.VERBS.get(str(data.pop("verb", "")))
    if kind is None:
        raise ValueError(f"not a runtime call: {text!r}")
    return kind(**data)


def invoke(call: Call) -> None:
    """Run the call in this process (the warm paths, in a fork or not)."""
    from services.runtime import calls

    rt = Runtime(call.root)
    if isinstance(call, calls.Create):
        rt.create(call.id, call.bundle, call.pid_file or None, call.console_socket or None)
    else:
        rt.delete(call.id, call.force)


def describe(exc: BaseException) -> str:
    """An error as the CLI's one line: the message, never a traceback."""
    if isinstance(exc, MuelleError):
        return str(exc)
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}{': ' + str(exc.filename) if exc.filename else ''}"
    return f"internal error: {type(exc).__name__}: {exc}"


def spawn(call: Call, stdin: int, stdout: int, stderr: int, cwd: str) -> WarmChild:
    """The call in a forked child with that stdio: exit 0, or 1 with its error line on
    stderr (as ``muelle-runtime`` would, without starting an interpreter)."""
    from services.runtime import warm

    # Imported here, not in the child: a fork of a process with other threads (grpc's)
    # must not import (a lock another thread held at the fork stays held; seen as SIGABRT).
    preload()
    return warm.spawn(lambda: invoke(call), describe, stdin, stdout, stderr, cwd)


def here(call: Call, cwd: str, fds: dict[int, int]) -> tuple[int, str]:
    """The call in this process with ``fds`` (standard fd -> fd) in place meanwhile (the
    container's init inherits them): (0, "") or (1, its error line)."""
    from services.runtime import warm

    return warm.here(lambda: invoke(call), describe, cwd, fds)


def preload() -> None:
    """Import, once, what every warm create and delete needs, and look up what they look
    up: called by the shim's fork server before it forks (each fork then has it)."""
    global _preloaded
    if _preloaded:
        return
    import contextlib

    from services.runtime import calls, cgroups, console, create, delete, seccomp  # noqa: F401
    from services.runtime.cgroups import v1, v2  # noqa: F401

    cgroups.own_procs()  # looked up once, for every create's prime_migration
    # dlopen libseccomp once, for every container's create; without it only the creates
    # with a seccomp profile fail, and say so.
    with contextlib.suppress(MuelleError):
        seccomp.preload()
    _preloaded = True


_preloaded = False


def is_frozen(cgroups_path: str, root: Path | None = None) -> bool:
    """Whether the container's cgroup is frozen (paused), read from the cgroup."""
    from services.runtime import cgroups

    return cgroups.is_frozen(cgroups_path) if root is None \
        else cgroups.is_frozen(cgroups_path, root)


def update_cgroup(cgroups_path: str, cid: str, resources: dict[str, Any]) -> None:
    """Write changed limits (OCI linux.resources entries) into the container's existing
    cgroup, as ``runc update`` does; the runtime's state is not needed."""
    from services.runtime import cgroups

    cgroups.for_path(cgroups.normalise(cgroups_path, cid)).update(resources)


def prime_migration() -> Primer | None:
    """Warm the kernel's cgroup migration path ahead of the first create (cgroups v1)."""
    from services.runtime import cgroups

    return cgroups.prime_migration()


def sealed_command(module: str) -> list[str]:
    """argv that runs ``python -S -m MODULE`` from a sealed copy of this interpreter: how
    the shim starts a process that calls create in-process (a monitor, the fork server).
    -S: no site-packages; such a process needs only the stdlib and this repository (on
    PYTHONPATH), and skipping site saves ~20 ms."""
    return [sys.executable, "-S", "-m", "services.runtime.sealed", module]
