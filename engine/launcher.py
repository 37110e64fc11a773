"""Start and stop the services of one host, each its own process: the four of the engine
and the front doors (the Docker API, the CRI).

``make up`` / ``make down`` and the test fixture use this, so there is one way to run an
engine: ``python -m engine.launcher up|down|status [--config FILE]``. Pid files and
service logs go to the run dir; MUELLE_ROOT / MUELLE_RUN are honoured as everywhere.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.core import config as configmod
from services.core import modes
from vocab.channel import TlsFiles, channel
from vocab.errors import MuelleError, Unavailable

# Start order: dependencies first. Stop order is the reverse.
ORDER = ("registry", "imagestore", "shim", "gateway")
# Front doors: clients of the gateway (DESIGN.md), started after it by `make up`.
FRONT_DOORS = ("dockerapi", "cri")
ALL = ORDER + FRONT_DOORS


def healthy(address: str, timeout: float = 1.0, tls: TlsFiles | None = None) -> bool:
    """True when the service at ``address`` answers the standard health check SERVING
    (over mutual TLS with ``tls`` when it listens on TCP)."""
    try:
        with channel(address, tls) as ch:
            reply = health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=timeout
            )
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)
    except grpc.RpcError:
        return False


def http_ping(path: Path, timeout: float = 1.0) -> bool:
    """True when a Docker API on the unix socket ``path`` answers ``GET /_ping`` 200."""
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            sock.sendall(b"GET /_ping HTTP/1.1\r\nHost: muelle\r\nConnection: close\r\n\r\n")
            return sock.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def service_healthy(cfg: configmod.Config, name: str, timeout: float = 1.0) -> bool:
    if name == "dockerapi":
        return http_ping(cfg.docker_socket(), timeout)
    return healthy(cfg.address(name), timeout, tls=cfg.tls_files(name))


def service_address(cfg: configmod.Config, name: str) -> str:
    return f"unix://{cfg.docker_socket()}" if name == "dockerapi" else cfg.address(name)


def _pid_file(cfg: configmod.Config, name: str) -> Path:
    return cfg.run / f"{name}.pid"


def _alive(pid: int) -> bool:
    """True while ``pid`` runs. A zombie is dead: a service killed with SIGKILL stays one
    until its parent reaps it, and after `make up` that parent is init or a subreaper that
    may never do so (kill(pid, 0) succeeds on a zombie, so `make up` used to wait for it)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    # "pid (comm) state ...": comm may hold spaces and parentheses, the state follows the last ")".
    return stat[stat.rfind(b")") + 2:][:1] not in (b"Z", b"X", b"")


def _runs_service(pid: int, name: str) -> bool:
    """``pid`` runs muelle-``name`` (alone or combined), not another program that got
    the pid of one that died (pid files outlive their processes after a kill -9)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return False
    # engine.combined: where muelle-engine lived before engine/ (a process started by
    # the previous release must still be found by `make down`).
    return f"services.{name}.main".encode() in argv or b"engine.combined" in argv or \
        b"services.core.combined" in argv


def running_pid(cfg: configmod.Config, name: str) -> int | None:
    try:
        pid = int(_pid_file(cfg, name).read_text())
    except (FileNotFoundError, ValueError):
        return None
    return pid if _alive(pid) and _runs_service(pid, name) else None


def _spawn(cfg: configmod.Config, env: dict[str, str], log_name: str,
           argv: list[str]) -> int:
    log = os.fdopen(modes.open_private(cfg.run / f"{log_name}.log", modes.LOG_FILE,
                                       append=True), "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", *argv],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
        start_new_session=True,  # a Ctrl-C in the terminal must not kill services
    )
    log.close()
    return proc.pid


def start(
    cfg: configmod.Config,
    config_file: str | None = None,
    services: tuple[str, ...] = ORDER,
    wait: float = 30.0,
    combined: bool = False,
) -> dict[str, int]:
    """Start ``services`` (skipping ones already running); returns name -> pid.
    ``combined``: the ones not running share one process (engine/combined.py),
    logging to engine.log; each still has its pid file (the same pid)."""
    modes.secure_base(cfg.root, cfg.run)
    env = dict(os.environ, MUELLE_ROOT=str(cfg.root), MUELLE_RUN=str(cfg.run))
    if config_file:
        env["MUELLE_CONFIG"] = str(Path(config_file).resolve())
    shared = 0
    missing = [name for name in services if running_pid(cfg, name) is None]
    if combined and missing:
        shared = _spawn(cfg, env, "engine",
                        ["engine.combined", "--services", ",".join(missing)])
        for name in missing:
            _pid_file(cfg, name).write_text(str(shared))
    pids: dict[str, int] = {}
    for name in services:
        # The ones just handed to the shared process are its: checking them again raced
        # with its start now and then (running_pid saw no service yet) and spawned a
        # second process for one of them.
        pid = shared if shared and name in missing else running_pid(cfg, name)
        if pid is None:
            pid = _spawn(cfg, env, name, [f"services.{name}.main"])
            _pid_file(cfg, name).write_text(str(pid))
        pids[name] = pid
        deadline = time.monotonic() + wait
        while not service_healthy(cfg, name, timeout=0.5):
            if not _alive(pid) or _exited(pid):
                log_name = "engine" if pid == shared else name
                tail = (cfg.run / f"{log_name}.log").read_text(errors="replace")[-2000:]
                raise Unavailable(f"muelle-{name} failed to start:\n{tail}")
            if time.monotonic() > deadline:
                raise Unavailable(f"muelle-{name} did not become healthy within {wait:.0f}s")
            time.sleep(0.05)
    return pids


def _exited(pid: int) -> bool:
    # Reap a child that died, so _alive() does not see a zombie as running.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return done == pid


def stop(cfg: configmod.Config, services: tuple[str, ...] = ALL,
         wait: float = 15.0) -> None:
    """SIGTERM each service (gateway first), then SIGKILL what outlives ``wait`` seconds."""
    for name in reversed(services):
        pid = running_pid(cfg, name)
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + wait
            while _alive(pid) and not _exited(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _alive(pid) and not _exited(pid):
                os.kill(pid, signal.SIGKILL)
        _pid_file(cfg, name).unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="muelle-launcher", description=__doc__)
    parser.add_argument("action", choices=["up", "down", "status"])
    parser.add_argument("--config", help="TOML config file")
    parser.add_argument("--combined", action="store_true",
                        help="up: the four services in one process (muelle-engine)")
    parser.add_argument("--services", default=",".join(ALL),
                        help="up/down: the services of this host (default: all, the Docker "
                             "API included); across hosts each host runs some")
    args = parser.parse_args(argv)
    try:
        cfg = configmod.load(args.config)
        wanted = [n.strip() for n in args.services.split(",") if n.strip()]
        if not wanted or set(wanted) - set(ALL):
            raise MuelleError(f"--services: choose from {', '.join(ALL)}")
        services = tuple(n for n in ALL if n in wanted)
        if args.action == "up":
            for name, pid in start(cfg, args.config, services,
                                   combined=args.combined).items():
                print(f"muelle-{name:<10} pid {pid:<7} {service_address(cfg, name)}")
        elif args.action == "down":
            stop(cfg, services)
            print("muelle services stopped (containers keep running; `make up` re-attaches)")
        else:
            bad = 0
            for name in ALL:
                ok = service_healthy(cfg, name)
                bad += not ok
                print(f"muelle-{name:<10} {'serving' if ok else 'DOWN':<8} "
                      f"{service_address(cfg, name)}")
            sys.exit(1 if bad else 0)
    except MuelleError as exc:
        print(f"muelle: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
