"""Run from a sealed, in-memory copy of the interpreter (the CVE-2019-5736 defence).

Until its ``execve``, a container's init and every process ``exec`` starts are this
runtime: the Python interpreter, inside the container's namespaces. A container process
that opens ``/proc/<pid>/exe`` of such a process (or execs ``/proc/self/exe``) holds the
interpreter's file, and once nothing executes it any more it can write to it: every Python
program on the host would then run the container's code. runc and crun re-exec from a
sealed copy of their binary; so does muelle-runtime. The processes that go into a
container (the ``create``, ``run`` and ``exec`` verbs, and the shim's fork server, whose
forks run ``create`` warm) are started from a memfd holding a copy of the interpreter,
sealed against every write, so the only executable a container can reach is that copy.
They are also non-dumpable while in the container (create.py, exec.py), so without
CAP_SYS_PTRACE a container process cannot even open it.

The interpreter is a small launcher here (libpython is a shared library, reachable from a
container only through /proc/<pid>/map_files, which needs CAP_SYS_ADMIN), so the copy
costs well under a millisecond; a re-exec costs one interpreter start.

``python -m services.runtime.sealed MODULE ARGS...`` runs ``python -S -m MODULE ARGS``
from a sealed copy (the shim starts its fork server and monitors so).
"""

from __future__ import annotations

import fcntl
import os
import sys

from vocab.errors import FailedPrecondition

# typing and collections are not imported at run time: the runtime's create path stays
# lean (tests/unit/runtime/test_lean.py).
TYPE_CHECKING = False  # mypy treats TYPE_CHECKING as true wherever it is defined
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import NoReturn

SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
# The repository (or site-packages) holding ``services``: ``-S`` skips the .pth files.
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Our pid, set across our own re-exec (the pid survives execve): finding it set to our
# pid while not sealed means the re-exec did not give a sealed executable.
_MARK = "MUELLE_SEALED_EXEC"


class NotSealed(FailedPrecondition):
    """The interpreter could not be re-executed from a sealed copy."""


def is_sealed() -> bool:
    """Whether this process executes a sealed memfd (F_GET_SEALS fails on other files)."""
    try:
        fd = os.open("/proc/self/exe", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return fcntl.fcntl(fd, fcntl.F_GET_SEALS) & SEALS == SEALS
    except OSError:
        return False
    finally:
        os.close(fd)


def sealed_copy(path: str = "/proc/self/exe") -> int:
    """A close-on-exec memfd holding a copy of ``path``, sealed: no write, resize or
    further seal is possible, whatever capabilities the writer has."""
    fd = os.memfd_create("muelle-runtime", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        src = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            size = os.fstat(src).st_size
            done = 0
            while done < size:
                sent = os.sendfile(fd, src, None, size - done)
                if sent == 0:
                    break
                done += sent
        finally:
            os.close(src)
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, SEALS)
    except BaseException:
        os.close(fd)
        raise
    return fd


def ensure(module_argv: Sequence[str], reexec: bool = True) -> None:
    """Return if this process runs from a sealed copy; else re-exec itself from one as
    ``python -S -m MODULE ARGS`` (``module_argv``), keeping its inheritable fds. Raises
    NotSealed if that is impossible, or not allowed (``reexec`` false: the caller runs
    us in-process): better no container than a host binary within its reach."""
    if is_sealed():
        return
    if not reexec:
        raise NotSealed("muelle-runtime runs in a process that is not executing a sealed "
                        "copy of the interpreter; refusing to enter a container")
    if os.environ.get(_MARK) == str(os.getpid()):
        raise NotSealed("re-executed from a sealed copy of the interpreter, but "
                        "/proc/self/exe is not sealed")
    try:
        fd = sealed_copy()
    except OSError as exc:
        raise NotSealed(f"cannot make a sealed copy of the interpreter: {exc}") from None
    env = dict(os.environ)
    env[_MARK] = str(os.getpid())
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH", "")) if p)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    # argv[0] is the interpreter's own path, so Python finds its prefix (and venv) as usual.
    os.execve(fd, [sys.executable, "-S", "-m", *module_argv], env)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        sys.stderr.write("usage: python -m services.runtime.sealed MODULE [ARGS...]\n")
        sys.exit(2)
    try:
        ensure(args)
    except NotSealed as exc:
        sys.stderr.write(f"muelle: {exc}\n")
        sys.exit(1)
    # Already sealed (started from a sealed process): run the module in this process.
    import runpy

    sys.argv = args
    runpy.run_module(args[0], run_name="__main__", alter_sys=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
