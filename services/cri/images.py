"""The CRI ImageService over engine.v1's images."""

from __future__ import annotations

import contextlib
import time

from k8s.cri.v1 import api_pb2
from muelle.engine.v1 import engine_pb2, engine_pb2_grpc

from vocab.errors import InvalidArgument, NotFound, Unimplemented


def to_image(detail: engine_pb2.ImageDetail) -> api_pb2.Image:
    s = detail.summary
    image = api_pb2.Image(id=s.id, repo_tags=s.repo_tags, repo_digests=s.repo_digests,
                          size=max(0, s.size), spec=api_pb2.ImageSpec(image=s.id))
    user = detail.config.user.split(":", 1)[0]
    if user.isdigit():
        image.uid.CopyFrom(api_pb2.Int64Value(value=int(user)))
    elif user:
        image.username = user
    return image


class Images:
    def __init__(self, engine: engine_pb2_grpc.EngineStub, store_dir: str) -> None:
        self.engine = engine
        self.store_dir = store_dir  # the image store's directory, on the shim's host

    def _inspect(self, ref: str) -> engine_pb2.ImageDetail | None:
        if not ref:
            raise InvalidArgument("an image is required")
        try:
            return self.engine.InspectImage(engine_pb2.InspectImageRequest(reference=ref))
        except NotFound:
            return None

    def select(self, flt: api_pb2.ImageFilter) -> list[api_pb2.Image]:
        if flt.image.image:
            detail = self._inspect(flt.image.image)
            return [to_image(detail)] if detail else []
        out = []
        for s in self.engine.ListImages(engine_pb2.ListImagesRequest()).images:
            detail = self._inspect(s.id)  # the user of the image is in its config
            if detail is not None:
                out.append(to_image(detail))
        return out

    def status(self, spec: api_pb2.ImageSpec) -> api_pb2.ImageStatusResponse:
        """CRI: an image that is not there is an empty answer, not an error."""
        detail = self._inspect(spec.image)
        if detail is None:
            return api_pb2.ImageStatusResponse()
        return api_pb2.ImageStatusResponse(image=to_image(detail))

    def pull(self, spec: api_pb2.ImageSpec, auth: api_pb2.AuthConfig) -> str:
        if auth.username or auth.password or auth.auth or auth.identity_token \
                or auth.registry_token:
            # engine.v1 takes credentials only through Login, which stores them for every
            # later pull: per-pull credentials need an addition to PullImageRequest.
            raise Unimplemented("pulling with credentials is not supported by muelle-cri yet")
        if not spec.image:
            raise InvalidArgument("an image is required")
        for _ in self.engine.PullImage(engine_pb2.PullImageRequest(reference=spec.image)):
            pass
        detail = self._inspect(spec.image)
        if detail is None:
            raise NotFound(f"image {spec.image!r} not found after its pull")
        return detail.summary.id

    def remove(self, spec: api_pb2.ImageSpec) -> None:
        """Idempotent: removing an image that is not there is no error (CRI)."""
        detail = self._inspect(spec.image)
        if detail is None:
            return
        # By ID, forced: every name of the image goes (containerd's CRI does the same), as
        # the kubelet's image garbage collection expects.
        with contextlib.suppress(NotFound):  # removed meanwhile
            self.engine.RemoveImage(engine_pb2.RemoveImageRequest(
                reference=detail.summary.id, force=True))

    def fs_info(self) -> api_pb2.ImageFsInfoResponse:
        df = self.engine.SystemDf(engine_pb2.SystemDfRequest())
        used = sum(s.size for s in df.summary if s.type == "Images")
        usage = api_pb2.FilesystemUsage(
            timestamp=time.time_ns(),
            fs_id=api_pb2.FilesystemIdentifier(mountpoint=self.store_dir),
            used_bytes=api_pb2.UInt64Value(value=max(0, used)))
        return api_pb2.ImageFsInfoResponse(image_filesystems=[usage])
