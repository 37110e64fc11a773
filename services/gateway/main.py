"""``muelle-gateway``: the public engine.v1 API over the image store and the shim."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import grpc
from muelle.engine.v1 import engine_pb2_grpc
from muelle.images.v1 import images_pb2_grpc
from muelle.registry.v1 import registry_pb2_grpc
from muelle.shim.v1 import shim_pb2_grpc

from services.core.client import connect, require
from services.core.config import Config
from services.core.main import service_main
from services.gateway import userns
from services.gateway.engine import Engine
from services.gateway.netlabels import NetworkLabels
from services.gateway.probe import health_probe
from services.gateway.records import Records

SERVICE_NAME = "muelle.engine.v1.Engine"


# The contract the gateway needs of each neighbour (the generated stub names it).
PEERS: dict[str, type] = {
    "imagestore": images_pb2_grpc.ImagesStub,
    "shim": shim_pb2_grpc.ShimStub,
    "registry": registry_pb2_grpc.RegistryStub,
}


def build(cfg: Config) -> Engine:
    # The gateway's own certificate identifies it to its neighbours over TCP.
    tls = cfg.tls_files("gateway")
    # A neighbour of another release (a shim without the contract this gateway speaks)
    # stops the start with one line naming both, instead of failing the first container.
    for name, stub in PEERS.items():
        require(cfg.address(name), stub, name, tls, caller="gateway")
    images = connect(cfg.address("imagestore"), images_pb2_grpc.ImagesStub, "imagestore", tls,
                     caller="gateway")
    shim = connect(cfg.address("shim"), shim_pb2_grpc.ShimStub, "shim", tls,
                   caller="gateway")
    probes = {name: health_probe(cfg.address(name), name, tls) for name in PEERS}
    registry = connect(cfg.address("registry"), registry_pb2_grpc.RegistryStub, "registry",
                       tls, caller="gateway")
    return Engine(Records(cfg.state_dir("gateway")), images, shim, probes,
                  registry=registry, root_dir=str(cfg.root),
                  userns_remap=userns.default_maps(cfg.gateway.userns_remap),
                  network_labels=NetworkLabels(cfg.state_dir("gateway")))


def factory(cfg: Config) -> tuple[Callable[[grpc.Server], None], Sequence[str],
                                  Callable[[], None] | None]:
    engine = build(cfg)
    # Pending auto-removes and half-done creates are handled without delaying serving.
    threading.Thread(target=engine.restore, name="restore", daemon=True).start()

    def register(server: grpc.Server) -> None:
        from services.gateway.server import EngineServicer

        engine_pb2_grpc.add_EngineServicer_to_server(EngineServicer(engine), server)

    def close() -> None:
        engine.health.close()  # its probes stop before the databases close
        engine.records.close()

    return register, [SERVICE_NAME], close


def main() -> None:
    service_main("gateway", factory)


if __name__ == "__main__":
    main()
