"""Host-global names an engine's shim uses (the default bridge, the cgroup parent), claimed
so that two engines never share one.

Both names are the host's, not the engine's: a second engine on the same bridge hands out
the same leases, and the first to stop takes the bridge (and its rules) from under the
other's containers. Defaults differ per engine root (services/core/config.engine_names);
a claim catches configurations that name the same bridge or parent for two roots.

A claim is a file ``<DIR>/<kind>-<name>`` with the root, pid and process start time of the
shim that holds it. It is the claimant's while that process lives; a shim killed with -9
leaves a file whose process is gone (or whose pid another process reuses: its start time
differs), which the next start takes over.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from services.shim.network import lock
from vocab.errors import FailedPrecondition

DIR = Path("/run/lock/muelle-claims")


def _started(pid: int) -> int | None:
    """The start time (clock ticks since boot) of a live process ``pid``, else None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] in ("Z", "X"):  # a zombie holds nothing
        return None
    return int(fields[19])


def _alive(holder: dict[str, Any]) -> bool:
    started = _started(int(holder["pid"]))
    return started is not None and holder.get("started", started) == started


class Claims:
    def __init__(self, root: Path, names: dict[str, str], directory: Path = DIR,
                 lock_path: str = lock.PATH) -> None:
        """``names``: config key -> host-global name, e.g. {"network.bridge": "muelle0"}."""
        self.root = os.path.abspath(root)
        self.names = names
        self.dir = directory
        self.lock_path = lock_path
        self.pid = os.getpid()

    def _file(self, key: str, name: str) -> Path:
        return self.dir / f"{key}-{name}"

    def acquire(self) -> None:
        """Claim every name, or none: FAILED_PRECONDITION when a live engine with another
        root holds one."""
        with lock.held(self.lock_path):
            self.dir.mkdir(parents=True, exist_ok=True)
            for key, name in self.names.items():
                holder = self._holder(key, name)
                if holder and holder.get("root") != self.root and _alive(holder):
                    raise FailedPrecondition(
                        f"{key} {name!r} is in use by the muelle engine at {holder['root']} "
                        f"(shim pid {holder['pid']}): two engines must not share it; set "
                        f"another {key} in this engine's config, or leave it unset (each "
                        "root then gets its own)")
            for key, name in self.names.items():
                file = self._file(key, name)
                tmp = file.with_name(f".{file.name}.{self.pid}")
                tmp.write_text(json.dumps({"root": self.root, "pid": self.pid,
                                           "started": _started(self.pid)}))
                os.replace(tmp, file)

    def release(self) -> None:
        """Drop the claims this process holds (on a clean stop)."""
        with lock.held(self.lock_path):
            for key, name in self.names.items():
                holder = self._holder(key, name)
                if holder and holder.get("root") == self.root and holder.get("pid") == self.pid:
                    with contextlib.suppress(FileNotFoundError):
                        self._file(key, name).unlink()

    def _holder(self, key: str, name: str) -> dict[str, Any] | None:
        try:
            data = json.loads(self._file(key, name).read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("pid"), int):
            return None
        return data
