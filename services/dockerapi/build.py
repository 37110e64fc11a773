"""``POST /build``: the classic builder's endpoint (`DOCKER_BUILDKIT=0 docker build`,
docker-py ``images.build``, docker-compose ``build:``) over engine.v1 Build.

The query maps onto BuildOptions; the body, the context tar (plain or compressed: the
gateway detects gzip, bzip2 and xz), is passed on as it arrives. The answer is dockerd's:
JSON lines ``{"stream": "Step 1/3 : ..."}``, ``{"aux": {"ID": "sha256:..."}}`` before
"Successfully built" (API 1.30 and later), and a failure after the first line in-band,
``{"errorDetail": {"code": N, "message": ...}, "error": ...}`` with a failing RUN's exit
code as N (the docker CLI exits with it). An error before any output is an ordinary error
response (a Dockerfile syntax error is a 400, as dockerd answers). With ``q=1`` only the
image ID is sent (``{"stream": "sha256:...\\n"}``); if the build fails, the output held
back comes first, then the error, as dockerd does.

Options Docker has and muelle's builder does not honour are refused by name when set to
anything but their default (resource limits, extra hosts, squash, BuildKit's version 2),
never silently dropped. Left as accepted-but-unused: ``rm``/``forcerm`` (step containers
are always removed), ``cachefrom`` (the local cache is used either way, as the classic
builder also does), ``X-Registry-Config`` (pulls use the engine's stored logins).
"""

from __future__ import annotations

import base64
import json
from typing import Any

from muelle.engine.v1 import engine_pb2

from services.dockerapi.engine import Gateway
from services.dockerapi.errors import ApiError, bad_request
from services.dockerapi.gone import while_connected
from services.dockerapi.http import Request, Responder
from services.dockerapi.pull import line
from services.dockerapi.uploads import send_body
from vocab.errors import MuelleError

AUX_SINCE = (1, 30)  # API version from which dockerd sends the image ID as "aux"

# Query parameters that ask for what the builder cannot do: their default values.
_UNSUPPORTED = {
    "extrahosts": "", "securityopt": "", "cpusetcpus": "", "cpusetmems": "",
    "cpushares": "0", "cpuquota": "0", "cpuperiod": "0", "memory": "0", "memswap": "0",
    "cgroupparent": "", "shmsize": "0", "squash": "0", "outputs": "",
}


def _json_map(req: Request, name: str, what: str) -> dict[str, str]:
    """A JSON object query parameter (``buildargs``, ``labels``); null values are left
    out (the CLI sends ``--build-arg NAME`` with NAME unset as null)."""
    raw = req.arg(name)
    if raw in ("", "null"):
        return {}
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise bad_request(f"error reading {what}: {exc}") from None
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in value.items()):
        raise bad_request(f"error reading {what}: want a JSON object of strings")
    return {k: v for k, v in value.items() if v is not None}


def _refuse_unsupported(req: Request) -> None:
    for name, default in _UNSUPPORTED.items():
        for value in req.query.get(name, []):
            if value not in (default, "", "false", "False") and value != "[]":
                raise bad_request(f"build option {name}={value} is not supported by muelle")
    if req.arg("ulimits") not in ("", "null", "[]", "{}"):
        raise bad_request("build option ulimits is not supported by muelle")
    if req.arg("isolation") not in ("", "default"):
        raise bad_request(f"build option isolation={req.arg('isolation')} is not supported "
                          "by muelle")
    if req.arg("version") == "2":
        raise bad_request("BuildKit builds (version=2) are not supported by muelle; build "
                          "with the classic builder (DOCKER_BUILDKIT=0)")
    if req.arg("remote"):
        raise ApiError(501, "a remote build context (remote=URL) is not supported by muelle "
                            "yet: send the context as the request body")
    cache_from = req.arg("cachefrom")
    if cache_from not in ("", "null"):
        try:
            json.loads(cache_from)
        except ValueError as exc:
            raise bad_request(f"error reading cachefrom: {exc}") from None


def registry_config(header: str) -> dict[str, Any]:
    """X-Registry-Config: base64url JSON of registry -> credentials. dockerd ignores one
    it cannot read; so does this."""
    if not header:
        return {}
    try:
        value = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except (ValueError, TypeError):
        return {}
    return value if isinstance(value, dict) else {}


