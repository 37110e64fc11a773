"""The image store's view of the registry service: a small interface (so unit tests can
serve blobs from an OCI layout) and its gRPC implementation over muelle.registry.v1."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

# grpc imports its channel code when the first channel is made: at the start of the first
# pull, ~5 ms (and a 100 KB file to read after the page cache was dropped). Here, at start.
import grpc._channel  # noqa: F401
from muelle.registry.v1 import registry_pb2, registry_pb2_grpc
from muelle.types.v1 import types_pb2

from services.core.cancel import Cancel
from services.core.client import connect
from services.core.logging import get_logger
from services.imagestore import direct
from vocab.channel import TlsFiles
from vocab.errors import FailedPrecondition, MuelleError

# From this many bytes on, the registry service leaves the digest to us (FetchBlob's
# caller_verifies): its hash would repeat ours; below, it costs under 2 ms.
SPARE_HASH_FROM = 4 << 20
# Seconds a LocateBlob may take (a HEAD, maybe a token): a healthy registry answers in
# milliseconds, far ones well under a second.
LOCATE_TIMEOUT = 5.0


@dataclass
class Content:
    """A manifest or index exactly as served."""

    media_type: str
    digest: str
    size: int
    data: bytes


@dataclass
class Resolved:
    canonical: str
    repository: str
    root: Content  # what the reference points to (index or manifest)
    manifest: Content  # the selected image manifest


class RegistryClient(Protocol):
    def resolve(self, reference: str, platform: types_pb2.Platform | None) -> Resolved:
        """Resolve ``reference`` to its root content and the platform's manifest."""

    def fetch_blob(self, repository: str, descriptor: types_pb2.Descriptor,
                   offset: int, cancel: Cancel | None = None) -> Iterable[bytes]:
        """The blob's bytes from ``offset`` on, maybe unverified (``SPARE_HASH_FROM``): the
        caller checks the digest (content.ingest does); ``cancel`` set ends the transfer."""

    def stat_blob(self, repository: str, digest: str) -> bool:
        """Whether ``repository`` has the blob."""

    def mount_blob(self, repository: str, digest: str, from_path: str) -> bool:
        """Mount the blob from another repository of the same registry; True if done."""

    def push_blob(self, repository: str, descriptor: types_pb2.Descriptor,
                  chunks: Iterable[bytes]) -> int:
        """Upload the blob's bytes; returns the number of bytes sent."""

    def push_manifest(self, reference: str, media_type: str, data: bytes) -> str:
        """Store a manifest under the reference's tag; returns its digest."""


def for_pull(client: RegistryClient, credentials: types_pb2.RegistryCredentials
             ) -> RegistryClient:
    """``client`` for one pull or push with its own credentials: only the registry service
    takes them (a layout-backed test client has no registry to show them to)."""
    if not credentials.ByteSize():
        return client
    if not isinstance(client, GrpcRegistryClient):
        raise FailedPrecondition("this image store's registry client takes no credentials")
    return client.for_pull(credentials)


def _content(msg: registry_pb2.ManifestContent) -> Content:
    d = msg.descriptor
    return Content(d.media_type, d.digest, d.size, msg.content)


