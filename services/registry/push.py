"""Uploads to a registry (distribution spec "Push"): blob existence, cross-repo mounts,
blob uploads and manifest PUTs.

A blob upload opens a session (``POST /v2/<path>/blobs/uploads/``, 202 + Location).
A blob that fits in one chunk goes up in one ``PUT <location>?digest=`` with the bytes
(monolithic); a larger one as ``PATCH`` requests with ``Content-Range: start-end``, each
answered with the next Location, then an empty ``PUT ?digest=``. The bytes are hashed as
they pass: if they do not match the descriptor the session is cancelled (DELETE) before
the PUT, so the registry never commits a wrong blob.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlencode, urljoin

import httpx

from services.core.logging import get_logger
from services.registry.descriptors import Descriptor
from services.registry.http import RegistryHTTP
from vocab import digest as digestmod
from vocab import reference as refmod
from vocab.errors import DataLoss, InvalidArgument, MuelleError, NotFound

# Blobs up to this size go up in one request; larger ones in chunks of this size.
CHUNK_SIZE = 8 * 1024 * 1024
PUSH = "pull,push"


def repository(text: str) -> refmod.Reference:
    """A domain/path with neither tag nor digest."""
    ref = refmod.parse(text)
    if ref.digest or text.rsplit("/", 1)[-1].count(":"):
        raise InvalidArgument(f"invalid repository {text!r}: want domain/path without tag "
                              "or digest, e.g. 127.0.0.1:5000/demo/busybox")
    return ref


class Pusher:
    """The upload half of the registry core; thread-safe (shares RegistryHTTP)."""

    def __init__(self, http: RegistryHTTP, chunk_size: int = CHUNK_SIZE) -> None:
        self._http = http
        self._chunk_size = chunk_size

    def with_http(self, http: RegistryHTTP) -> Pusher:
        """This pusher over another client (one call's own credentials)."""
        return Pusher(http, self._chunk_size)

    def stat_blob(self, repo_text: str, digest: str) -> int | None:
        """Size of the blob in the repository, None when it has none."""
        ref = repository(repo_text)
        digestmod.validate(digest)
        try:
            resp = self._http.request(
                "HEAD", ref.domain, ref.path, f"/v2/{ref.path}/blobs/{digest}",
                kind="blob", what=f"{ref.repository}@{digest}", actions=PUSH)
        except NotFound:
            return None
        resp.close()
        length = resp.headers.get("Content-Length", "")
        return int(length) if length.isdigit() else 0

    def mount_blob(self, repo_text: str, digest: str, from_path: str) -> bool:
        """Ask the registry to mount ``digest`` from ``from_path``; True when it did."""
        ref = repository(repo_text)
        digestmod.validate(digest)
        repository(f"{ref.domain}/{from_path}")  # a valid path, no tag
        query = urlencode({"mount": digest, "from": from_path})
        resp = self._http.request(
            "POST", ref.domain, ref.path, f"/v2/{ref.path}/blobs/uploads/?{query}",
            kind="blob", what=f"{ref.repository}@{digest}", actions=PUSH)
        resp.close()
        if resp.status_code == 201:
            return True
        # 202: the registry opened an ordinary upload instead; do not leave it dangling.
        location = resp.headers.get("Location")
        if location:
            self._cancel(ref, self._absolute(ref, str(resp.url), location), digest)
        return False

    def push_blob(self, repo_text: str, desc: Descriptor,
                  chunks: Iterable[bytes]) -> tuple[str, int, int]:
        """Upload the blob's bytes; returns (digest, size, requests that carried bytes)."""
        ref = repository(repo_text)
        digestmod.validate(desc.digest)
        what = f"{ref.repository}@{desc.digest}"
        log = get_logger(image=ref.repository, digest=desc.digest)
        resp = self._http.request("POST", ref.domain, ref.path,
                                  f"/v2/{ref.path}/blobs/uploads/", kind="blob", what=what,
                                  actions=PUSH)
        resp.close()
        location = self._location(ref, resp)
        hasher = digestmod.hasher(desc.digest)
        sent = requests = 0
        buf = bytearray()
        try:
            for data in chunks:
                buf += data
                while len(buf) > self._chunk_size:
                    part = bytes(buf[: self._chunk_size])
                    del buf[: self._chunk_size]
                    hasher.update(part)
                    location = self._patch(ref, location, part, sent, what)
                    sent += len(part)
                    requests += 1
            hasher.update(buf)
            total = sent + len(buf)
            got = f"{desc.digest.split(':', 1)[0]}:{hasher.hexdigest()}"
            if got != desc.digest or (desc.size and total != desc.size):
                raise DataLoss(f"blob {desc.digest} to push does not match its descriptor "
                               f"(got {got}, {total} bytes)")
        except BaseException:
            self._cancel(ref, location, desc.digest)
            raise
        sep = "&" if "?" in location else "?"
        headers = {"Content-Type": "application/octet-stream",
                   "Content-Length": str(len(buf))}
        resp = self._http.request("PUT", ref.domain, ref.path,
                                  f"{location}{sep}{urlencode({'digest': desc.digest})}",
                                  kind="blob", what=what, headers=headers,
                                  content=bytes(buf), actions=PUSH)
        resp.close()
        stored = resp.headers.get("Docker-Content-Digest") or desc.digest
        if stored != desc.digest:
            raise DataLoss(f"registry {ref.domain} stored {desc.digest} as {stored}")
        requests += 1 if buf or not requests else 0
        log.info("blob pushed", bytes=total, requests=requests)
        return desc.digest, total, requests

    def push_manifest(self, reference: str, media_type: str, content: bytes) -> str:
        """PUT the exact bytes under the reference's tag (or digest); returns the digest."""
        ref = refmod.parse(reference)
        if not media_type:
            raise InvalidArgument("a manifest media type is required")
        digest = digestmod.of_bytes(content)
        target = ref.tag or ref.digest
        if ref.digest and ref.digest != digest and not ref.tag:
            raise DataLoss(f"manifest bytes hash to {digest}, not {ref.digest}")
        what = f"{ref.repository}:{target}" if ref.tag else f"{ref.repository}@{target}"
        resp = self._http.request(
            "PUT", ref.domain, ref.path, f"/v2/{ref.path}/manifests/{target}",
            kind="manifest", what=what, headers={"Content-Type": media_type},
            content=content, actions=PUSH)
        resp.close()
        stored = resp.headers.get("Docker-Content-Digest")
        if stored and stored != digest:
            raise DataLoss(f"registry {ref.domain} stored the manifest as {stored}, "
                           f"expected {digest}")
        get_logger(image=ref.canonical).info("manifest pushed", digest=digest)
        return digest

    # -- upload session helpers ----------------------------------------------------------

    def _patch(self, ref: refmod.Reference, location: str, part: bytes, start: int,
               what: str) -> str:
        headers = {"Content-Type": "application/octet-stream",
                   "Content-Range": f"{start}-{start + len(part) - 1}",
                   "Content-Length": str(len(part))}
        resp = self._http.request("PATCH", ref.domain, ref.path, location, kind="blob",
                                  what=what, headers=headers, content=part, actions=PUSH)
        resp.close()
        return self._location(ref, resp)

    def _location(self, ref: refmod.Reference, resp: httpx.Response) -> str:
        location = resp.headers.get("Location")
        if not location:
            raise InvalidArgument(f"registry {ref.domain} answered an upload without a "
                                  "Location header")
        return self._absolute(ref, str(resp.url), location)

    @staticmethod
    def _absolute(ref: refmod.Reference, base: str, location: str) -> str:
        return urljoin(base, location)

    def _cancel(self, ref: refmod.Reference, location: str, digest: str) -> None:
        try:
            resp = self._http.request("DELETE", ref.domain, ref.path, location, kind="blob",
                                      what=f"{ref.repository}@{digest}", actions=PUSH)
            resp.close()
        except MuelleError as exc:  # best effort: the registry expires sessions anyway
            get_logger(image=ref.repository, digest=digest).debug(
                "could not cancel upload", error=str(exc))
