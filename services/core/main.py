"""The ``main()`` every service shares: flags, config, logging, then serve."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

import grpc

from services.core import config as configmod
from services.core import modes
from services.core.logging import configure
from services.core.server import check_listener, serve
from vocab.errors import MuelleError

# A service factory gets the config and returns (register, service names, on_stop).
Factory = Callable[
    [configmod.Config],
    tuple[Callable[[grpc.Server], None], Sequence[str], Callable[[], None] | None],
]


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """The flags every service process takes (and muelle-engine, which runs several)."""
    parser.add_argument("--config", help="TOML config file (default $MUELLE_CONFIG or "
                        "/etc/muelle/muelle.toml)")
    parser.add_argument("--root", help="state directory (default $MUELLE_ROOT)")
    parser.add_argument("--run", help="socket directory (default $MUELLE_RUN)")
    parser.add_argument("--log-format", choices=["console", "json"])
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"])


def load_config(args: argparse.Namespace, name: str) -> configmod.Config:
    """The config the common options point at, with logging set up for ``name``."""
    cfg = configmod.load(args.config, root=args.root, run=args.run,
                         log_format=args.log_format, log_level=args.log_level)
    configure(name, cfg.log_format, cfg.log_level)
    modes.secure_base(cfg.root, cfg.run)
    return cfg


def service_main(name: str, factory: Factory, argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=f"muelle-{name}", description=f"muelle {name} service")
    add_common_options(parser)
    parser.add_argument("--address", help="listen address: unix:///path or tcp://host:port")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args, name)
        address = args.address or cfg.address(name)
        tls, authz = cfg.tls_files(name), cfg.authz.get(name, ())
        check_listener(name, address, tls, authz)  # refuse before a slow start
        register, names, on_stop = factory(cfg)
        serve(name, address, register, names, on_stop, tls=tls, authz=authz)
    except MuelleError as exc:
        print(f"muelle-{name}: {exc}", file=sys.stderr)
        sys.exit(1)
