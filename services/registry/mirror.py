"""A read-only OCI distribution endpoint in front of one upstream registry: a pull-through
mirror for Docker (`registry-mirrors`), Podman or skopeo.

    GET|HEAD /v2/                              200 {}
    GET|HEAD /v2/<name>/manifests/<tag|digest> the upstream's bytes, media type, digest
    GET|HEAD /v2/<name>/blobs/<digest>         from the shared blob cache, else upstream

Manifests by tag always ask upstream (tags move); with the cache on, manifests by digest
come from the manifest cache and blobs from the blob cache, so what one client pulled the
next gets without upstream blob traffic. Everything
else is 405 (read-only) or 404 with a distribution-spec error body.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from services.core import digest as digestmod
from services.core.errors import MuelleError, NotFound, Unauthenticated, Unavailable
from services.core.logging import get_logger
from services.registry.cache import BlobCache
from services.registry.descriptors import Descriptor
from services.registry.resolver import Resolver

_NAME = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
_MANIFEST = re.compile(rf"^/v2/({_NAME})/manifests/([A-Za-z0-9_.:+-]+)$")
_BLOB = re.compile(rf"^/v2/({_NAME})/blobs/([a-z0-9]+:[a-f0-9]+)$")


class Mirror:
    def __init__(self, resolver: Resolver, cache: BlobCache | None, upstream: str,
                 listen: str) -> None:
        self.resolver = resolver
        self.cache = cache
        self.upstream = upstream  # "registry.example:5000" or "docker.io"
        host, _, port = listen.rpartition(":")
        self.httpd = ThreadingHTTPServer((host or "127.0.0.1", int(port)), self._handler())
        self.httpd.daemon_threads = True
        bound_host, bound_port = self.httpd.server_address[:2]
        self.address = f"{bound_host!s}:{bound_port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True,
                                        name="mirror")
        self.log = get_logger(component="mirror", upstream=upstream)

    def start(self) -> Mirror:
        self._thread.start()
        self.log.info("mirror serving", address=self.address)
        return self

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                mirror.serve(self, head=False)

            def do_HEAD(self) -> None:  # noqa: N802
                mirror.serve(self, head=True)

            def _refuse(self) -> None:
                mirror.error(self, 405, "UNSUPPORTED", "this mirror is read-only")

            do_POST = do_PUT = do_PATCH = do_DELETE = _refuse  # noqa: N815

        return Handler

    def serve(self, req: BaseHTTPRequestHandler, head: bool) -> None:
        path = req.path.split("?", 1)[0]
        try:
            if path in ("/v2", "/v2/"):
                self.send(req, 200, b"{}", {"Content-Type": "application/json"}, head)
            elif m := _MANIFEST.match(path):
                self.manifest(req, m.group(1), m.group(2), head)
            elif m := _BLOB.match(path):
                self.blob(req, m.group(1), m.group(2), head)
            else:
                self.error(req, 404, "NAME_UNKNOWN", f"no route for {path}")
        except NotFound as exc:
            self.error(req, 404, "MANIFEST_UNKNOWN" if "/manifests/" in path
                       else "BLOB_UNKNOWN", str(exc))
        except Unauthenticated as exc:
            self.error(req, 401, "UNAUTHORIZED", str(exc))
        except Unavailable as exc:
            self.error(req, 503, "UNAVAILABLE", str(exc))
        except MuelleError as exc:
            self.error(req, 400, "UNSUPPORTED", str(exc))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away

    def manifest(self, req: BaseHTTPRequestHandler, name: str, ref: str, head: bool) -> None:
        sep = "@" if ":" in ref else ":"
        content = self.resolver.manifest(f"{self.upstream}/{name}{sep}{ref}")
        media = content.descriptor.media_type or json.loads(content.content).get(
            "mediaType", "application/vnd.oci.image.manifest.v1+json")
        self.send(req, 200, content.content,
                  {"Content-Type": media, "Docker-Content-Digest": content.descriptor.digest},
                  head)

    def blob(self, req: BaseHTTPRequestHandler, name: str, digest: str, head: bool) -> None:
        digestmod.validate(digest)
        path = self.cache.path(digest) if self.cache is not None else None
        size = path.stat().st_size if head and path is not None and path.exists() else 0
        repository = f"{self.upstream}/{name}"
        desc = Descriptor("application/octet-stream", digest, size)
        chunks: Iterator[bytes] = self.resolver.fetch_blob(repository, desc, 0)
        if self.cache is not None:
            first = chunks
            chunks = self.cache.fetch(digest, 0, 0, lambda offset: first if offset == 0
                                      else self.resolver.fetch_blob(repository, desc, offset))
        if head and size:
            self.send(req, 200, b"", {"Content-Length": str(size),
                                      "Docker-Content-Digest": digest}, head=True)
            getattr(chunks, "close", lambda: None)()
            return
        # Sizes are not known before the end: stream with chunked transfer encoding.
        req.send_response(200)
        req.send_header("Content-Type", "application/octet-stream")
        req.send_header("Docker-Content-Digest", digest)
        if head:
            data = b"".join(chunks)
            req.send_header("Content-Length", str(len(data)))
            req.end_headers()
            return
        req.send_header("Transfer-Encoding", "chunked")
        req.end_headers()
        try:
            for chunk in chunks:
                req.wfile.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
            req.wfile.write(b"0\r\n\r\n")
        finally:
            getattr(chunks, "close", lambda: None)()

    @staticmethod
    def send(req: BaseHTTPRequestHandler, code: int, body: bytes, headers: dict[str, str],
             head: bool) -> None:
        req.send_response(code)
        for key, value in headers.items():
            req.send_header(key, value)
        if "Content-Length" not in headers:
            req.send_header("Content-Length", str(len(body)))
        req.send_header("Docker-Distribution-API-Version", "registry/2.0")
        req.end_headers()
        if not head:
            req.wfile.write(body)

    def error(self, req: BaseHTTPRequestHandler, code: int, kind: str, message: str) -> None:
        body = json.dumps({"errors": [{"code": kind, "message": message}]}).encode()
        self.send(req, code, body, {"Content-Type": "application/json"}, head=False)
