"""What pulls in flight stand on, so garbage collection leaves it alone (containerd's leases).

A pull takes a lease and puts every blob and snapshot it will fetch or reuse on it *before*
it looks for them, and drops the lease once its image record is committed, it fails, or its
client goes away. Prune, image removal and container removal count leased content as used,
so a prune racing a pull can neither delete what the pull reuses from another image nor what
it has fetched so far, while still collecting everything else.

Leases live in memory only: every pull runs inside the image store process, so when that
process dies its pulls die with it, and a restart starts with no lease. Nothing a killed
pull fetched stays protected beyond it (it is then plain unreferenced content that the next
prune collects, or the next pull of the same image reuses).

Holding and reading happen under the store's ``commit_lock``, the lock garbage collection
runs under: a hold either lands before a collection starts (the content is spared) or after
it ended (the pull then finds the content gone and fetches it again), never in between.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable


class Lease:
    """Blobs and snapshots (chain IDs) one operation stands on."""

    def __init__(self, owner: Leases) -> None:
        self._owner = owner
        self.blobs: set[str] = set()
        self.chains: set[str] = set()

    def hold(self, blobs: Iterable[str] = (), chains: Iterable[str] = ()) -> None:
        """Protect ``blobs`` and ``chains`` from GC. Call before checking whether they exist;
        never while holding the commit lock."""
        with self._owner.lock:
            self.blobs.update(blobs)
            self.chains.update(chains)

    def release(self) -> None:
        self._owner.release(self)


class Leases:
    def __init__(self, lock: threading.Lock) -> None:
        self.lock = lock  # the store's commit_lock
        self._active: list[Lease] = []

    def new(self) -> Lease:
        lease = Lease(self)
        with self.lock:
            self._active.append(lease)
        return lease

    def release(self, lease: Lease) -> None:
        with self.lock:
            if lease in self._active:
                self._active.remove(lease)

    def active(self) -> bool:
        with self.lock:
            return bool(self._active)

    # The two readers below are for GC, which already holds ``lock``.

    def blobs(self) -> set[str]:
        return {b for lease in self._active for b in lease.blobs}

    def chains(self) -> set[str]:
        return {c for lease in self._active for c in lease.chains}
