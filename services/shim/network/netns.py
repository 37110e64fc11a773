"""Named network namespaces: a file bind-mounted over /proc/<pid>/ns/net, like `ip netns`.

The file keeps the namespace alive with no process in it, so the shim wires it before the
runtime starts the container and every runtime joins it by path (config.json).
"""

from __future__ import annotations

import contextlib
import os
import subprocess

from services.core.errors import FailedPrecondition


def create(path: str, userns: str = "") -> None:
    """A new, empty network namespace pinned at ``path`` (nothing if it exists), owned by
    the user namespace pinned at ``userns`` when given (the container's own)."""
    if is_pinned(path):
        return
    if userns:
        from services.shim import userns as usernsmod

        usernsmod.pin_netns(path, userns)
        return
    with open(path, "a"):
        pass
    # util-linux unshare bind-mounts the new namespace onto the file from outside it.
    proc = subprocess.run(["unshare", f"--net={path}", "true"], capture_output=True, text=True)
    if proc.returncode != 0:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise FailedPrecondition(f"cannot create a network namespace: {proc.stderr.strip()}")


def is_pinned(path: str) -> bool:
    """Whether ``path`` is a mounted namespace file (nsfs)."""
    try:
        with open("/proc/self/mountinfo") as f:
            return any(line.split()[4] == path for line in f)
    except OSError:
        return False


def remove(path: str) -> None:
    """Unpin and delete; the namespace (and its veth ends) go with its last user."""
    if is_pinned(path):
        subprocess.run(["umount", "-l", path], capture_output=True, check=False)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
