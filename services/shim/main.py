"""``muelle-shim`` / ``python -m services.shim.main``: the runtime shim service."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import grpc
from muelle.shim.v1 import shim_pb2, shim_pb2_grpc

from services.core.config import Config
from services.core.main import service_main
from services.shim.server import ShimServicer
from services.shim.shim import Shim

SERVICE_NAME = shim_pb2.DESCRIPTOR.services_by_name["Shim"].full_name


def factory(
    cfg: Config,
) -> tuple[Callable[[grpc.Server], None], Sequence[str], Callable[[], None] | None]:
    shim = Shim(cfg)
    shim.restore()  # live restore: running containers stay manageable

    def register(server: grpc.Server) -> None:
        shim_pb2_grpc.add_ShimServicer_to_server(ShimServicer(shim), server)

    # Containers keep running when the shim stops; only the monitor fork server goes.
    return register, [SERVICE_NAME], shim.close


def main() -> None:
    service_main("shim", factory)


if __name__ == "__main__":
    main()
