"""In-process fakes of the image store and the shim, with the generated stubs' interface."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

from muelle.images.v1 import images_pb2
from muelle.shim.v1 import shim_pb2
from muelle.types.v1 import types_pb2

from services.gateway.status import now_rfc3339
from vocab.errors import (
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    MuelleError,
    NotFound,
)

IMAGE_ID = "sha256:" + "f" * 64


def busybox_image(entrypoint: list[str] | None = None,
                  cmd: list[str] | None = None) -> images_pb2.Image:
    config = types_pb2.ImageConfig(env=["PATH=/bin"], working_dir="")
    if cmd is not None:
        config.cmd.SetInParent()
        config.cmd.values.extend(cmd)
    if entrypoint is not None:
        config.entrypoint.SetInParent()
        config.entrypoint.values.extend(entrypoint)
    return images_pb2.Image(id=IMAGE_ID, repo_tags=["docker.io/library/busybox:latest"],
                            created="2024-01-01T00:00:00Z", size=1234, config=config)


class FakeImages:
    def __init__(self) -> None:
        self.images = {"busybox": busybox_image(cmd=["sh"])}
        self.rootfs: set[str] = set()
        self.calls: list[str] = []
        self.fail_prepare: MuelleError | None = None

    def Get(self, req: images_pb2.GetImageRequest) -> images_pb2.Image:  # noqa: N802
        self.calls.append("Get")
        for key, img in self.images.items():
            if req.reference in (key, img.id) or req.reference in img.repo_tags:
                return img
        raise NotFound(f"image {req.reference} not found")

    def List(self, req: Any) -> images_pb2.ListImagesResponse:  # noqa: N802
        return images_pb2.ListImagesResponse(images=list(self.images.values()))

    def Remove(self, req: types_pb2.RemoveImageRequest) -> types_pb2.RemoveImageResponse:  # noqa: N802
        self.calls.append("Remove")
        img = self.Get(images_pb2.GetImageRequest(reference=req.reference))
        self.images = {k: v for k, v in self.images.items() if v.id != img.id}
        return types_pb2.RemoveImageResponse(untagged=list(img.repo_tags), deleted=[img.id])

    def Pull(self, req: types_pb2.PullRequest) -> Iterator[types_pb2.PullProgress]:  # noqa: N802
        yield types_pb2.PullProgress(status="Pulling from library/busybox")
        yield types_pb2.PullProgress(layer=types_pb2.LayerProgress(
            digest="sha256:" + "a" * 64, phase="Pull complete"))
        yield types_pb2.PullProgress(result=types_pb2.PullResult(
            reference=req.reference, digest="sha256:" + "b" * 64, image_id=IMAGE_ID))

    def PrepareRootfs(self, req: images_pb2.PrepareRootfsRequest  # noqa: N802
                      ) -> images_pb2.PrepareRootfsResponse:
        self.calls.append("PrepareRootfs")
        if self.fail_prepare:
            raise self.fail_prepare
        if req.container_id in self.rootfs:
            raise AlreadyExists("rootfs exists")
        self.rootfs.add(req.container_id)
        return images_pb2.PrepareRootfsResponse(
            mounts=[types_pb2.Mount(type="overlay", source="overlay",
                                    options=[f"upperdir=/u/{req.container_id}"])],
            image_id=IMAGE_ID)

    def Check(self, req: Any) -> images_pb2.CheckResponse:  # noqa: N802
        return images_pb2.CheckResponse(containers=len(self.rootfs),
                                        container_ids=sorted(self.rootfs))

    def RemoveRootfs(self, req: images_pb2.RemoveRootfsRequest) -> Any:  # noqa: N802
        self.calls.append("RemoveRootfs")
        self.rootfs.discard(req.container_id)
        return images_pb2.RemoveRootfsResponse()


class FakeStream(Iterator[Any]):
    def __init__(self, gen: Iterator[Any], on_cancel: Callable[[], None]) -> None:
        self._gen = gen
        self._on_cancel = on_cancel
        self.cancelled = False

    def __next__(self) -> Any:
        return next(self._gen)

    def cancel(self) -> None:
        self.cancelled = True
        self._on_cancel()


class FakeShim:
    """Containers as dicts; output and exits are driven by the test (emit / exit)."""

    def __init__(self) -> None:
        self.containers: dict[str, dict[str, Any]] = {}
        self.calls: list[str] = []
        self.cond = threading.Condition()
        self.fail_create: MuelleError | None = None
        self.fail_start: MuelleError | None = None
        # Called after Start; a test uses it to make the container print and exit.
        self.on_start: Callable[[str], None] | None = None
        # Containers deleted with remove_volumes (rm -v, --rm).
        self.removed_volumes_of: list[str] = []
        # Act as a shim from before StartRequest.unless_running and DeleteResponse.status.
        self.old = False

    # -- test controls
    def emit(self, cid: str, data: bytes, stream: str = "stdout") -> None:
        with self.cond:
            self.containers[cid]["logs"].append(
                types_pb2.LogEntry(stream=stream, data=data, time=now_rfc3339()))
            self.cond.notify_all()

    def exit(self, cid: str, code: int) -> None:
        with self.cond:
            c = self.containers[cid]
            c.update(status="stopped", exit_code=code, finished_at=now_rfc3339(), pid=0)
            self.cond.notify_all()

    # -- the Runtime interface
    def Create(self, req: shim_pb2.CreateRequest) -> shim_pb2.CreateResponse:  # noqa: N802
        self.calls.append("Create")
        if self.fail_create:
            raise self.fail_create
        if req.id in self.containers:
            raise AlreadyExists("exists")
        self.containers[req.id] = {
            "status": "created", "spec": req.spec, "rootfs": list(req.rootfs),
            "runtime": req.runtime or "muelle", "exit_code": 0, "started_at": "",
            "finished_at": "", "pid": 0, "logs": []}
        return shim_pb2.CreateResponse(bundle=f"/bundles/{req.id}")

    def _get(self, cid: str) -> dict[str, Any]:
        if cid not in self.containers:
            raise NotFound(f"no such container: {cid}")
        return self.containers[cid]

    def Start(self, req: shim_pb2.StartRequest) -> shim_pb2.StartResponse:  # noqa: N802
        self.calls.append("Start")
        if self.fail_start:
            raise self.fail_start
        with self.cond:
            c = self._get(req.id)
            if c["status"] == "running" and req.unless_running and not self.old:
                return shim_pb2.StartResponse(was_running=True)
            if c["status"] == "running":
                raise FailedPrecondition("already running")
            c.update(status="running", started_at=now_rfc3339(), pid=4242, finished_at="")
            self.cond.notify_all()
        if self.on_start:
            self.on_start(req.id)
        return shim_pb2.StartResponse(pid=4242)

    def Pause(self, req: shim_pb2.PauseRequest) -> Any:  # noqa: N802
        self.calls.append("Pause")
        self._get(req.id)["status"] = "paused"
        return shim_pb2.PauseResponse()

    def Resume(self, req: shim_pb2.ResumeRequest) -> Any:  # noqa: N802
        self.calls.append("Resume")
        c = self._get(req.id)
        if c["status"] != "paused":
            raise FailedPrecondition(f"container {req.id} is not paused")
        c["status"] = "running"
        return shim_pb2.ResumeResponse()

    def Kill(self, req: shim_pb2.KillRequest) -> Any:  # noqa: N802
        self.calls.append(f"Kill {req.signal}")
        if self._get(req.id)["status"] != "running":
            raise FailedPrecondition("not running")
        self.exit(req.id, 137)
        return shim_pb2.KillResponse()

    def Stop(self, req: shim_pb2.StopRequest) -> shim_pb2.ContainerStatus:  # noqa: N802
        self.calls.append(f"Stop {req.signal} {req.timeout}")
        if self._get(req.id)["status"] != "created":  # the shim leaves a created one so
            self.exit(req.id, 143)
        return self._status(req.id)

    def Wait(self, req: shim_pb2.WaitRequest,  # noqa: N802
             timeout: float | None = None) -> shim_pb2.ContainerStatus:
        self.calls.append("Wait")
        with self.cond:
            self._get(req.id)
            done = self.cond.wait_for(lambda: req.id not in self.containers
                                      or self.containers[req.id]["status"] == "stopped",
                                      timeout=30 if timeout is None else timeout)
        if not done and timeout is not None:  # as a gRPC deadline would
            raise DeadlineExceeded("Deadline Exceeded")
        return self._status(req.id)

    def State(self, req: shim_pb2.StateRequest) -> shim_pb2.ContainerStatus:  # noqa: N802
        self.calls.append("State")
        return self._status(req.id)

    def _status(self, cid: str) -> shim_pb2.ContainerStatus:
        c = self._get(cid)
        return shim_pb2.ContainerStatus(
            id=cid, status=c["status"], pid=c["pid"], exit_code=c["exit_code"],
            started_at=c["started_at"], finished_at=c["finished_at"], runtime=c["runtime"],
            bundle=f"/bundles/{cid}", **c.get("listed", {}))  # a test's networks, ports...

    def List(self, req: Any) -> shim_pb2.ListResponse:  # noqa: N802
        return shim_pb2.ListResponse(containers=[
            self._status(cid) for cid in list(self.containers)])

    def Delete(self, req: shim_pb2.DeleteRequest) -> Any:  # noqa: N802
        self.calls.append(f"Delete force={req.force}")
        if req.remove_volumes:
            self.removed_volumes_of.append(req.id)
        with self.cond:
            c = self._get(req.id)
            if c["status"] == "running" and not req.force:
                raise FailedPrecondition("container is running")
            if c["status"] == "running":
                self.exit(req.id, 137)
            last = self._status(req.id)
            del self.containers[req.id]
            self.cond.notify_all()
        return shim_pb2.DeleteResponse() if self.old else shim_pb2.DeleteResponse(status=last)

    def Logs(self, req: shim_pb2.LogsRequest) -> FakeStream:  # noqa: N802
        self.calls.append("Logs")
        c = self._get(req.id)
        stop = threading.Event()

        def gen() -> Iterator[types_pb2.LogEntry]:
            i = 0
            while not stop.is_set():
                with self.cond:
                    seen = i
                    self.cond.wait_for(lambda: len(c["logs"]) > seen  # noqa: B023
                                       or c["status"] == "stopped" or stop.is_set(),
                                       timeout=30)
                    pending = c["logs"][i:]
                    done = c["status"] == "stopped"
                i += len(pending)
                for entry in pending:
                    if not req.since or entry.time >= req.since:
                        yield entry
                if done or not req.follow:
                    return

        def cancel() -> None:
            stop.set()
            with self.cond:
                self.cond.notify_all()

        return FakeStream(gen(), cancel)
