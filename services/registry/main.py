"""``muelle-registry`` / ``python -m services.registry.main``: the registry proxy service."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import grpc
from muelle.registry.v1 import registry_pb2, registry_pb2_grpc

from services.core import heap, modes
from services.core.config import Config
from services.core.main import service_main
from services.registry.cache import BlobCache
from services.registry.credstore import auth_file_path
from services.registry.login import Logins
from services.registry.manifest_cache import ManifestCache
from services.registry.mirror import Mirror
from services.registry.push import Pusher
from services.registry.resolver import Resolver
from services.registry.server import RegistryServicer
from vocab.errors import InvalidArgument

SERVICE_NAME = registry_pb2.DESCRIPTOR.services_by_name["Registry"].full_name


def factory(
    cfg: Config,
) -> tuple[Callable[[grpc.Server], None], Sequence[str], Callable[[], None] | None]:
    heap.tune()  # blobs stream through as ~1 MiB buffers (core/heap.py)
    cache = None
    manifest_cache = None
    # Credentials and cached (maybe private) blobs: for no other user (core/modes.py).
    modes.private_dir(cfg.state_dir("registry"))
    if cfg.registry.cache_max_bytes > 0:  # the shared cache: blobs on disk, manifests in memory
        cache = BlobCache(cfg.state_dir("registry") / "blobs", cfg.registry.cache_max_bytes)
        manifest_cache = ManifestCache()
    resolver = Resolver(cfg, manifest_cache=manifest_cache)
    servicer = RegistryServicer(resolver, Pusher(resolver.http),
                                Logins(resolver.http, auth_file_path(cfg)), cache,
                                locations=cfg.registry.blob_locations)

    mirror = None
    mirror_resolver = None
    if cfg.registry.mirror_listen:
        if not cfg.registry.mirror_upstream:
            raise InvalidArgument("registry.mirror_listen needs registry.mirror_upstream")
        # Its callers are anonymous, so is its view of upstream: the engine's logins and
        # client certificates never open private content to them (mirror.py).
        mirror_resolver = Resolver(cfg, anonymous=True)
        mirror = Mirror(mirror_resolver, cache, cfg.registry.mirror_upstream,
                        cfg.registry.mirror_listen, manifest_cache).start()

    def register(server: grpc.Server) -> None:
        registry_pb2_grpc.add_RegistryServicer_to_server(servicer, server)

    def close() -> None:
        if mirror is not None:
            mirror.close()
        if mirror_resolver is not None:
            mirror_resolver.close()
        resolver.close()

    return register, [SERVICE_NAME], close


def main() -> None:
    service_main("registry", factory)


if __name__ == "__main__":
    main()
