"""``muelle-cri``: Kubernetes' CRI (runtime.v1 RuntimeService and ImageService) for kubelet,
crictl and critest, on ``$MUELLE_RUN/cri.sock``.

A client of engine.v1 through the gateway, like the CLI: the gateway already orchestrates
images, the shim and container records, and serves from any host, so a CRI on another
machine than the shim works as long as the paths the kubelet names (log directory, host
paths of mounts) are the shim's host's too (the kubelet runs next to its runtime).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import grpc
from k8s.cri.v1 import api_pb2, api_pb2_grpc
from muelle.engine.v1 import engine_pb2_grpc

from services.core.client import connect
from services.core.config import Config
from services.core.logging import get_logger
from services.core.main import service_main
from services.cri.cni import Cni
from services.cri.containers import Containers
from services.cri.events import Events
from services.cri.images import Images
from services.cri.logs import Logs
from services.cri.sandboxes import Sandboxes
from services.cri.streaming.server import StreamServer
from vocab.errors import MuelleError, NotFound

SERVICE_NAMES = ("runtime.v1.RuntimeService", "runtime.v1.ImageService")


def factory(cfg: Config) -> tuple[Callable[[grpc.Server], None], Sequence[str],
                                  Callable[[], None] | None]:
    engine = connect(cfg.address("gateway"), engine_pb2_grpc.EngineStub, "gateway",
                     cfg.tls_files("cri"))
    store_dir = str(cfg.state_dir("imagestore"))  # the writable layers' and images' disk
    events = Events(engine)
    containers = Containers(engine, Logs(engine), events, store_dir)
    cni = None
    if cfg.cri.cni_conf_dir:  # else pods are on the shim's bridge
        cni = Cni(Path(cfg.cri.cni_conf_dir), cfg.cri.cni_bin_dir, cfg.state_dir("cri"),
                  cfg.run)
    sandboxes = Sandboxes(engine, cfg.cri, events, store_dir, cni)

    def describe(sandbox_id: str) -> tuple[api_pb2.PodSandboxStatus | None,
                                           list[api_pb2.ContainerStatus]]:
        """What an event says of its pod: the sandbox's status and its containers'."""
        try:
            pod: api_pb2.PodSandboxStatus | None = sandboxes.status(sandbox_id).status
        except NotFound:
            pod = None
        statuses = []
        for member in sandboxes.members(sandbox_id):
            with contextlib.suppress(NotFound):  # removed meanwhile
                statuses.append(containers.status(member.id).status)
        return pod, statuses

    events.describe = describe
    images = Images(engine, store_dir)
    streaming = StreamServer(engine, cfg.cri.stream_address)
    streaming.start()

    def resume() -> None:
        try:
            containers.resume()
            sandboxes.resume()
        except MuelleError as exc:  # the gateway is not up yet: later starts follow
            get_logger().warning("cannot resume CRI log followers and event watches",
                                 error=str(exc))

    threading.Thread(target=resume, name="cri-resume", daemon=True).start()

    def register(server: grpc.Server) -> None:
        from services.cri.server import ImageServicer, RuntimeServicer

        # The RPCs not served yet are filled in at import (server._fill_unimplemented),
        # which mypy cannot see: hence the ignores.
        api_pb2_grpc.add_RuntimeServiceServicer_to_server(
            RuntimeServicer(engine, sandboxes, containers, streaming, events),  # type: ignore[abstract]
            server)
        api_pb2_grpc.add_ImageServiceServicer_to_server(
            ImageServicer(images), server)  # type: ignore[abstract]

    return register, SERVICE_NAMES, streaming.stop


def main() -> None:
    service_main("cri", factory)


if __name__ == "__main__":
    main()
