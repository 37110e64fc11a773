"""`volume create/ls/inspect/rm/prune`: the shim keeps the volumes; this relays them."""

from __future__ import annotations

from muelle.engine.v1 import engine_pb2
from muelle.shim.v1 import shim_pb2

# the neighbours' generated stubs, as connect() returns them (typing only)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from muelle.shim.v1 import shim_pb2_grpc


def _volume(v: shim_pb2.Volume) -> engine_pb2.Volume:
    # Field-for-field the same message in both packages.
    return engine_pb2.Volume.FromString(v.SerializeToString())


class Volumes:
    def __init__(self, shim: shim_pb2_grpc.ShimStub) -> None:
        self.shim = shim

    def create(self, name: str, labels: dict[str, str]) -> engine_pb2.Volume:
        return _volume(self.shim.CreateVolume(
            shim_pb2.VolumeCreateRequest(name=name, labels=labels)))

    def inspect(self, name: str) -> engine_pb2.Volume:
        return _volume(self.shim.InspectVolume(shim_pb2.VolumeInspectRequest(name=name)))

    def list(self) -> engine_pb2.VolumeListResponse:
        reply = self.shim.ListVolumes(shim_pb2.VolumeListRequest())
        return engine_pb2.VolumeListResponse(volumes=[_volume(v) for v in reply.volumes])

    def remove(self, name: str, force: bool) -> engine_pb2.VolumeRemoveResponse:
        self.shim.RemoveVolume(shim_pb2.VolumeRemoveRequest(name=name, force=force))
        return engine_pb2.VolumeRemoveResponse()

    def prune(self, all: bool) -> engine_pb2.VolumePruneResponse:
        reply = self.shim.PruneVolumes(shim_pb2.VolumePruneRequest(all=all))
        return engine_pb2.VolumePruneResponse(volumes=list(reply.volumes),
                                              space_reclaimed=reply.space_reclaimed)
