"""The registry core: resolve references to manifests and stream verified blobs.

    resolver = Resolver(config)
    res = resolver.resolve("127.0.0.1:5000/demo/busybox:1")        # host platform
    for chunk in resolver.fetch_blob(res.repository, res.manifest.config): ...

Resolve: GET the manifest with the full Accept list (SPECS §3.3) and verify it; when it
is an index, select the platform's entry and GET that child by digest, verified against
the entry's digest and size. fetch_blob hashes while it streams (from offset 0) and holds
back the last chunk until digest and size check out, so a consumer that saw the whole
blob without an error saw verified bytes; a caller that hashes anyway (the image store,
``verify=False``) gets the bytes unhashed and at once, sizes still checked. A dropped
connection resumes with Range.
"""

from __future__ import annotations

import collections
import copy
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import msgspec

from services.core.config import Config, RegistryConfig
from services.core.logging import get_logger
from services.registry import manifests, platforms
from services.registry.credstore import auth_file_path
from services.registry.descriptors import Descriptor, Platform
from services.registry.http import Location, RegistryHTTP, unreachable
from services.registry.manifest_cache import ManifestCache
from services.registry.manifests import ManifestContent
from services.registry.pace import MinimumPace
from services.registry.ranges import RangedFetch
from vocab import digest as digestmod
from vocab import reference as refmod
from vocab.errors import DataLoss, InvalidArgument, MuelleError, NotFound, Unavailable

CHUNK_SIZE = 1024 * 1024
MAX_RESUMES = 3


@dataclass(frozen=True)
class Head:
    """What a registry answered to a HEAD: the headers a GET would bring, no body."""

    media_type: str  # Content-Type as sent ("" when none)
    digest: str      # Docker-Content-Digest ("" when none)
    size: int | None  # Content-Length, None when the registry sent none


@dataclass(frozen=True)
class Resolution:
    """What a reference resolved to (see ResolveResponse in registry.proto)."""

    canonical: str
    repository: str
    root: ManifestContent
    manifest: ManifestContent


