"""IP address management: per-network leases in a JSON file, under a file lock.

A lease maps an address to a container ID; it lives until the container's network is torn
down, so a restarted shim finds every address still in use.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

from services.shim.store import write_json
from vocab.errors import FailedPrecondition


class Pool:
    """The leases of one network (``<dir>/<network>.json``). Callers hold the network lock."""

    def __init__(self, path: Path, subnet: str, gateway: str) -> None:
        self.path = path
        self.subnet = ipaddress.ip_network(subnet)
        self.gateway = ipaddress.ip_address(gateway)

    def leases(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        return dict(data.get("leases", {}))

    def _save(self, leases: dict[str, str]) -> None:
        if not leases:
            self.path.unlink(missing_ok=True)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # store.write_json: a release (stop, rm) must work on a full disk
        write_json(self.path, {"subnet": str(self.subnet), "leases": leases},
                   what=f"the address leases ({self.path})")

    def allocate(self, owner: str, wanted: str = "") -> str:
        """An address for ``owner`` (the one it holds already, if any)."""
        leases = self.leases()
        for ip, who in leases.items():
            if who == owner:
                return ip
        if wanted:
            addr = ipaddress.ip_address(wanted)
            if addr not in self.subnet or addr in (self.gateway, self.subnet.network_address,
                                                   self.subnet.broadcast_address):
                raise FailedPrecondition(f"address {wanted} is not usable in {self.subnet}")
            if wanted in leases:
                raise FailedPrecondition(f"address {wanted} is already in use")
            leases[wanted] = owner
            self._save(leases)
            return wanted
        for addr in self.subnet.hosts():
            if addr != self.gateway and str(addr) not in leases:
                leases[str(addr)] = owner
                self._save(leases)
                return str(addr)
        raise FailedPrecondition(f"no free address left in {self.subnet}")

    def release(self, owner: str) -> None:
        leases = self.leases()
        kept = {ip: who for ip, who in leases.items() if who != owner}
        if kept != leases:
            self._save(kept)
