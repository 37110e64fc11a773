"""``muelle-shim`` / ``python -m services.shim.main``: the runtime shim service."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import grpc
from muelle.runtime.v1 import runtime_pb2, runtime_pb2_grpc

from services.core.config import Config
from services.core.main import service_main
from services.shim.server import RuntimeServicer
from services.shim.shim import Shim

SERVICE_NAME = runtime_pb2.DESCRIPTOR.services_by_name["Runtime"].full_name


def factory(
    cfg: Config,
) -> tuple[Callable[[grpc.Server], None], Sequence[str], Callable[[], None] | None]:
    shim = Shim(cfg)
    shim.restore()  # live restore: running containers stay manageable

    def register(server: grpc.Server) -> None:
        runtime_pb2_grpc.add_RuntimeServicer_to_server(RuntimeServicer(shim), server)

    # Containers keep running when the shim stops; only the monitor fork server goes.
    return register, [SERVICE_NAME], shim.close


def main() -> None:
    service_main("shim", factory)


if __name__ == "__main__":
    main()
