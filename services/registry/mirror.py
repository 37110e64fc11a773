"""A read-only OCI distribution endpoint in front of one upstream registry: a pull-through
mirror for Docker (`registry-mirrors`), Podman or skopeo.

    GET|HEAD /v2/                              200 {}
    GET|HEAD /v2/<name>/manifests/<tag|digest> what upstream serves for the client's Accept
    GET|HEAD /v2/<name>/blobs/<digest>         from the shared blob cache, else upstream

It answers as the distribution spec and the reference registry do:

- Nothing is sent before upstream has answered: a blob upstream lacks is a clean
  ``404 BLOB_UNKNOWN``, never a ``200`` with an error inside it. A blob whose size upstream
  told (its HEAD) goes out with ``Content-Length``, else chunked.
- The client's ``Accept`` goes upstream as it came (absent stays absent) and the answer is
  relayed: its status, media type, digest and bytes; the mirror never picks or converts.
- HEAD is answered from upstream's HEAD: no manifest or blob bytes move for it. HEAD
  responses, errors included, carry no body.
- Bad input: a repository name outside the spec's grammar is ``400 NAME_INVALID``, a
  malformed digest ``400 DIGEST_INVALID``; a tag outside the grammar names no manifest
  (``404 MANIFEST_UNKNOWN``, as the reference registry, whose routes do not match it).
- Request bodies (a GET may carry one) are read and dropped, so they are never taken for
  the next request on a kept-alive connection. Writes are ``405``.

Anonymous by design (issue 19): the mirror has no way to tell its callers apart (plain
HTTP; Docker sends a mirror its Hub credentials, not the mirror's), so it reaches upstream
without the engine's credentials or client certificates, and serves only what upstream
serves to anyone. Bytes in the shared caches may have come from an authenticated pull, so
a cache hit is served only after an anonymous upstream HEAD of the same repository said
yes; what upstream refuses is ``403 DENIED``.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from services.core.logging import get_logger
from services.registry.cache import BlobCache
from services.registry.descriptors import Descriptor
from services.registry.manifest_cache import ManifestCache
from services.registry.manifests import ManifestContent, base_type
from services.registry.resolver import Resolver
from vocab import digest as digestmod
from vocab import reference as refmod
from vocab.errors import (
    DataLoss,
    InvalidArgument,
    MuelleError,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)

# Distribution spec grammar for <name> and tags.
_NAME = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)"
                   r"[a-z0-9]+)*)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
_ROUTE = re.compile(r"^/v2/(?P<name>.+)/(?P<kind>manifests|blobs)/(?P<ref>[^/]+)$")
# A request body up to this size is read and dropped; a larger one (or a chunked one)
# ends the connection after the answer instead.
_MAX_DRAIN = 1 << 20


class _ClientError(Exception):
    """A request the spec answers with a 4xx of its own, before anything goes upstream."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class _Reply:
    """The response to one request, on a connection that may be kept alive."""

    def __init__(self, req: BaseHTTPRequestHandler, head: bool) -> None:
        self.req = req
        self.head = head
        self.started = False  # status line sent: an error now can only end the connection

    def start(self, status: int, headers: dict[str, str], length: int | None) -> None:
        req = self.req
        req.send_response(status)
        for key, value in headers.items():
            req.send_header(key, value)
        if length is not None:
            req.send_header("Content-Length", str(length))
        elif not self.head:
            req.send_header("Transfer-Encoding", "chunked")
        req.send_header("Docker-Distribution-API-Version", "registry/2.0")
        if req.close_connection:
            req.send_header("Connection", "close")
        req.end_headers()
        self.started = True

    def whole(self, status: int, body: bytes, headers: dict[str, str],
              length: int | None = None) -> None:
        """``body`` (not sent for HEAD); ``length`` overrides its Content-Length (a HEAD
        telling the size of what a GET would bring)."""
        self.start(status, headers, len(body) if length is None else length)
        if not self.head:
            self.req.wfile.write(body)

    def error(self, status: int, code: str, message: str,
              headers: dict[str, str] | None = None) -> None:
        body = json.dumps({"errors": [{"code": code, "message": message}]}).encode()
        self.whole(status, body, {"Content-Type": "application/json", **(headers or {})})

    def stream(self, headers: dict[str, str], chunks: Iterator[bytes],
               length: int | None) -> None:
        """A 200 with ``chunks`` as body. The first chunk is awaited before the status
        line, so an upstream that fails at once still gets a clean error status."""
        try:
            first = next(chunks, b"")
            self.start(200, headers, length)
            chunked = length is None
            write = self.req.wfile.write
            for chunk in itertools.chain((first,), chunks):
                if chunk:
                    write(b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk)
            if chunked:
                write(b"0\r\n\r\n")
        finally:
            getattr(chunks, "close", lambda: None)()


def _drain(req: BaseHTTPRequestHandler) -> None:
    """Read and drop the request body, or mark the connection to close after the answer."""
    if req.headers.get("Transfer-Encoding"):
        req.close_connection = True
        return
    length = (req.headers.get("Content-Length") or "0").strip()
    if not length.isdigit() or int(length) > _MAX_DRAIN:
        req.close_connection = True
        return
    remaining = int(length)
    while remaining:
        chunk = req.rfile.read(min(remaining, 1 << 16))
        if not chunk:
            req.close_connection = True
            return
        remaining -= len(chunk)