class Resolver:
    """Plain-Python core of the registry service; thread-safe."""

    def __init__(
        self,
        config: Config | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        chunk_size: int = CHUNK_SIZE,
        manifest_cache: ManifestCache | None = None,
        ranges: RangedFetch | None = None,
        anonymous: bool = False,
    ) -> None:
        """``anonymous``: reach registries without the engine's credentials (the mirror)."""
        settings = None
        if config is not None:
            settings = msgspec.structs.replace(config.registry,
                                               auth_file=str(auth_file_path(config)))
        self._http = RegistryHTTP(settings, transport=transport, sleep=sleep,
                                  anonymous=anonymous)
        self._chunk_size = chunk_size
        self._manifests = manifest_cache
        self._ranges = ranges or RangedFetch(config.registry.parallel_ranges if config else 1)
        registry = config.registry if config is not None else RegistryConfig()
        self._min_bytes = registry.blob_min_bytes
        self._window = float(registry.blob_window_seconds)

    @property
    def http(self) -> RegistryHTTP:
        """The HTTP client, shared with the push and login halves of the service."""
        return self._http

    def close(self) -> None:
        self._http.close()

    def for_call(self, domain: str, credentials: tuple[str, str] | None,
                 registry_token: str = "") -> Resolver:
        """This resolver for one call with its own credentials for ``domain`` (a pull's,
        never stored); the caches are shared (content by digest is the same for all)."""
        view = copy.copy(self)
        view._http = self._http.for_call(domain, credentials, registry_token)
        return view

    # -- manifests -------------------------------------------------------------------

    def resolve(self, reference: str, platform: Platform | None = None) -> Resolution:
        """Fetch what ``reference`` points to and, for an index, the platform's manifest."""
        ref = refmod.parse(reference)
        log = get_logger(image=ref.canonical)
        if ref.digest:
            root = self._get_manifest(ref, ref.digest, Descriptor("", ref.digest, 0))
        else:
            root = self._get_manifest(ref, ref.tag, None)
        manifest = root
        if root.is_index:
            want = platform or platforms.host()
            entry = platforms.select(root.children, want)
            log.debug("selected platform", platform=str(entry.platform), digest=entry.digest)
            manifest = self._get_manifest(ref, entry.digest, entry)
            if manifest.is_index:
                raise InvalidArgument(f"{ref.canonical}: nested indexes are not supported")
        log.info("resolved", digest=root.descriptor.digest,
                 manifest=manifest.descriptor.digest)
        return Resolution(ref.canonical, ref.repository, root, manifest)

    def manifest(self, reference: str, accept: str | None) -> ManifestContent:
        """Exactly what the registry serves at ``manifests/<tag|digest>`` for ``accept``
        (None: no Accept header), verified against the digest when there is one; no
        cache and no legacy ``blobs/`` fallback: the mirror relays it as it is."""
        ref = refmod.parse(reference)
        if ref.digest:
            return self._fetch_manifest(ref, ref.digest, Descriptor("", ref.digest, 0),
                                        accept, legacy=False)
        return self._fetch_manifest(ref, ref.tag, None, accept, legacy=False)

    def head_manifest(self, reference: str, accept: str | None = manifests.ACCEPT) -> Head:
        """The registry's answer to a HEAD of ``reference``'s manifest (no bytes move)."""
        ref = refmod.parse(reference)
        tag_or_digest = ref.digest or ref.tag
        head = self._head(ref, f"/v2/{ref.path}/manifests/{tag_or_digest}", "manifest",
                          _what(ref, tag_or_digest), {"Accept": accept} if accept else {})
        if ref.digest and head.digest and head.digest != ref.digest:
            raise DataLoss(f"registry {ref.domain} answered a HEAD of {ref.digest} with "
                           f"Docker-Content-Digest {head.digest}")
        return head

    def head_blob(self, repository: str, digest: str) -> Head:
        """The registry's answer to a HEAD of a blob: its size without its bytes."""
        ref = refmod.parse(repository)
        digestmod.validate(digest)
        return self._head(ref, f"/v2/{ref.path}/blobs/{digest}", "blob",
                          f"{ref.repository}@{digest}", {})

    def _head(self, ref: refmod.Reference, url_path: str, kind: str, what: str,
              headers: dict[str, str]) -> Head:
        resp = self._http.request("HEAD", ref.domain, ref.path, url_path, kind=kind,
                                  what=what, headers=headers)
        resp.close()
        length = resp.headers.get("Content-Length", "")
        return Head(resp.headers.get("Content-Type", ""),
                    resp.headers.get("Docker-Content-Digest", ""),
                    int(length) if length.isdigit() else None)

    def _get_manifest(self, ref: refmod.Reference, tag_or_digest: str,
                      expected: Descriptor | None) -> ManifestContent:
        cache = self._manifests
        if cache is not None and expected is not None:
            hit = cache.get(expected.digest)
            # A size that disagrees goes upstream, to fail there with the usual error.
            if hit is not None and (not expected.size or expected.size == len(hit.content)):
                return hit
        content = self._fetch_manifest(ref, tag_or_digest, expected)
        if cache is not None:
            cache.put(content)  # verified: by its digest, or hashed as served for a tag
        return content

    def _fetch_manifest(self, ref: refmod.Reference, tag_or_digest: str,
                        expected: Descriptor | None, accept: str | None = manifests.ACCEPT,
                        legacy: bool = True) -> ManifestContent:
        what = _what(ref, tag_or_digest)
        try:
            resp = self._http.request(
                "GET", ref.domain, ref.path, f"/v2/{ref.path}/manifests/{tag_or_digest}",
                kind="manifest", what=what, headers={"Accept": accept} if accept else {})
        except NotFound:
            if expected is None or not legacy:
                raise
            # Legacy registries serve manifests by digest only under /blobs/ (SPECS §3.3).
            try:
                resp = self._http.request(
                    "GET", ref.domain, ref.path, f"/v2/{ref.path}/blobs/{tag_or_digest}",
                    kind="manifest", what=what)
            except NotFound:
                raise NotFound(f"manifest for {what} not found: manifest unknown") from None
        try:
            length = resp.headers.get("Content-Length", "")
            if length.isdigit():
                manifests.check_size(int(length), what)
            content = self._read_limited(resp, ref.domain, what)
            return manifests.parse(
                content, resp.headers.get("Content-Type"), what, expected,
                resp.headers.get("Docker-Content-Digest") or None)
        finally:
            resp.close()

    @staticmethod
    def _read_limited(resp: httpx.Response, domain: str, what: str) -> bytes:
        buf = bytearray()
        try:
            for chunk in resp.iter_bytes():
                buf += chunk
                manifests.check_size(len(buf), what)
        except httpx.TransportError as exc:
            raise unreachable(domain, exc) from None
        return bytes(buf)

    # -- blobs -----------------------------------------------------------------------

    def fetch_blob(self, repository: str, descriptor: Descriptor,
                   offset: int = 0, verify: bool = True) -> Iterator[bytes]:
        """Stream the blob from ``offset``. From offset 0 the bytes are verified against
        the descriptor's digest and size (DataLoss on mismatch); from a later offset, or
        with ``verify`` False, the caller verifies the digest (the size is still checked).
        Arguments are checked before the first byte moves."""
        ref = _blob_repository(repository, descriptor)
        if descriptor.size < 0 or offset < 0:
            raise InvalidArgument("blob size and offset must not be negative")
        if descriptor.size and offset > descriptor.size:
            raise InvalidArgument(f"offset {offset} is past the end of {descriptor.digest} "
                                  f"({descriptor.size} bytes)")
        return self._stream(ref, descriptor, offset, verify)

    def locate_blob(self, repository: str, descriptor: Descriptor) -> BlobLocation:
        """Where a caller may download the blob itself (``RegistryHTTP.locate``), or,
        with an empty url, why it should use ``fetch_blob``: anything unusual (the
        registry refuses, lacks the blob, announces another size) is left to
        ``fetch_blob``, which reports it as it always did."""
        ref = _blob_repository(repository, descriptor)
        what = f"{ref.repository}@{descriptor.digest}"
        try:
            found = self._http.locate(ref.domain, ref.path,
                                      f"/v2/{ref.path}/blobs/{descriptor.digest}",
                                      kind="blob", what=what)
        except MuelleError as exc:
            return BlobLocation(reason=exc.message)
        if isinstance(found, str):
            return BlobLocation(reason=found)
        if descriptor.size and found.length is not None and found.length != descriptor.size:
            return BlobLocation(reason=f"the registry announces {found.length} bytes, the "
                                       f"descriptor {descriptor.size}")
        probe, fast = self._ranges.probe_for_direct()
        return BlobLocation(found, probe, fast)

    def _stream(self, ref: refmod.Reference, desc: Descriptor,
                offset: int, verify: bool = True) -> Iterator[bytes]:
        log = get_logger(image=ref.repository, digest=desc.digest)
        if desc.size and offset == desc.size:
            return
        # Hashing 200 MB costs ~0.1 s of CPU that a pull's image store spends as well.
        hasher = digestmod.hasher(desc.digest) if offset == 0 and verify else None
        received = offset
        # While hashing, whole chunks go on and the last bytes stay here until the end, so
        # they only leave once digest and size are verified. Unhashed, the pieces go on
        # much as they came (_Pending).
        size = self._chunk_size
        keep = 1 if hasher is not None else 0
        pending = _Pending(size, size if hasher is not None else max(size // 4, 1))
        for chunk in self._source(ref, desc, offset):
            received += len(chunk)
            if hasher is not None:
                hasher.update(chunk)
            if desc.size and received > desc.size:
                raise DataLoss(f"size mismatch for {desc.digest}: registry sent "
                               f"more than {desc.size} bytes")
            pending.add(chunk)
            while (out := pending.take(keep)) is not None:
                yield out
        if desc.size and received != desc.size:
            raise DataLoss(f"size mismatch for {desc.digest}: got {received} bytes, "
                           f"want {desc.size}")
        if hasher is not None:
            got = f"{desc.digest.split(':', 1)[0]}:{hasher.hexdigest()}"
            if got != desc.digest:
                raise DataLoss(f"digest mismatch for {desc.digest}: got {got}")
        while (out := pending.take(0, final=True)) is not None:
            yield out
        log.debug("blob fetched", bytes=received - offset)

    def _source(self, ref: refmod.Reference, desc: Descriptor,
                offset: int) -> Iterator[bytes]:
        """The blob's bytes from ``offset`` as they arrive, unverified: a large blob as
        several Range requests at once, anything else as one request."""
        if desc.size and self._ranges.worth_it(desc.size - offset):
            resp, skip = self._open_blob(ref, desc, offset,
                                         self._ranges.first_end(offset, desc.size))
            if resp.status_code == 206:
                first = self._read_range(ref, desc, offset, self._ranges.first_end(
                    offset, desc.size), resp)
                return self._ranges.fetch(first, offset, desc.size,
                                          lambda start, end: self._read_range(
                                              ref, desc, start, end))
            # The registry ignored Range and sends the whole blob: take it as it comes.
            return self._sequential(ref, desc, offset, (resp, skip))
        return self._sequential(ref, desc, offset, None)

    def _sequential(self, ref: refmod.Reference, desc: Descriptor, offset: int,
                    opened: tuple[httpx.Response, int] | None) -> Iterator[bytes]:
        """One request from ``offset`` to the end, resumed with Range when it drops."""
        return self._read(ref, desc, offset, 0, opened)

    def _read_range(self, ref: refmod.Reference, desc: Descriptor, start: int,
                    end: int, resp: httpx.Response | None = None) -> Iterator[bytes]:
        """Bytes ``start`` to ``end`` (exclusive) from 206 answers, resumed when one drops."""
        return self._read(ref, desc, start, end, (resp, 0) if resp is not None else None)

    def _read(self, ref: refmod.Reference, desc: Descriptor, start: int, end: int,
              opened: tuple[httpx.Response, int] | None) -> Iterator[bytes]:
        """The bytes from ``start`` to ``end`` (exclusive; 0: to the blob's end), resumed
        with Range after a dropped connection, at most MAX_RESUMES times. A bounded range
        must be answered 206; to the end, a 200 is skipped forward to ``start``."""
        log = get_logger(image=ref.repository, digest=desc.digest)
        got = start
        resumes = 0
        pace = MinimumPace(self._min_bytes, self._window, ref.domain, desc.digest)
        resp, skip = opened or self._open_from(ref, desc, got, end)
        try:
            while True:
                try:
                    for chunk in resp.iter_bytes():
                        pace.received(len(chunk))
                        if skip:
                            # The registry ignored Range and restarted: drop what we have.
                            dropped = min(skip, len(chunk))
                            chunk, skip = chunk[dropped:], skip - dropped
                            if not chunk:
                                continue
                        if end and got + len(chunk) > end:
                            raise DataLoss(f"registry {ref.domain} sent more than the range "
                                           f"{start}-{end - 1} of {desc.digest}")
                        got += len(chunk)
                        yield chunk
                    break
                except httpx.TransportError as exc:
                    resp.close()
                    if resumes >= MAX_RESUMES:
                        raise Unavailable(
                            f"download of {desc.digest} from {ref.domain} failed after "
                            f"{got} bytes: {exc or type(exc).__name__}") from None
                    resumes += 1
                    log.warning("blob download interrupted, resuming", offset=got,
                                error=str(exc) or type(exc).__name__)
                    resp, skip = self._open_from(ref, desc, got, end)
        finally:
            resp.close()
        if end and got != end:
            raise DataLoss(f"registry {ref.domain} sent {got - start} bytes of the range "
                           f"{start}-{end - 1} of {desc.digest}")

    def _open_from(self, ref: refmod.Reference, desc: Descriptor, start: int,
                   end: int) -> tuple[httpx.Response, int]:
        if end:
            return self._open_part(ref, desc, start, end), 0
        return self._open_blob(ref, desc, start)

    def _open_part(self, ref: refmod.Reference, desc: Descriptor, start: int,
                   end: int) -> httpx.Response:
        try:
            resp, skip = self._open_blob(ref, desc, start, end)
        except InvalidArgument as exc:  # 416: the blob is shorter than its descriptor
            raise DataLoss(f"size mismatch for {desc.digest}: the registry refused the "
                           f"range {start}-{end - 1} ({exc})") from None
        if resp.status_code != 206 or skip:
            resp.close()
            raise DataLoss(f"registry {ref.domain} stopped answering Range requests for "
                           f"{desc.digest}")
        return resp

    def _open_blob(self, ref: refmod.Reference, desc: Descriptor,
                   offset: int, end: int = 0) -> tuple[httpx.Response, int]:
        """A streaming response for the blob from ``offset`` (to ``end``, exclusive, if
        given) and how many leading bytes of it to skip (when the server answered 200 to
        a Range request)."""
        headers = {}
        if offset or end:
            headers["Range"] = f"bytes={offset}-{end - 1 if end else ''}"
        try:
            resp = self._http.request(
                "GET", ref.domain, ref.path, f"/v2/{ref.path}/blobs/{desc.digest}",
                kind="blob", what=f"{ref.repository}@{desc.digest}", headers=headers)
        except NotFound:
            urls = [u for u in desc.urls if u.startswith(("https://", "http://"))]
            if not urls:
                raise
            resp = self._open_foreign(urls, headers)
        length = resp.headers.get("Content-Length", "")
        expected = desc.size - (offset if resp.status_code == 206 else 0)
        if resp.status_code == 206 and end:
            expected = end - offset
        if desc.size and length.isdigit() and int(length) > expected:
            # Refused before a byte is read: more than declared is never stored.
            resp.close()
            raise DataLoss(f"size mismatch for {desc.digest}: registry {ref.domain} "
                           f"announces {length} bytes, the blob has {desc.size}")
        if not headers:
            return resp, 0
        if resp.status_code == 206:
            start = resp.headers.get("Content-Range", "").removeprefix("bytes ").split("-")[0]
            if start != str(offset):
                resp.close()
                raise DataLoss(f"registry {ref.domain} answered a Range request for "
                               f"{desc.digest} at {offset} with Content-Range "
                               f"{resp.headers.get('Content-Range')!r}")
            return resp, 0
        return resp, offset

    def _open_foreign(self, urls: list[str], headers: dict[str, str]) -> httpx.Response:
        """Foreign (non-distributable) layers may live only at their descriptor urls."""
        last: Exception | None = None
        for url in urls:
            try:
                return self._http.get_url(url, headers)
            except (NotFound, Unavailable) as exc:
                last = exc
        assert last is not None
        raise last


@dataclass(frozen=True)
class BlobLocation:
    """``locate_blob``'s answer: where (None: fetch it through ``fetch_blob``, for
    ``reason``), and how fast the first bytes must come for one request to do."""

    where: Location | None = None
    probe_bytes: int = 0
    min_bytes_per_second: float = 0
    reason: str = ""


def _blob_repository(repository: str, descriptor: Descriptor) -> refmod.Reference:
    """The repository of a blob request, checked with the descriptor's digest."""
    if "@" in repository or ":" in repository.rsplit("/", 1)[-1]:
        raise InvalidArgument(f"invalid repository {repository!r}: want domain/path "
                              "without tag or digest, e.g. docker.io/library/busybox")
    ref = refmod.parse(repository)
    try:
        digestmod.validate(descriptor.digest)
    except InvalidArgument as exc:
        raise InvalidArgument(f"invalid blob descriptor: {exc}") from None
    return ref


class _Pending:
    """Blob bytes received and not yet handed on, cut into messages of at most ``size``.

    A piece of at least ``least`` bytes goes on as it came (a fast registry's reads are
    1 MiB, http.py): no copy. Smaller pieces are joined, larger ones (8 MiB Range parts)
    cut: one copy. Before, every byte was copied twice (into a buffer, out of it), ~0.04
    CPU-s of 200 MB, holding the GIL."""

    def __init__(self, size: int, least: int) -> None:
        self.size = size
        self.least = least
        self._pieces: collections.deque[bytes | memoryview] = collections.deque()
        self.held = 0

    def add(self, piece: bytes) -> None:
        if piece:
            self._pieces.append(piece)
            self.held += len(piece)

    def take(self, keep: int, final: bool = False) -> bytes | None:
        """The next message, leaving at least ``keep`` bytes held; None until there is
        one (at least ``least`` bytes, or, when ``final``, whatever is left)."""
        limit = min(self.size, self.held - keep)
        if limit <= 0 or (limit < self.least and not final):
            return None
        first = self._pieces[0]
        if len(first) <= limit and (len(first) >= self.least or len(self._pieces) == 1):
            self._pieces.popleft()
            self.held -= len(first)
            return first if isinstance(first, bytes) else bytes(first)
        parts: list[bytes | memoryview] = []
        got = 0
        while got < limit:
            piece = self._pieces[0]
            if got + len(piece) <= limit:
                parts.append(self._pieces.popleft())
                got += len(piece)
            else:
                view = memoryview(piece)
                parts.append(view[: limit - got])
                self._pieces[0] = view[limit - got:]
                got = limit
        self.held -= got
        return b"".join(parts)


def _what(ref: refmod.Reference, tag_or_digest: str) -> str:
    """``repository:tag`` or ``repository@digest``, for messages."""
    sep = "@" if ":" in tag_or_digest else ":"
    return f"{ref.repository}{sep}{tag_or_digest}"
