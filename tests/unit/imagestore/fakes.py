"""A fake RegistryClient serving one image from an OCI layout (tests/support/images.py),
with knobs to misbehave: drop a stream after N bytes, corrupt a blob."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from muelle.types.v1 import types_pb2

from services.imagestore.registry_client import Content, Resolved
from tests.support.images import Entry, Layer, build_layout, busybox_layer
from vocab import digest as digestmod
from vocab.errors import DataLoss, NotFound, Unavailable


def second_layer() -> Layer:
    """A layer over busybox: a whiteout, an opaque dir with a same-layer survivor, a hardlink
    to a lower file and a new file."""
    return Layer([
        Entry("etc/group", "whiteout"),
        Entry("home/app/keep", data=b"kept\n"),  # listed before the opaque marker
        Entry("home", "opaque"),
        Entry("etc/motd", data=b"hello from layer 2\n"),
        Entry("bin/bb-link", "hardlink", target="bin/busybox"),
    ])


def layout_manifest(layout: Path) -> dict:  # type: ignore[type-arg]
    """The image manifest of an OCI layout's first index entry."""
    index = json.loads((layout / "index.json").read_text())
    digest = index["manifests"][0]["digest"].removeprefix("sha256:")
    return json.loads((layout / "blobs/sha256" / digest).read_text())  # type: ignore[no-any-return]


def build_two_layer(layout: Path, tag: str = "1") -> str:
    return build_layout(layout, [busybox_layer([Entry("home/old", data=b"old\n")]),
                                 second_layer()], tag=tag,
                        config={"Entrypoint": ["/bin/sh", "-c"], "WorkingDir": "/home",
                                "Labels": {"a": "b"}, "ExposedPorts": {"80/tcp": {}}})


class LayoutRegistry:
    def __init__(self, layout: Path, repository: str = "127.0.0.1:5000/demo/busybox") -> None:
        self.layout = layout
        self.repository = repository
        self.fetches: list[tuple[str, int]] = []
        self.drop_after: dict[str, int] = {}  # digest -> bytes served before failing
        self.corrupt: set[str] = set()
        self.gate: threading.Event | None = None  # blocks layer fetches while unset
        # digest -> (bytes served, event): the stream stops there until the event is set
        self.hold: dict[str, tuple[int, threading.Event]] = {}
        # Push side: repository -> {digest: bytes}, reference -> (media type, bytes).
        self.pushed: dict[str, dict[str, bytes]] = {}
        self.manifests: dict[str, tuple[str, bytes]] = {}
        self.mounts: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()

    def blob(self, digest: str) -> bytes:
        path = self.layout / "blobs" / "sha256" / digest.removeprefix("sha256:")
        if not path.is_file():
            raise NotFound(f"blob {digest} unknown")
        return path.read_bytes()

    def resolve(self, reference: str, platform: types_pb2.Platform | None) -> Resolved:
        index = json.loads((self.layout / "index.json").read_text())
        desc = index["manifests"][0]
        data = self.blob(desc["digest"])
        content = Content(desc["mediaType"], desc["digest"], desc["size"], data)
        return Resolved(reference, self.repository, content, content)

    def fetch_blob(self, repository: str, descriptor: types_pb2.Descriptor,
                   offset: int, cancel: object = None) -> Iterator[bytes]:
        with self._lock:
            self.fetches.append((descriptor.digest, offset))
        data = self.blob(descriptor.digest)
        if descriptor.digest in self.corrupt:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        limit = self.drop_after.pop(descriptor.digest, None)
        if self.gate is not None and descriptor.size > 10000:
            self.gate.wait(10)
        hold_at, release = self.hold.get(descriptor.digest, (-1, threading.Event()))
        pos = offset
        while pos < len(data):
            end = min(pos + 65536, len(data))
            if limit is not None and end > limit:
                yield data[pos:limit]
                raise Unavailable("connection reset")
            if pos < hold_at <= end:
                yield data[pos:hold_at]
                release.wait(10)
                pos = hold_at
                continue
            yield data[pos:end]
            pos = end

    def stat_blob(self, repository: str, digest: str) -> bool:
        return digest in self.pushed.get(repository, {})

    def mount_blob(self, repository: str, digest: str, from_path: str) -> bool:
        domain = repository.split("/", 1)[0]
        source = self.pushed.get(f"{domain}/{from_path}", {})
        if digest not in source:
            return False
        self.mounts.append((repository, digest, from_path))
        self.pushed.setdefault(repository, {})[digest] = source[digest]
        return True

    def push_blob(self, repository: str, descriptor: types_pb2.Descriptor,
                  chunks: Iterable[bytes]) -> int:
        data = b"".join(chunks)
        if digestmod.of_bytes(data) != descriptor.digest:
            raise DataLoss(f"blob {descriptor.digest} does not match")
        with self._lock:
            self.pushed.setdefault(repository, {})[descriptor.digest] = data
        return len(data)

    def push_manifest(self, reference: str, media_type: str, data: bytes) -> str:
        self.manifests[reference] = (media_type, data)
        return digestmod.of_bytes(data)


def change_config(layout: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """Rewrite ``layout``'s image config in place with ``change`` (its digest, the
    manifest's and the index's follow): a config that verifies but says something else."""
    index = json.loads((layout / "index.json").read_text())
    man_path = layout / "blobs/sha256" / index["manifests"][0]["digest"].removeprefix("sha256:")
    man = json.loads(man_path.read_text())
    cfg = json.loads((layout / "blobs/sha256" / man["config"]["digest"][7:]).read_text())
    change(cfg)
    raw = json.dumps(cfg).encode()
    digest = hashlib.sha256(raw).hexdigest()
    (layout / "blobs/sha256" / digest).write_bytes(raw)
    man["config"] = {**man["config"], "digest": f"sha256:{digest}", "size": len(raw)}
    raw_man = json.dumps(man).encode()
    man_digest = hashlib.sha256(raw_man).hexdigest()
    (layout / "blobs/sha256" / man_digest).write_bytes(raw_man)
    index["manifests"][0].update(digest=f"sha256:{man_digest}", size=len(raw_man))
    (layout / "index.json").write_text(json.dumps(index))
