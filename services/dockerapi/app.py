"""The route table of the Docker API: which endpoint answers which path."""

from __future__ import annotations

from services.dockerapi.archives import Archives
from services.dockerapi.attach import Streams
from services.dockerapi.build import build
from services.dockerapi.build import prune as prune_build_cache
from services.dockerapi.containers import Containers
from services.dockerapi.engine import Gateway
from services.dockerapi.errors import ApiError
from services.dockerapi.events import Events
from services.dockerapi.execs import Execs
from services.dockerapi.http import Request, Responder
from services.dockerapi.images import Images
from services.dockerapi.loads import import_image, load
from services.dockerapi.networks import Networks
from services.dockerapi.pull import pull, push
from services.dockerapi.routes import Router
from services.dockerapi.stats import Stats
from services.dockerapi.system import System
from services.dockerapi.volumes import Volumes


def build_router(gateway: Gateway) -> Router:
    r = Router()
    system = System(gateway)
    containers = Containers(gateway)
    streams = Streams(gateway, containers.detail)
    execs = Execs(gateway, containers.detail)
    images = Images(gateway)
    networks = Networks(gateway)
    volumes = Volumes(gateway)
    stats = Stats(gateway, containers.detail)
    archives = Archives(gateway)
    events = Events(gateway)

    async def pull_image(req: Request, out: Responder) -> None:
        if req.arg("fromSrc"):  # one endpoint, two verbs: docker import
            await import_image(gateway, req, out)
        else:
            await pull(gateway, req, out)

    async def load_image(req: Request, out: Responder) -> None:
        await load(gateway, req, out)

    async def push_image(req: Request, out: Responder) -> None:
        await push(gateway, req, out)

    async def build_image(req: Request, out: Responder) -> None:
        await build(gateway, req, out)

    async def build_prune(req: Request, out: Responder) -> None:
        await prune_build_cache(gateway, req, out)

    async def not_yet(req: Request, out: Responder) -> None:
        raise ApiError(501, f"{req.method} {req.path} is not supported by muelle yet")

    r.add("GET", "/_ping", system.ping)
    r.add("HEAD", "/_ping", system.ping)
    r.add("GET", "/version", system.version)
    r.add("GET", "/info", system.info)
    r.add("GET", "/system/df", system.df)
    r.add("GET", "/events", events.stream)
    r.add("POST", "/auth", system.auth)
    r.add("POST", "/commit", archives.commit)

    r.add("POST", "/containers/create", containers.create)
    r.add("POST", "/containers/prune", containers.prune)
    r.add("GET", "/containers/{id}/export", archives.export)
    r.add("GET", "/containers/{id}/archive", archives.get_path)
    r.add("HEAD", "/containers/{id}/archive", archives.head_path)
    r.add("PUT", "/containers/{id}/archive", archives.put_path)
    r.add("GET", "/containers/json", containers.list)
    r.add("GET", "/containers/{id}/json", containers.inspect)
    r.add("POST", "/containers/{id}/start", containers.start)
    r.add("POST", "/containers/{id}/wait", containers.wait)
    r.add("POST", "/containers/{id}/stop", containers.stop)
    r.add("POST", "/containers/{id}/restart", containers.restart)
    r.add("POST", "/containers/{id}/kill", containers.kill)
    r.add("POST", "/containers/{id}/rename", containers.rename)
    r.add("POST", "/containers/{id}/update", containers.update)
    r.add("GET", "/containers/{id}/changes", containers.changes)
    r.add("POST", "/containers/{id}/pause", containers.pause)
    r.add("POST", "/containers/{id}/unpause", containers.unpause)
    r.add("POST", "/containers/{id}/resize", containers.resize)
    r.add("DELETE", "/containers/{id}", containers.remove)
    r.add("POST", "/containers/{id}/attach", streams.attach)
    r.add("GET", "/containers/{id}/logs", streams.logs)
    r.add("GET", "/containers/{id}/top", stats.top)
    r.add("GET", "/containers/{id}/stats", stats.stats)
    r.add("POST", "/containers/{id}/exec", execs.create)
    r.add("POST", "/exec/{id}/start", execs.start)
    r.add("POST", "/exec/{id}/resize", execs.resize)
    r.add("GET", "/exec/{id}/json", execs.inspect)

    r.add("POST", "/images/create", pull_image)
    r.add("GET", "/images/json", images.list)
    r.add("POST", "/images/prune", images.prune)
    r.add("GET", "/images/get", archives.save)
    r.add("GET", "/images/search", not_yet)
    r.add("POST", "/images/load", load_image)
    r.add("GET", "/images/{name:path}/get", archives.save_one)
    r.add("POST", "/images/{name:path}/push", push_image)
    r.add("GET", "/images/{name:path}/json", images.inspect)
    r.add("GET", "/images/{name:path}/history", images.history)
    r.add("POST", "/images/{name:path}/tag", images.tag)
    r.add("DELETE", "/images/{name:path}", images.remove)

    r.add("GET", "/networks", networks.list)
    r.add("POST", "/networks/create", networks.create)
    r.add("POST", "/networks/prune", networks.prune)
    r.add("GET", "/networks/{id}", networks.inspect)
    r.add("DELETE", "/networks/{id}", networks.remove)
    r.add("POST", "/networks/{id}/connect", networks.connect)
    r.add("POST", "/networks/{id}/disconnect", networks.disconnect)

    r.add("GET", "/volumes", volumes.list)
    r.add("POST", "/volumes/create", volumes.create)
    r.add("POST", "/volumes/prune", volumes.prune)
    r.add("GET", "/volumes/{name}", volumes.inspect)
    r.add("DELETE", "/volumes/{name}", volumes.remove)

    r.add("POST", "/build", build_image)
    r.add("POST", "/build/prune", build_prune)
    return r
