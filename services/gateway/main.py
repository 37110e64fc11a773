"""``muelle-gateway``: the public engine.v1 API over the image store and the shim."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import grpc
from muelle.engine.v1 import engine_pb2_grpc
from muelle.images.v1 import images_pb2_grpc
from muelle.registry.v1 import registry_pb2_grpc
from muelle.runtime.v1 import runtime_pb2_grpc

from services.core.client import connect
from services.core.config import Config
from services.core.main import service_main
from services.gateway import userns
from services.gateway.engine import Engine
from services.gateway.netlabels import NetworkLabels
from services.gateway.probe import health_probe
from services.gateway.records import Records

SERVICE_NAME = "muelle.engine.v1.Engine"


def build(cfg: Config) -> Engine:
    # The gateway's own certificate identifies it to its neighbours over TCP.
    tls = cfg.tls_files("gateway")
    images = connect(cfg.address("imagestore"), images_pb2_grpc.ImagesStub, "imagestore", tls)
    runtime = connect(cfg.address("shim"), runtime_pb2_grpc.RuntimeStub, "shim", tls)
    probes = {name: health_probe(cfg.address(name), name, tls)
              for name in ("registry", "imagestore", "shim")}
    registry = connect(cfg.address("registry"), registry_pb2_grpc.RegistryStub, "registry",
                       tls)
    return Engine(Records(cfg.state_dir("gateway")), images, runtime, probes,
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

    return register, [SERVICE_NAME], engine.records.close


def main() -> None:
    service_main("gateway", factory)


if __name__ == "__main__":
    main()
