"""Exec: ``POST /containers/{id}/exec`` (create), ``/exec/{id}/start`` (hijacked unless
detached), ``/exec/{id}/json`` (ExitCode), ``/exec/{id}/resize``.

engine.v1 runs an exec as one bidirectional stream (ExecContainer) that starts it; the
Docker API splits create from start. So exec instances are kept here, in memory, as
dockerd keeps them: a created exec is a stored request until it is started.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from typing import Any

from muelle.types.v1 import types_pb2

from services.dockerapi.engine import BidiStream, Gateway
from services.dockerapi.errors import ApiError, bad_request
from services.dockerapi.http import Hijacked, Request, Responder
from services.dockerapi.streams import encode, pump_stdin

KEPT = 1024  # finished execs kept for inspection, oldest dropped first


@dataclass
class Exec:
    id: str
    container: str
    config: dict[str, Any]
    running: bool = False
    exit_code: int | None = None
    call: BidiStream | None = field(default=None, repr=False)

    def json(self) -> dict[str, Any]:
        cmd = self.config.get("Cmd") or []
        return {
            "ID": self.id, "ContainerID": self.container, "Running": self.running,
            "ExitCode": self.exit_code, "Pid": 0, "CanRemove": False, "DetachKeys": "",
            "OpenStdin": bool(self.config.get("AttachStdin")),
            "OpenStdout": bool(self.config.get("AttachStdout")),
            "OpenStderr": bool(self.config.get("AttachStderr")),
            "ProcessConfig": {"tty": bool(self.config.get("Tty")), "entrypoint": cmd[0],
                              "arguments": cmd[1:], "privileged":
                              bool(self.config.get("Privileged")),
                              "user": self.config.get("User") or ""},
        }


def _strings(value: Any, name: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise bad_request(f"{name} must be a list of strings")
    return value


class Execs:
    def __init__(self, gateway: Gateway, detail: Any) -> None:
        self.gateway = gateway
        self.detail = detail  # async ref -> ContainerDetail (404 when unknown)
        self._execs: dict[str, Exec] = {}

    def _get(self, exec_id: str) -> Exec:
        found = self._execs.get(exec_id)
        if found is None:
            raise ApiError(404, f"No such exec instance: {exec_id}")
        return found

    async def create(self, req: Request, out: Responder) -> None:
        config = req.json({})
        if not isinstance(config, dict):
            raise bad_request("the request body must be a JSON object")
        if not _strings(config.get("Cmd"), "Cmd"):
            raise bad_request("No exec command specified")
        _strings(config.get("Env"), "Env")
        if config.get("Privileged"):
            raise ApiError(400, "privileged exec is not supported by muelle yet")
        detail = await self.detail(req.params["id"])
        if not detail.state.running:
            raise ApiError(409, f"Container {detail.id} is not running")
        if detail.state.status == "paused":
            raise ApiError(409, f"Container {detail.id} is paused, unpause the container "
                                "before exec")
        exec_id = secrets.token_hex(32)
        self._execs[exec_id] = Exec(exec_id, detail.id, config)
        self._forget_old()
        await out.json(201, {"Id": exec_id})

    def _forget_old(self) -> None:
        done = [e.id for e in self._execs.values() if e.exit_code is not None]
        for exec_id in done[:max(0, len(done) - KEPT)]:
            del self._execs[exec_id]

    async def inspect(self, req: Request, out: Responder) -> None:
        await out.json(200, self._get(req.params["id"]).json())

    async def resize(self, req: Request, out: Responder) -> None:
        ex = self._get(req.params["id"])
        if ex.call is None or not ex.running:
            raise ApiError(409, f"Exec {ex.id} is not running")
        rows, cols = req.integer("h", 0) or 0, req.integer("w", 0) or 0
        await ex.call.send(types_pb2.ExecInput(
            resize=types_pb2.ConsoleSize(rows=rows, cols=cols)))
        await out.body(200, b"", "text/plain; charset=utf-8")

    async def start(self, req: Request, out: Responder) -> None:
        ex = self._get(req.params["id"])
        body = req.json({})
        if not isinstance(body, dict):
            raise bad_request("the request body must be a JSON object")
        if ex.running or ex.exit_code is not None:
            raise ApiError(409, f"Exec {ex.id} has already been started")
        cfg = ex.config
        tty = bool(body.get("Tty", cfg.get("Tty")))
        interactive = bool(cfg.get("AttachStdin"))
        detach = bool(body.get("Detach"))
        start = types_pb2.ExecStart(
            container=ex.container, cmd=_strings(cfg.get("Cmd"), "Cmd"),
            env=_strings(cfg.get("Env"), "Env"), user=str(cfg.get("User") or ""),
            working_dir=str(cfg.get("WorkingDir") or ""), interactive=interactive and not
            detach, tty=tty, detach=detach)
        size = body.get("ConsoleSize") or cfg.get("ConsoleSize")
        if tty and isinstance(size, list) and len(size) == 2 and all(size):
            start.console_size.rows, start.console_size.cols = int(size[0]), int(size[1])
        call = self.gateway.bidi("ExecContainer")
        ex.call, ex.running = call, True
        try:
            await call.send(types_pb2.ExecInput(start=start))
            if not start.interactive:
                await call.done_writing()
            if detach:
                await self._detached(ex, call)
                await out.empty(200)
                return
            await self._attached(ex, call, await out.hijack(req.upgrade), tty, start.interactive)
        finally:
            ex.running = False
            ex.call = None
            call.cancel()
            if ex.exit_code is None:
                ex.exit_code = -1 if detach else 137

    async def _detached(self, ex: Exec, call: BidiStream) -> None:
        async for message in call:
            if message.WhichOneof("event") == "exit":
                if message.exit.error:
                    raise ApiError(500, message.exit.error)
                # Running on its own now; its code is not known to this process.
                ex.exit_code = 0
                return

    async def _attached(self, ex: Exec, call: BidiStream, pipe: Hijacked, tty: bool,
                        interactive: bool) -> None:
        pump = asyncio.ensure_future(pump_stdin(pipe, call, types_pb2.ExecInput)) \
            if interactive else None
        try:
            async for message in call:
                if message.WhichOneof("event") == "output":
                    await pipe.write(encode(message.output.stream, bytes(message.output.data),
                                            tty))
                    continue
                if message.exit.error:
                    await pipe.write(encode("stderr", message.exit.error.encode() + b"\n", tty))
                ex.exit_code = message.exit.exit_code
                return
        finally:
            if pump is not None:
                pump.cancel()

