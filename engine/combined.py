"""``muelle-engine``: several services of one host in one process, as containerd hosts its.

Each service still serves its own socket and reaches the others through their gRPC
addresses, exactly as when it runs alone: any one can move to its own process or host by
starting it there and pointing ``[addresses]`` at it. What is shared is the interpreter and
the grpc runtime (~30 MiB each), so four services take about half the memory they take as
four processes. ``--services`` picks which run here (all by default: the four, the
Docker API and the CRI).

Started in dependency order and stopped in reverse, like the launcher does with processes.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from engine.launcher import ALL
from services.core import config as configmod
from services.core.logging import get_logger
from services.core.main import add_common_options, load_config
from services.core.server import Running, check_listener, start, stop_signals
from services.dockerapi.main import Background
from vocab.errors import MuelleError

# The launcher's order: dependencies first, then the front doors (clients of the gateway).
ORDER = ALL
FACTORIES = {
    "registry": "services.registry.main",
    "imagestore": "services.imagestore.server",
    "shim": "services.shim.main",
    "gateway": "services.gateway.main",
    "dockerapi": "services.dockerapi.main",  # HTTP, not gRPC: its own event loop (Background)
    "cri": "services.cri.main",
}


def parse_services(text: str) -> tuple[str, ...]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in FACTORIES]
    if unknown or not names:
        raise MuelleError(f"--services: unknown service {', '.join(unknown) or '(none)'}; "
                          f"choose from {', '.join(ORDER)}")
    return tuple(n for n in ORDER if n in names)


def run(cfg: configmod.Config, services: Sequence[str]) -> None:
    stopping = stop_signals()  # before the services: a start (shim.restore) may be slow
    running: list[Running | Background] = []
    for name in services:  # refuse a bad gRPC listener before any (maybe slow) start
        if name != "dockerapi":
            check_listener(name, cfg.address(name), cfg.tls_files(name),
                           cfg.authz.get(name, ()))
    try:
        for name in services:
            if stopping.is_set():
                return
            if name == "dockerapi":
                running.append(Background(cfg))
                continue
            factory = importlib.import_module(FACTORIES[name]).factory
            register, names, on_stop = factory(cfg)
            try:
                running.append(start(name, cfg.address(name), register, names, on_stop,
                                     tls=cfg.tls_files(name),
                                     authz=cfg.authz.get(name, ())))
            except BaseException:
                if on_stop:
                    on_stop()
                raise
        get_logger().info("serving", services=list(services))
        stopping.wait()
    finally:
        for service in reversed(running):
            try:
                service.stop()
                get_logger().info("stopped", service=service.name)
            except Exception as exc:  # noqa: BLE001 - the others must still stop
                get_logger().error("stop failed", service=service.name, error=str(exc))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="muelle-engine", description=__doc__.split("\n")[0])
    add_common_options(parser)
    parser.add_argument("--services", default=",".join(ORDER),
                        help="comma-separated services to run here (default: all)")
    args = parser.parse_args(argv)
    try:
        services = parse_services(args.services)
        run(load_config(args, "engine"), services)
    except MuelleError as exc:
        print(f"muelle-engine: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
