"""Network definitions: one JSON file per network under ``<shim state>/network/networks``."""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from vocab.errors import AlreadyExists, InvalidArgument, NotFound

DEFAULT = "bridge"
RESERVED = ("bridge", "host", "none", "default")
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")


@dataclass
class Network:
    name: str
    id: str
    bridge: str
    subnet: str = ""
    gateway: str = ""
    created: str = ""
    # True for the default network: its bridge exists only while containers use it.
    builtin: bool = False

    @property
    def prefixlen(self) -> int:
        return int(self.subnet.split("/")[1])


def check_name(name: str) -> None:
    if not _NAME.match(name) or len(name) > 64:
        raise InvalidArgument(f"invalid network name {name!r}: use [a-zA-Z0-9][a-zA-Z0-9_.-]*")
    if name in RESERVED:
        raise InvalidArgument(f"network name {name!r} is reserved")


class Defs:
    def __init__(self, path: Path) -> None:
        self.path = path

    def _file(self, name: str) -> Path:
        return self.path / f"{name}.json"

    def save(self, net: Network) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = self._file(net.name).with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(net)))
        os.replace(tmp, self._file(net.name))

    def add(self, net: Network) -> None:
        if self._file(net.name).exists():
            raise AlreadyExists(f"network with name {net.name} already exists")
        self.save(net)

    def all(self) -> list[Network]:
        if not self.path.is_dir():
            return []
        out = []
        for file in sorted(self.path.glob("*.json")):
            try:
                out.append(Network(**json.loads(file.read_text())))
            except (ValueError, TypeError):
                continue
        return out

    def find(self, ref: str) -> Network:
        """By name, ID or unique ID prefix."""
        nets = self.all()
        for net in nets:
            if ref in (net.name, net.id):
                return net
        matches = [n for n in nets if ref and n.id.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        raise NotFound(f"network {ref} not found")

    def remove(self, name: str) -> None:
        self._file(name).unlink(missing_ok=True)
