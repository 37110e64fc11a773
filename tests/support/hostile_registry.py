"""A hostile OCI registry on loopback: what an attacker's or a broken registry serves.

Built on tests/support/fake_registry.py (an OCI layout served read-only, ``corrupt_blobs``,
``garbage_manifest``); the modes are attributes a test may change between pulls:

    manifest_mode  "ok" | "garbage" | "huge" (endless bytes, no length) |
                   "redirect-loop" | "500"
    blob_mode      "ok" | "endless" (zeros for ever, no length) |
                   "lying-length" (Content-Length of 1 TiB, then the real bytes) |
                   "overflow" (the real bytes, then endless junk, no length) |
                   "slowloris" (one byte every ``slow_interval`` s) |
                   "wrong-digest" | "redirect-loop" | "500"
                   (for layers; the manifest and config are served as they are)
    declared_size  when set, the manifest declares every layer this large (its digest is
                   computed over the rewritten bytes, as a registry would serve it);
                   declared_config_size the same for the config

It records each request (``requests``: method, path, Range header) and each blob response
the client cut off (``disconnected`` is set, ``cut`` lists the digests), so a test waits
for events instead of time. Threaded, with at most ``MAX_CONNECTIONS`` at once; every
endless loop ends when the server is closed.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
import time
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from tests.support.fake_registry import FakeRegistry

MAX_CONNECTIONS = 32
TIB = 1 << 40
_CHUNK = 64 * 1024


class HostileRegistry(FakeRegistry):
    def __init__(self, layout: Path) -> None:
        super().__init__(layout)
        self.manifest_mode = "ok"
        self.blob_mode = "ok"
        self.declared_size: int | None = None
        self.declared_config_size: int | None = None
        self.slow_interval = 0.2
        # Zeros are written at most this fast in "endless": enough to fill a disk in a
        # few minutes, little enough that a failed test does not.
        self.endless_rate = 16 << 20
        self.hostile_requests: list[tuple[str, str, str]] = []
        self.cut: list[str] = []
        self.disconnected = threading.Event()
        self.stopping = threading.Event()
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    # Two modes are FakeRegistry's own switches.
    @property
    def manifest_mode(self) -> str:
        return self._manifest_mode

    @manifest_mode.setter
    def manifest_mode(self, mode: str) -> None:
        self._manifest_mode = mode
        self.garbage_manifest = mode == "garbage"

    @property
    def blob_mode(self) -> str:
        return self._blob_mode

    @blob_mode.setter
    def blob_mode(self, mode: str) -> None:
        self._blob_mode = mode
        self.corrupt_blobs = mode == "wrong-digest"

    # -- what is served -------------------------------------------------------------------

    def manifest(self) -> tuple[bytes, str]:
        """The image manifest as served now (and its media type)."""
        index = json.loads((self.layout / "index.json").read_text())
        desc = index["manifests"][0]
        body = self._blob(desc["digest"]) or b""
        if self.declared_size is not None or self.declared_config_size is not None:
            doc = json.loads(body)
            for layer in doc["layers"]:
                layer["size"] = self.declared_size or layer["size"]
            doc["config"]["size"] = self.declared_config_size or doc["config"]["size"]
            body = json.dumps(doc).encode()
        return body, desc["mediaType"]

    def layer_digests(self) -> list[str]:
        return [layer["digest"] for layer in json.loads(self.manifest()[0])["layers"]]

    def blob_requests(self, digest: str) -> list[str]:
        """The Range headers ("" for none) of the GETs of blob ``digest`` so far."""
        return [rng for method, path, rng in self.hostile_requests
                if method == "GET" and path.endswith(f"/blobs/{digest}")]

    # -- the handler ----------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hostile = self
        base = super()._handler()

        class Handler(base):  # type: ignore[valid-type, misc]
            def handle(self) -> None:
                if not hostile._slots.acquire(timeout=10):
                    return  # bounded: a flood of connections is dropped
                try:
                    super().handle()
                finally:
                    hostile._slots.release()

            def _serve(self, head: bool) -> None:
                path = self.path.split("?")[0]
                hostile.hostile_requests.append(
                    (self.command, path, self.headers.get("Range", "")))
                parts = path.strip("/").split("/")
                if len(parts) >= 4 and parts[-2] == "manifests" \
                        and hostile.manifest_mode != "garbage":
                    return self._manifest(head)
                # Blob modes are for layers: the manifest and config arrive, as they
                # would from a registry that turns hostile on the big downloads.
                if len(parts) >= 4 and parts[-2] == "blobs" and not head \
                        and hostile.blob_mode not in ("ok", "wrong-digest") \
                        and parts[-1] in hostile.layer_digests():
                    return self._hostile_blob(parts[-1])
                return super()._serve(head)

            def _manifest(self, head: bool) -> None:
                mode = hostile.manifest_mode
                if mode == "ok":
                    body, media_type = hostile.manifest()
                    digest = "sha256:" + hashlib.sha256(body).hexdigest()
                    return self._send(200, body, media_type, head,
                                      {"Docker-Content-Digest": digest})
                if mode == "huge":
                    return self._endless("application/vnd.oci.image.manifest.v1+json",
                                         b'{"schemaVersion": 2, "layers": [' + b" " * _CHUNK,
                                         "manifest")
                return self._common(mode)

            def _hostile_blob(self, digest: str) -> None:
                mode = hostile.blob_mode
                blob = hostile._blob(digest) or b""
                if mode == "endless":
                    return self._endless("application/octet-stream", b"\0" * _CHUNK, digest)
                if mode == "lying-length":
                    self.send_response(200)
                    self.send_header("Content-Length", str(TIB))
                    self.end_headers()
                    return self._write(digest, [blob])
                if mode == "overflow":
                    self.send_response(200)
                    self.end_headers()  # no length: the body ends when we close
                    return self._write(digest, itertools.chain(
                        [blob], itertools.repeat(b"junk" * (_CHUNK // 4))),
                        rate=hostile.endless_rate)
                if mode == "slowloris":
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(blob)))
                    self.end_headers()
                    return self._write(digest, (blob[i:i + 1] for i in range(len(blob))),
                                       pause=hostile.slow_interval)
                return self._common(mode)

            def _common(self, mode: str) -> None:
                if mode == "redirect-loop":
                    self.send_response(307)
                    self.send_header("Location", self.path)  # to itself, for ever
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                if mode == "500":
                    err = {"errors": [{"code": "UNKNOWN", "message": "hostile failure"}]}
                    return self._send(500, json.dumps(err).encode())
                raise AssertionError(f"unknown hostile mode {mode!r}")

            def _endless(self, ctype: str, chunk: bytes, what: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.end_headers()

                self._write(what, itertools.repeat(chunk), rate=hostile.endless_rate)

            def _write(self, what: str, chunks: Iterable[bytes], pause: float = 0.0,
                       rate: float = 0.0) -> None:
                """Write ``chunks`` (paced), then close; a client hanging up is recorded."""
                began, sent = time.monotonic(), 0
                try:
                    for data in chunks:
                        if hostile.stopping.is_set():
                            break
                        self.wfile.write(data)
                        self.wfile.flush()
                        sent += len(data)
                        if pause:
                            hostile.stopping.wait(pause)
                        elif rate:
                            ahead = sent / rate - (time.monotonic() - began)
                            if ahead > 0:
                                hostile.stopping.wait(ahead)
                except (BrokenPipeError, ConnectionResetError):
                    hostile.cut.append(what)
                    hostile.disconnected.set()
                finally:
                    self.close_connection = True

        return Handler

    def __enter__(self) -> HostileRegistry:
        super().__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        super().__exit__(*exc)
