"""A deliberately misbehaving registry on loopback, serving an OCI layout read-only.

Real registries are tested with tests/support/registry.py; this one exists to serve what a
real registry never would: a blob whose bytes do not match its digest, garbage manifests.
It also counts what it serves (``blob_bytes``: digest, Range start, body bytes written) and
can hold a blob's body after N bytes (``hold``), so tests can cut a download at a known
point without wall-clock sleeps.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class FakeRegistry:
    """Serves ``layout`` as repository ``name``; ``corrupt_blobs`` flips the first byte of
    every layer blob (so its digest no longer matches); ``garbage_manifest`` serves junk."""

    def __init__(self, layout: Path, corrupt_blobs: bool = False,
                 garbage_manifest: bool = False) -> None:
        self.layout = layout
        self.corrupt_blobs = corrupt_blobs
        self.garbage_manifest = garbage_manifest
        self.requests: list[str] = []
        # (digest, start offset, body bytes actually written) per blob GET
        self.blob_bytes: list[tuple[str, int, int]] = []
        # (digest, at): that blob's body stops after ``at`` bytes until ``release`` is set
        self.hold: tuple[str, int] | None = None
        self.holding = threading.Event()
        self.release = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _blob(self, digest: str) -> bytes | None:
        path = self.layout / "blobs" / "sha256" / digest.removeprefix("sha256:")
        return path.read_bytes() if path.is_file() else None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, code: int, body: bytes, ctype: str = "application/json",
                      head: bool = False, headers: dict[str, str] | None = None) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def _serve(self, head: bool) -> None:
                fake.requests.append(f"{self.command} {self.path}")
                parts = self.path.split("?")[0].strip("/").split("/")
                if parts == ["v2"]:
                    return self._send(200, b"{}", head=head)
                if len(parts) >= 4 and parts[-2] == "manifests":
                    if fake.garbage_manifest:
                        return self._send(200, b"<html>not a manifest",
                                          "application/vnd.oci.image.manifest.v1+json", head)
                    index = json.loads((fake.layout / "index.json").read_text())
                    ref = parts[-1]
                    desc = index["manifests"][0]
                    if not ref.startswith("sha256:") or ref == desc["digest"]:
                        body = fake._blob(desc["digest"]) or b""
                        return self._send(200, body, desc["mediaType"], head,
                                          {"Docker-Content-Digest": desc["digest"]})
                if len(parts) >= 4 and parts[-2] == "blobs":
                    blob = fake._blob(parts[-1])
                    if blob is not None:
                        if fake.corrupt_blobs and len(blob) > 1000:
                            blob = bytes([blob[0] ^ 0xFF]) + blob[1:]
                        if head:
                            return self._send(200, blob, "application/octet-stream", True)
                        return self._send_blob(parts[-1], blob)
                err = {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "unknown"}]}
                return self._send(404, json.dumps(err).encode(), head=head)

            def _send_blob(self, digest: str, blob: bytes) -> None:
                start = 0
                rng = self.headers.get("Range", "")
                if rng.startswith("bytes=") and rng.endswith("-"):
                    start = int(rng[len("bytes="):-1])
                body = blob[start:]
                self.send_response(206 if start else 200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                if start:
                    self.send_header("Content-Range",
                                     f"bytes {start}-{len(blob) - 1}/{len(blob)}")
                self.end_headers()
                at = fake.hold[1] if fake.hold and fake.hold[0] == digest else -1
                pos = start
                try:
                    while pos < len(blob):
                        end = min(pos + 65536, len(blob))
                        if pos < at <= end:
                            end = at
                        self.wfile.write(blob[pos:end])
                        pos = end
                        if pos == at:
                            self.wfile.flush()
                            fake.holding.set()
                            fake.release.wait(60)
                            return  # cut: the connection closes mid-body
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    fake.blob_bytes.append((digest, start, pos - start))
                    self.close_connection = True

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                self._serve(head=False)

            def do_HEAD(self) -> None:  # noqa: N802
                self._serve(head=True)

        return Handler

    def __enter__(self) -> FakeRegistry:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
