"""Live restore: a (re)started shim rediscovers its containers from their dirs, keeps
watching the running ones (restart policy, exits), releases what stopped ones held while
no shim watched, and removes the half-created ones a killed shim left."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from services.shim import restart
from services.shim.meta import Meta
from services.shim.runtimes import Runtime
from vocab.errors import MuelleError

if TYPE_CHECKING:
    from services.shim.shim import Shim


def restore(shim: Shim) -> None:
    """Rediscover container dirs after a (re)start; drop half-created ones."""
    shim.networks.reconcile()
    for cdir in shim.store.all():
        meta = Meta.read(cdir)
        if meta is not None and not meta.creating:
            status = shim.state(cdir.id)
            shim.log.info("restored", container=cdir.id[:12], status=status.status)
            if status.status in ("running", "paused"):  # keep applying its policy
                shim.supervisor.watch(cdir.id, restart.parse(meta.restart_policy))
            if status.status == "stopped":
                shim.exited(cdir.id)  # it ended while no shim watched
            else:
                shim.exits.watch(cdir.id, shim.monitors.pidfd(cdir))
            continue
        # Restore runs before serving: no create of ours can be running, so this is
        # one the last shim was killed in. Its monitor may live on, with an init
        # blocked on its exec FIFO: all of it goes (the gateway's undo, seeing the
        # create fail, asks for the same).
        shim.log.warning("removing half-created container", container=cdir.id[:12],
                         monitor=shim.monitors.alive(cdir))
        runtime: Runtime | None = None
        with contextlib.suppress(MuelleError):
            runtime = shim.runtimes.get(meta.runtime if meta else "")
        shim.destroy(cdir, runtime, remove_volumes=True)
    shim.volumes.forget_containers({c.id for c in shim.store.all()})
