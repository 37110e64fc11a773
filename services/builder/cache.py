"""The build cache: which image a step made, by what the classic builder compares (the
parent image, the step as recorded in history, which names its build args and the
content hash of what it copies, and the config it commits). Kept in a small JSON file
under the gateway's state dir, so it survives an engine restart; an entry whose image is
gone is simply a miss."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any


def _image(value: Any) -> str | None:
    """An entry's image ID: "sha256:..." or [image, parent] (older files hold the first)."""
    if isinstance(value, list) and value and isinstance(value[0], str):
        return value[0]
    return value if isinstance(value, str) else None


def step_key(parent: str, created_by: str, config: dict[str, Any], extra: str = "") -> str:
    raw = json.dumps([parent, created_by, config, extra], sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()


# Each cache file's entries as last parsed, with the (inode, size, mtime) they were read
# at: every save renames a new file into place, so a change shows in the signature.
_PARSED: dict[Path, tuple[tuple[int, int, int], dict[str, Any]]] = {}
_PARSED_LOCK = threading.Lock()


class Cache:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def _load(self) -> dict[str, Any]:
        """The file's entries (shared: copy before changing them). Parsed again only
        when the file changed: a build looks a step up per instruction, and a cache of
        thousands of steps is a JSON document of megabytes."""
        try:
            st = os.stat(self.path)
            signature = (st.st_ino, st.st_size, st.st_mtime_ns)
            with _PARSED_LOCK:
                parsed = _PARSED.get(self.path)
            if parsed is not None and parsed[0] == signature:
                return parsed[1]
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        with _PARSED_LOCK:
            _PARSED[self.path] = (signature, data)
        return data

    def get(self, key: str) -> str | None:
        with self._lock:
            return _image(self._load().get(key))

    def items(self) -> dict[str, str]:
        """Every step remembered: key -> image ID."""
        with self._lock:
            found = {k: _image(v) for k, v in self._load().items()}
        return {k: v for k, v in found.items() if v}

    def intermediates(self, stored: set[str]) -> set[str]:
        """The images a later step was made from, that step's image being in ``stored``:
        what Docker hides from `images` (an image with children)."""
        with self._lock:
            values = list(self._load().values())
        return {v[1] for v in values if isinstance(v, list) and len(v) == 2
                and v[0] in stored and isinstance(v[1], str) and v[1]}

    def ancestors(self, images: set[str]) -> set[str]:
        """Every image that one of ``images`` was built from, step by step back to the
        build's base: what a prune keeps while ``images`` stay (Docker deletes a dangling
        image's parents with it, never a parent of an image that stays)."""
        with self._lock:
            values = list(self._load().values())
        parents: dict[str, set[str]] = {}
        for v in values:
            if isinstance(v, list) and len(v) == 2 and all(isinstance(x, str) for x in v) \
                    and v[1]:
                parents.setdefault(v[0], set()).add(v[1])
        found: set[str] = set()
        todo = [p for image in images for p in parents.get(image, ())]
        while todo:
            image = todo.pop()
            if image not in found:
                found.add(image)
                todo.extend(parents.get(image, ()))
        return found

    def forget(self, keys: set[str]) -> None:
        with self._lock:
            data = self._load()
            self._save({k: v for k, v in data.items() if k not in keys})

    def put(self, key: str, image_id: str, parent: str = "") -> None:
        """Remember the step's image, and the image it was made from (its parent)."""
        with self._lock:
            data = dict(self._load())
            data[key] = [image_id, parent] if parent else image_id
            self._save(data)

    def _save(self, data: dict[str, Any]) -> None:
        """Written whole and renamed into place (a crash leaves the old file or the new)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".build-cache-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(data, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            os.unlink(tmp)
            raise
        # What was written is what the next lookup reads (also where a reused inode and
        # a coarse mtime would leave the signature unchanged).
        st = os.stat(self.path)
        with _PARSED_LOCK:
            _PARSED[self.path] = ((st.st_ino, st.st_size, st.st_mtime_ns), data)
