"""gRPC servicer of muelle.registry.v1: decode, call the Resolver, encode.

Typed errors raised by the core become status codes in services.core.server.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
from muelle.registry.v1 import registry_pb2, registry_pb2_grpc
from muelle.types.v1 import types_pb2

from services.core import heap
from services.registry.auth import host_of
from services.registry.cache import BlobCache
from services.registry.descriptors import Descriptor, Platform
from services.registry.login import Logins
from services.registry.manifests import ManifestContent
from services.registry.push import Pusher
from services.registry.resolver import Resolver
from vocab import reference as refmod
from vocab.errors import InvalidArgument

# Blob streams in progress: the last to end gives the heap back (core/heap.py).
_TRANSFERS = heap.Busy()


def platform_from_pb(msg: types_pb2.Platform) -> Platform:
    return Platform(msg.os, msg.architecture, msg.variant, msg.os_version)


def platform_to_pb(p: Platform) -> types_pb2.Platform:
    return types_pb2.Platform(os=p.os, architecture=p.architecture, variant=p.variant,
                              os_version=p.os_version)


def descriptor_from_pb(msg: types_pb2.Descriptor) -> Descriptor:
    return Descriptor(
        media_type=msg.media_type, digest=msg.digest, size=msg.size, urls=tuple(msg.urls),
        annotations=dict(msg.annotations),
        platform=platform_from_pb(msg.platform) if msg.HasField("platform") else None)


def descriptor_to_pb(d: Descriptor) -> types_pb2.Descriptor:
    msg = types_pb2.Descriptor(media_type=d.media_type, digest=d.digest, size=d.size,
                               urls=list(d.urls), annotations=d.annotations)
    if d.platform is not None:
        msg.platform.CopyFrom(platform_to_pb(d.platform))
    return msg


def manifest_to_pb(m: ManifestContent) -> registry_pb2.ManifestContent:
    return registry_pb2.ManifestContent(descriptor=descriptor_to_pb(m.descriptor),
                                        content=m.content)


def _blob_data(requests: Iterator[registry_pb2.PushBlobRequest]) -> Iterator[bytes]:
    for req in requests:
        if req.WhichOneof("part") != "data":
            raise InvalidArgument("PushBlob: only the first message may be a header")
        yield req.data


class RegistryServicer(registry_pb2_grpc.RegistryServicer):
    def __init__(self, resolver: Resolver, pusher: Pusher | None = None,
                 logins: Logins | None = None, cache: BlobCache | None = None,
                 locations: bool = True) -> None:
        """``locations``: answer LocateBlob (registry.blob_locations)."""
        self._resolver = resolver
        self._cache = cache
        self._locations = locations
        self._pusher = pusher or Pusher(resolver.http)
        self._logins = logins

    def ParseReference(  # noqa: N802 - generated name
        self, request: registry_pb2.ParseReferenceRequest, context: grpc.ServicerContext
    ) -> registry_pb2.ParseReferenceResponse:
        ref = refmod.parse(request.reference)
        return registry_pb2.ParseReferenceResponse(
            domain=ref.domain, path=ref.path, tag=ref.tag, digest=ref.digest,
            canonical=ref.canonical, repository=ref.repository)

    def Resolve(  # noqa: N802
        self, request: registry_pb2.ResolveRequest, context: grpc.ServicerContext
    ) -> registry_pb2.ResolveResponse:
        platform = None
        if request.HasField("platform") and request.platform.architecture:
            platform = platform_from_pb(request.platform)
            if not platform.os:
                platform = Platform("linux", platform.architecture, platform.variant)
        resolver = self._for_call(request.credentials, request.reference)
        res = resolver.resolve(request.reference, platform)
        return registry_pb2.ResolveResponse(
            canonical=res.canonical, repository=res.repository,
            root=manifest_to_pb(res.root), manifest=manifest_to_pb(res.manifest))

    def FetchBlob(  # noqa: N802
        self, request: registry_pb2.FetchBlobRequest, context: grpc.ServicerContext
    ) -> Iterator[registry_pb2.BlobChunk]:
        desc = descriptor_from_pb(request.descriptor)
        resolver = self._for_call(request.credentials, request.repository)
        # Arguments are checked here, before any byte moves (the stream is lazy).
        # A caller that hashes anyway is spared our hash, unless the shared cache keeps
        # the bytes: only verified blobs enter it (cache.py counts on this hash).
        verify = not request.caller_verifies or self._cache is not None
        chunks = resolver.fetch_blob(request.repository, desc, request.offset, verify=verify)
        if self._cache is not None:
            direct = chunks

            def upstream(offset: int) -> Iterator[bytes]:
                if offset == request.offset:
                    return direct
                return resolver.fetch_blob(request.repository, desc, offset)

            chunks = self._cache.fetch(desc.digest, desc.size, request.offset, upstream)
        try:
            with _TRANSFERS:
                for data in chunks:
                    yield registry_pb2.BlobChunk(data=data)
        finally:
            # A cancelled call stops here: close the HTTP stream now, not at GC time.
            close = getattr(chunks, "close", None)
            if close is not None:
                close()

    def LocateBlob(  # noqa: N802
        self, request: registry_pb2.LocateBlobRequest, context: grpc.ServicerContext
    ) -> registry_pb2.LocateBlobResponse:
        if not self._locations:
            return registry_pb2.LocateBlobResponse(reason="registry.blob_locations is off")
        if self._cache is not None:
            return registry_pb2.LocateBlobResponse(
                reason="the shared blob cache is on: blobs pass through it")
        if not context.peer().startswith("unix:"):
            # Another host may reach another server at that URL, and get the token.
            return registry_pb2.LocateBlobResponse(
                reason="the caller is on another host (TCP)")
        resolver = self._for_call(request.credentials, request.repository)
        found = resolver.locate_blob(request.repository, descriptor_from_pb(request.descriptor))
        if found.where is None:
            return registry_pb2.LocateBlobResponse(reason=found.reason)
        return registry_pb2.LocateBlobResponse(
            url=found.where.url, headers=found.where.headers, probe_bytes=found.probe_bytes,
            min_bytes_per_second=int(found.min_bytes_per_second))

    def _for_call(self, creds: types_pb2.RegistryCredentials, reference: str) -> Resolver:
        """The resolver for a call: with the call's own credentials when it has some for
        the reference's registry (a pull's or push's, never stored), else the stored logins'."""
        if not creds.ByteSize():
            return self._resolver
        domain = refmod.parse(reference).domain
        if creds.server and host_of(creds.server) != domain:
            return self._resolver  # for another registry (containerd ignores them too)
        if creds.password and not creds.username:
            raise InvalidArgument("registry credentials: a password needs a user name")
        pair = (creds.username, creds.password) if creds.username else None
        return self._resolver.for_call(domain, pair, creds.registry_token)

    def _pusher_for(self, creds: types_pb2.RegistryCredentials, reference: str) -> Pusher:
        """The pusher for a call: with the call's own credentials (a push's, never
        stored), else the stored logins'."""
        resolver = self._for_call(creds, reference)
        if resolver is self._resolver:
            return self._pusher
        return self._pusher.with_http(resolver.http)

    def StatBlob(  # noqa: N802
        self, request: registry_pb2.StatBlobRequest, context: grpc.ServicerContext
    ) -> registry_pb2.StatBlobResponse:
        pusher = self._pusher_for(request.credentials, request.repository)
        size = pusher.stat_blob(request.repository, request.digest)
        return registry_pb2.StatBlobResponse(exists=size is not None, size=size or 0)

    def MountBlob(  # noqa: N802
        self, request: registry_pb2.MountBlobRequest, context: grpc.ServicerContext
    ) -> registry_pb2.MountBlobResponse:
        pusher = self._pusher_for(request.credentials, request.repository)
        mounted = pusher.mount_blob(request.repository, request.digest, request.from_path)
        return registry_pb2.MountBlobResponse(mounted=mounted)

    def PushBlob(  # noqa: N802
        self, request_iterator: Iterator[registry_pb2.PushBlobRequest],
        context: grpc.ServicerContext,
    ) -> registry_pb2.PushBlobResponse:
        first = next(request_iterator, None)
        if first is None or first.WhichOneof("part") != "header":
            raise InvalidArgument("PushBlob: the first message must be the header")
        header = first.header
        pusher = self._pusher_for(header.credentials, header.repository)
        digest, size, chunks = pusher.push_blob(
            header.repository, descriptor_from_pb(header.descriptor),
            _blob_data(request_iterator))
        return registry_pb2.PushBlobResponse(digest=digest, size=size, chunks=chunks)

    def PushManifest(  # noqa: N802
        self, request: registry_pb2.PushManifestRequest, context: grpc.ServicerContext
    ) -> registry_pb2.PushManifestResponse:
        pusher = self._pusher_for(request.credentials, request.reference)
        digest = pusher.push_manifest(request.reference, request.media_type, request.content)
        return registry_pb2.PushManifestResponse(digest=digest, size=len(request.content))

    def Login(  # noqa: N802
        self, request: registry_pb2.LoginRequest, context: grpc.ServicerContext
    ) -> registry_pb2.LoginResponse:
        host = self._require_logins().login(request.server, request.username,
                                            request.password)
        return registry_pb2.LoginResponse(status="Login Succeeded", server=host)

    def Logout(  # noqa: N802
        self, request: registry_pb2.LogoutRequest, context: grpc.ServicerContext
    ) -> registry_pb2.LogoutResponse:
        return registry_pb2.LogoutResponse(server=self._require_logins().logout(request.server))

    def _require_logins(self) -> Logins:
        if self._logins is None:
            raise InvalidArgument("this registry service keeps no credentials")
        return self._logins


