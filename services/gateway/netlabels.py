"""Labels of networks, kept by the gateway: network ID -> labels.

The shim makes and wires networks and knows nothing of labels; they are the API's
business (Compose labels the networks it makes and finds them again by label), so the
gateway keeps them beside its container records, in one small JSON file replaced
atomically. Labels of a network that no longer exists are dropped when it is removed
through the gateway, and ignored otherwise (a network ID is never reused).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from services.core import modes


class NetworkLabels:
    def __init__(self, state_dir: Path | None = None) -> None:
        """``None``: kept in memory only (an engine built without a state dir, in tests)."""
        self._path = state_dir / "network-labels.json" if state_dir else None
        self._guard = threading.Lock()
        self._labels: dict[str, dict[str, str]] = {}
        if self._path is not None and self._path.exists():
            loaded = json.loads(self._path.read_text())  # replaced atomically: never torn
            self._labels = {k: dict(v) for k, v in loaded.items()}

    def get(self, network_id: str) -> dict[str, str]:
        with self._guard:
            return dict(self._labels.get(network_id, {}))

    def set(self, network_id: str, labels: dict[str, str]) -> None:
        if not labels:
            return
        with self._guard:
            self._labels[network_id] = dict(labels)
            self._save()

    def drop(self, network_id: str) -> None:
        with self._guard:
            if self._labels.pop(network_id, None) is not None:
                self._save()

    def _save(self) -> None:
        if self._path is None:
            return
        tmp = self._path.with_name(f".{self._path.name}.tmp{os.getpid()}")
        with os.fdopen(modes.open_private(tmp), "w") as f:
            json.dump(self._labels, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self._path)