def build_options(req: Request) -> engine_pb2.BuildOptions:
    """The query of ``POST /build`` as BuildOptions (HTTP 400 for what is refused)."""
    _refuse_unsupported(req)
    network = req.arg("networkmode")
    return engine_pb2.BuildOptions(
        dockerfile=req.arg("dockerfile"), tags=[t for t in req.query.get("t", []) if t],
        build_args=_json_map(req, "buildargs", "build args"), target=req.arg("target"),
        no_cache=req.flag("nocache"), pull=req.flag("pull"),
        labels=_json_map(req, "labels", "labels"),
        network_mode="" if network == "default" else network,
        platform=req.arg("platform").lower())


def _wants_aux(version: str) -> bool:
    major, _, minor = version.partition(".")
    try:
        return (int(major), int(minor)) >= AUX_SINCE
    except ValueError:
        return True


class _Relay:
    """Build events -> dockerd's JSON lines."""

    def __init__(self, out: Responder, quiet: bool, aux: bool) -> None:
        self.out = out
        self.quiet = quiet
        self.aux = aux
        self.started = False
        self.held: list[str] = []  # quiet: all output; else from "Successfully built" on
        self.exit_code = 0

    async def write(self, obj: dict[str, Any]) -> None:
        if not self.started:
            await self.out.start_stream(200, "application/json")
            self.started = True
        await self.out.write(line(obj))

    async def event(self, event: engine_pb2.BuildEvent) -> None:
        kind = event.WhichOneof("event")
        if kind == "stream":
            if self.quiet or self.held or event.stream.startswith("Successfully built "):
                self.held.append(event.stream)  # the image ID goes before these
            else:
                await self.write({"stream": event.stream})
        elif kind == "run_failed":
            self.exit_code = event.run_failed.exit_code
        elif kind == "image_id":
            if self.quiet:
                await self.write({"stream": event.image_id + "\n"})
                return
            if self.aux:
                await self.write({"aux": {"ID": event.image_id}})
            for text in self.held:
                await self.write({"stream": text})
            self.held.clear()

    async def failed(self, exc: MuelleError) -> None:
        for text in self.held:
            await self.write({"stream": text})
        if not self.started:
            raise exc
        detail: dict[str, Any] = {"message": exc.message}
        if self.exit_code:
            detail = {"code": self.exit_code, "message": exc.message}
        await self.write({"errorDetail": detail, "error": exc.message})


async def build(gateway: Gateway, req: Request, out: Responder) -> None:
    options = build_options(req)
    quiet = req.flag("q")
    registry_config(req.headers.get("x-registry-config", ""))
    relay = _Relay(out, quiet, _wants_aux(req.api_version))
    call = gateway.bidi("Build")
    try:
        await call.send(engine_pb2.BuildRequest(options=options))
        await send_body(call, req, lambda data: engine_pb2.BuildRequest(context=data))

        async def events() -> None:
            try:
                async for event in call:
                    await relay.event(event)
            except MuelleError as exc:
                await relay.failed(exc)

        # The client hanging up (Ctrl-C) cancels the build, as with dockerd: the gateway
        # then stops the step and removes its container.
        await while_connected(out, events())
        if not relay.started:
            await out.start_stream(200, "application/json")
        await out.end()
    finally:
        call.cancel()


async def prune(gateway: Gateway, req: Request, out: Responder) -> None:
    """``POST /build/prune?all=1`` (`docker builder prune`): the build cache's steps and
    their images; filters and keep-storage are refused (the cache has no ages or sizes to
    choose by)."""
    if req.arg("filters") not in ("", "{}", "null") or req.integer("keep-storage", 0):
        raise bad_request("builder prune with filters or keep-storage is not supported by "
                          "muelle")
    reply = await gateway.call("PruneBuildCache",
                               engine_pb2.PruneBuildCacheRequest(all=req.flag("all")))
    await out.json(200, {"CachesDeleted": list(reply.deleted) or None,
                         "SpaceReclaimed": reply.space_reclaimed})