class Mirror:
    def __init__(self, resolver: Resolver, cache: BlobCache | None, upstream: str,
                 listen: str, manifest_cache: ManifestCache | None = None) -> None:
        """``resolver`` should be anonymous (see the module doc); ``cache`` and
        ``manifest_cache`` are the service's shared caches, when on."""
        self.resolver = resolver
        self.cache = cache
        self.manifests = manifest_cache
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
                _drain(self)
                _Reply(self, head=False).error(405, "UNSUPPORTED", "this mirror is read-only",
                                               {"Allow": "GET, HEAD"})

            do_POST = do_PUT = do_PATCH = do_DELETE = _refuse  # noqa: N815

        return Handler

    # -- one request -----------------------------------------------------------------

    def serve(self, req: BaseHTTPRequestHandler, head: bool) -> None:
        reply = _Reply(req, head)
        path = urlsplit(req.path).path
        route = _ROUTE.match(path)
        kind = "manifest" if route is not None and route.group("kind") == "manifests" \
            else "blob"
        try:
            _drain(req)
            self._route(reply, path, ", ".join(req.headers.get_all("Accept") or []) or None)
        except _ClientError as exc:
            self._fail(reply, exc.status, exc.code, str(exc))
        except NotFound as exc:
            self._fail(reply, 404, f"{kind.upper()}_UNKNOWN", str(exc))
        except (Unauthenticated, PermissionDenied) as exc:
            self._fail(reply, 403, "DENIED",
                       f"{exc} (this mirror serves only what {self.upstream} serves to "
                       "anonymous clients)")
        except Unavailable as exc:
            self._fail(reply, 503, "UNAVAILABLE", str(exc))
        except DataLoss as exc:
            self._fail(reply, 502, "UNKNOWN", str(exc))
        except (BrokenPipeError, ConnectionResetError):
            req.close_connection = True  # the client went away
        except MuelleError as exc:  # upstream refused the request or served what we refuse
            self._fail(reply, 400, "UNSUPPORTED", str(exc))
        except Exception as exc:  # a bug: the client gets a status, the log the details
            self.log.exception("mirror request failed", path=path)
            self._fail(reply, 500, "UNKNOWN", f"internal error: {type(exc).__name__}")

    def _fail(self, reply: _Reply, status: int, code: str, message: str) -> None:
        if reply.started:
            # Mid-body: the client must see a cut response, not a second one.
            self.log.warning("mirror response cut", error=message)
            reply.req.close_connection = True
            return
        reply.error(status, code, message)

    def _route(self, reply: _Reply, path: str, accept: str | None) -> None:
        if path in ("/v2", "/v2/"):
            reply.whole(200, b"{}", {"Content-Type": "application/json"})
            return
        m = _ROUTE.match(path)
        if m is None:
            raise _ClientError(404, "UNSUPPORTED",
                               f"{path}: this read-only mirror serves only /v2/, "
                               "manifests and blobs")
        name, ref = m.group("name"), m.group("ref")
        if not _NAME.match(name):
            raise _ClientError(400, "NAME_INVALID", f"invalid repository name {name!r}")
        if m.group("kind") == "blobs" or ":" in ref:
            try:
                digestmod.validate(ref)
            except InvalidArgument as exc:
                raise _ClientError(400, "DIGEST_INVALID", str(exc)) from None
        elif not _TAG.match(ref):
            raise _ClientError(404, "MANIFEST_UNKNOWN",
                               f"invalid tag {ref!r}: no manifest can have it")
        repository = f"{self.upstream}/{name}"
        try:
            refmod.parse(repository)
        except InvalidArgument as exc:  # e.g. too long once the upstream is prefixed
            raise _ClientError(400, "NAME_INVALID", str(exc)) from None
        if m.group("kind") == "blobs":
            self.blob(reply, repository, ref)
        else:
            self.manifest(reply, f"{repository}{'@' if ':' in ref else ':'}{ref}", ref,
                          accept)

    def manifest(self, reply: _Reply, reference: str, ref: str, accept: str | None) -> None:
        if reply.head:
            found = self.resolver.head_manifest(reference, accept)
            headers = {"Content-Type": found.media_type}
            if found.digest or ":" in ref:
                headers["Docker-Content-Digest"] = found.digest or ref
            reply.whole(200, b"", headers, length=found.size)
            return
        content: ManifestContent | None = None
        hit = self.manifests.get(ref) if self.manifests is not None and ":" in ref else None
        if hit is not None:
            # Upstream still serves it to anyone, and serves this kind for this Accept.
            found = self.resolver.head_manifest(reference, accept)
            if base_type(found.media_type) == hit.descriptor.media_type:
                content = hit
        if content is None:
            content = self.resolver.manifest(reference, accept)
            if self.manifests is not None:
                self.manifests.put(content)
        reply.whole(200, content.content,
                    {"Content-Type": content.descriptor.media_type,
                     "Docker-Content-Digest": content.descriptor.digest})

    def blob(self, reply: _Reply, repository: str, digest: str) -> None:
        # Asked even for a cached blob: it tells upstream has it, gives it to anyone here,
        # and its size, before a byte moves.
        found = self.resolver.head_blob(repository, digest)
        size = found.size
        cached = self.cache.path(digest) if self.cache is not None else None
        if cached is not None and cached.exists():
            size = cached.stat().st_size
        headers = {"Content-Type": "application/octet-stream", "Docker-Content-Digest": digest}
        if reply.head:
            reply.whole(200, b"", headers, length=size)
            return
        desc = Descriptor("application/octet-stream", digest, size or 0)
        chunks: Iterator[bytes] = self.resolver.fetch_blob(repository, desc, 0)
        if self.cache is not None:
            first = chunks
            chunks = self.cache.fetch(digest, size or 0, 0, lambda offset: first if offset == 0
                                      else self.resolver.fetch_blob(repository, desc, offset))
        reply.stream(headers, chunks, size)
