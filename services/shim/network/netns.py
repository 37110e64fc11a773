"""Named network namespaces: a file bind-mounted over /proc/<pid>/ns/net, like `ip netns`.

The file keeps the namespace alive with no process in it, so the shim wires it before the
runtime starts the container and every runtime joins it by path (config.json).
"""

from __future__ import annotations

import contextlib
import os
import threading

from services.runtime.api import linux
from services.shim import pinned
from vocab.errors import FailedPrecondition


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
    # A network namespace is per thread: a short-lived thread unshares one and pins it with
    # a bind mount (the mount namespace is the shim's). No `unshare` process: fork+exec
    # cost ~2.5 ms per container.
    error: list[OSError] = []

    def pin() -> None:
        try:
            linux.unshare(linux.CLONE_NEWNET)
            linux.mount(f"/proc/self/task/{threading.get_native_id()}/ns/net", path, None,
                        linux.MS_BIND)
        except OSError as exc:
            error.append(exc)

    thread = threading.Thread(target=pin, name="netns-pin")
    thread.start()
    thread.join()
    if error:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise FailedPrecondition(f"cannot create a network namespace: {error[0]}")


# Kept under their old names: the network code's callers use them.
is_pinned = pinned.is_pinned
remove = pinned.unpin