class GrpcRegistryClient:
    """RegistryClient backed by the registry service; connects on first use."""

    def __init__(self, address: str, tls: TlsFiles | None = None) -> None:
        self.address = address
        self.tls = tls  # the image store's certificate, for a registry service over TCP
        self._stub: registry_pb2_grpc.RegistryStub | None = None
        # One pull's or push's own credentials (for_pull), sent with each of its calls.
        self.credentials: types_pb2.RegistryCredentials | None = None

    def for_pull(self, credentials: types_pb2.RegistryCredentials) -> GrpcRegistryClient:
        """This client for one pull or push with its own credentials (the same
        connection)."""
        view = copy.copy(self)
        view.credentials = credentials
        return view

    @property
    def stub(self) -> registry_pb2_grpc.RegistryStub:
        if self._stub is None:
            self._stub = connect(self.address, registry_pb2_grpc.RegistryStub, "registry",
                                 self.tls)
        return self._stub

    def resolve(self, reference: str, platform: types_pb2.Platform | None) -> Resolved:
        req = registry_pb2.ResolveRequest(reference=reference, credentials=self.credentials)
        if platform is not None:
            req.platform.CopyFrom(platform)
        reply = self.stub.Resolve(req)
        return Resolved(reply.canonical, reply.repository, _content(reply.root),
                        _content(reply.manifest))

    def fetch_blob(self, repository: str, descriptor: types_pb2.Descriptor,
                   offset: int, cancel: Cancel | None = None) -> Iterator[bytes]:
        # A large blob comes straight from the registry where the registry service says
        # so (direct.py), and the rest through it where that stops early.
        if descriptor.size - offset >= SPARE_HASH_FROM:
            where = self._locate(repository, descriptor)
            if where is not None:
                began = offset
                try:
                    # Closed at once when our consumer stops early: its connection too.
                    with contextlib.closing(direct.download(where, offset, descriptor.size,
                                                            cancel)) as chunks:
                        for data in chunks:
                            offset += len(data)
                            yield data
                    get_logger(digest=descriptor.digest).info(
                        "blob downloaded from the registry", bytes=offset - began)
                    return
                except direct.HandOver as stop:
                    get_logger(digest=descriptor.digest).info(
                        "direct download handed to the registry service", offset=offset,
                        reason=str(stop))
        yield from self._relay(repository, descriptor, offset, cancel)

    def _locate(self, repository: str, descriptor: types_pb2.Descriptor
                ) -> direct.Location | None:
        """Where the registry service lets us download the blob ourselves, or None."""
        try:
            # Bounded: a registry slow to answer a HEAD is FetchBlob's to wait for (and
            # a cancelled pull waits at most this long here).
            reply = self.stub.LocateBlob(registry_pb2.LocateBlobRequest(
                repository=repository, descriptor=descriptor, credentials=self.credentials),
                timeout=LOCATE_TIMEOUT)
        except MuelleError as exc:  # an older registry service (UNIMPLEMENTED), ...
            get_logger(digest=descriptor.digest).debug("no blob location", reason=str(exc))
            return None
        if not reply.url:
            get_logger(digest=descriptor.digest).debug("no blob location",
                                                       reason=reply.reason)
            return None
        return direct.Location(reply.url, dict(reply.headers), reply.probe_bytes,
                               float(reply.min_bytes_per_second))

    def _relay(self, repository: str, descriptor: types_pb2.Descriptor,
               offset: int, cancel: Cancel | None) -> Iterator[bytes]:
        """The blob through the registry service's FetchBlob."""
        # The caller verifies: content.ingest hashes every blob as it writes it and
        # commits nothing that does not match, so for a large blob the registry service
        # is spared its own hash (~0.1 CPU-s per 200 MB). A small one it still checks
        # and holds back whole: nothing of a corrupt one reaches a partial file then.
        stream = self.stub.FetchBlob(registry_pb2.FetchBlobRequest(
            repository=repository, descriptor=descriptor, offset=offset,
            credentials=self.credentials,
            caller_verifies=descriptor.size - offset >= SPARE_HASH_FROM))
        stop = getattr(stream, "cancel", None)
        # A pull cancelled while this thread waits for a chunk (a slow registry) must not
        # wait for it: cancelling the call wakes the wait, from the canceller's thread.
        forget = cancel.on_set(stop) if cancel is not None and stop else (lambda: None)
        try:
            for chunk in stream:
                yield chunk.data
        finally:
            forget()
            if stop:
                stop()  # stop the transfer when the caller gives up early

    def stat_blob(self, repository: str, digest: str) -> bool:
        reply = self.stub.StatBlob(registry_pb2.StatBlobRequest(
            repository=repository, digest=digest, credentials=self.credentials))
        return bool(reply.exists)

    def mount_blob(self, repository: str, digest: str, from_path: str) -> bool:
        reply = self.stub.MountBlob(registry_pb2.MountBlobRequest(
            repository=repository, digest=digest, from_path=from_path,
            credentials=self.credentials))
        return bool(reply.mounted)

    def push_blob(self, repository: str, descriptor: types_pb2.Descriptor,
                  chunks: Iterable[bytes]) -> int:
        def requests() -> Iterator[registry_pb2.PushBlobRequest]:
            yield registry_pb2.PushBlobRequest(header=registry_pb2.PushBlobHeader(
                repository=repository, descriptor=descriptor, credentials=self.credentials))
            for data in chunks:
                yield registry_pb2.PushBlobRequest(data=data)

        return int(self.stub.PushBlob(requests()).size)

    def push_manifest(self, reference: str, media_type: str, data: bytes) -> str:
        reply = self.stub.PushManifest(registry_pb2.PushManifestRequest(
            reference=reference, media_type=media_type, content=data,
            credentials=self.credentials))
        return str(reply.digest)
