"""The CRI ImageService over engine.v1's images."""

from __future__ import annotations

import base64
import contextlib
import time

from k8s.cri.v1 import api_pb2
from muelle.engine.v1 import engine_pb2, engine_pb2_grpc
from muelle.types.v1 import types_pb2

from services.cri import verbose
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


def pull_credentials(auth: api_pb2.AuthConfig) -> types_pb2.RegistryCredentials | None:
    """engine.v1's per-pull credentials of a CRI AuthConfig (the kubelet's image pull
    secret): used for this pull only, never stored. ``auth`` is base64 of
    "user:password" (a docker config.json entry); a registry token goes to the registry
    as it is. An identity token (an OAuth refresh token to trade at the token server) is
    not supported."""
    if auth.identity_token:
        raise Unimplemented("pulling with an identity token is not supported by muelle-cri "
                            "(use a user name and password, or a registry token)")
    username, password = auth.username, auth.password
    if auth.auth:
        try:
            username, sep, password = base64.b64decode(auth.auth, validate=True) \
                .decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            sep = ""
        if not sep:
            raise InvalidArgument("auth config: 'auth' is not base64 of user:password")
    if not (username or password or auth.registry_token):
        return None
    if password and not username:
        raise InvalidArgument("auth config: a password needs a user name")
    return types_pb2.RegistryCredentials(server=auth.server_address, username=username,
                                         password=password,
                                         registry_token=auth.registry_token)


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

    def status(self, spec: api_pb2.ImageSpec, verbose_info: bool = False
               ) -> api_pb2.ImageStatusResponse:
        """CRI: an image that is not there is an empty answer, not an error."""
        detail = self._inspect(spec.image)
        if detail is None:
            return api_pb2.ImageStatusResponse()
        info = verbose.image_info(detail) if verbose_info else {}
        return api_pb2.ImageStatusResponse(image=to_image(detail), info=info)

    def pull(self, spec: api_pb2.ImageSpec, auth: api_pb2.AuthConfig) -> str:
        if not spec.image:
            raise InvalidArgument("an image is required")
        req = types_pb2.PullRequest(reference=spec.image)
        credentials = pull_credentials(auth)
        if credentials is not None:
            req.credentials.CopyFrom(credentials)
        for _ in self.engine.PullImage(req):
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
            self.engine.RemoveImage(types_pb2.RemoveImageRequest(
                reference=detail.summary.id, force=True))

    def fs_info(self) -> api_pb2.ImageFsInfoResponse:
        df = self.engine.SystemDf(engine_pb2.SystemDfRequest())
        used = sum(s.size for s in df.summary if s.type == "Images")
        usage = api_pb2.FilesystemUsage(
            timestamp=time.time_ns(),
            fs_id=api_pb2.FilesystemIdentifier(mountpoint=self.store_dir),
            used_bytes=api_pb2.UInt64Value(value=max(0, used)))
        return api_pb2.ImageFsInfoResponse(image_filesystems=[usage])
