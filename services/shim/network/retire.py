"""Veths taken off their bridge at once and deleted on a thread.

Deleting a veth waits in the kernel for RCU grace periods (rcu_barrier in
netdev_run_todo): 15-20 ms here, the longest step of a container's removal. Taking it
off its bridge and down is one quick request, and after it the veth carries nothing: its
address lives in the container's namespace, which is going too. So a container's network
goes down at the speed of that request, and the delete finishes on a thread.

Nothing is left behind: each pending name is recorded as a file first and forgotten
once deleted, so a shim killed meanwhile deletes the rest when it starts again
(``Retiring.__init__``); a new veth of the same name waits for the old one
(``settle``); a clean stop waits for all (``close``).
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

from services.core.logging import get_logger
from services.shim.background import Background
from services.shim.network import links


class Retiring:
    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir
        self._guard = threading.Lock()
        self._pending: dict[str, Background] = {}
        self.log = get_logger(component="network")
        if self.dir.is_dir():
            for left in sorted(self.dir.iterdir()):  # from a shim that was killed
                self._delete(left.name)

    def retire(self, veth: str) -> None:
        """Take ``veth`` off its bridge and down now; delete it on a thread."""
        with self._guard:
            if veth in self._pending and not self._pending[veth].done():
                return  # on its way already
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / veth).touch()
        try:
            if not links.detach(veth):
                self._forget(veth)  # gone already (its namespace went first)
                return
        except OSError:
            self._delete(veth)  # could not detach: delete it here, as before
            return
        with self._guard:
            self._pending = {n: b for n, b in self._pending.items() if not b.done()}
            self._pending[veth] = Background(lambda: self._delete(veth),
                                             name=f"veth-del-{veth}")

    def settle(self, veth: str) -> None:
        """Return once a pending delete of ``veth`` is over."""
        with self._guard:
            pending = self._pending.pop(veth, None)
        if pending is not None:
            pending.wait()

    def close(self) -> None:
        """Wait for every pending delete."""
        with self._guard:
            pending, self._pending = list(self._pending.values()), {}
        for background in pending:
            background.wait()

    def _delete(self, veth: str) -> None:
        try:
            links.delete(veth)
        except OSError as exc:  # recorded still: the next start tries again
            self.log.warning("deleting a veth failed", veth=veth, error=str(exc))
            return
        self._forget(veth)

    def _forget(self, veth: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.dir / veth).unlink()
