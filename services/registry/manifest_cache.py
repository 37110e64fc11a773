"""The registry service's manifest cache: verified manifests and indexes by digest, in
memory, least recently used first out once over a byte limit.

Content by digest never changes, so a hit needs no upstream request: resolving a digest
reference, an index's platform child, or a mirror's `manifests/<digest>` is served here
after the first time. Tags move, so a tag is always resolved upstream; the manifest it
names is cached under its digest on the way. Like the blob cache, entries are shared across
repositories by digest.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from services.registry.manifests import ManifestContent

DEFAULT_MAX_BYTES = 16 << 20  # manifests are small (≤ 4 MiB, usually a few KiB)


class ManifestCache:
    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, ManifestContent] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0  # for logs and tests

    def get(self, digest: str) -> ManifestContent | None:
        with self._lock:
            found = self._entries.get(digest)
            if found is not None:
                self._entries.move_to_end(digest)
                self.hits += 1
            return found

    def put(self, content: ManifestContent) -> None:
        """Keep ``content`` (already verified against its digest)."""
        digest = content.descriptor.digest
        size = len(content.content)
        if not digest or size > self.max_bytes:
            return
        with self._lock:
            old = self._entries.pop(digest, None)
            if old is not None:
                self._bytes -= len(old.content)
            self._entries[digest] = content
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= len(evicted.content)

    def __len__(self) -> int:
        return len(self._entries)
