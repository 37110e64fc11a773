"""`volume create/ls/inspect/rm/prune`: the shim keeps the volumes; this relays them (the
volume messages are types.v1's on both sides: the replies pass through as they come)."""

from __future__ import annotations

from muelle.engine.v1 import engine_pb2
from muelle.shim.v1 import shim_pb2
from muelle.types.v1 import types_pb2

# the neighbours' generated stubs, as connect() returns them (typing only)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from muelle.shim.v1 import shim_pb2_grpc


class Volumes:
    def __init__(self, shim: shim_pb2_grpc.ShimStub) -> None:
        self.shim = shim

    def create(self, name: str, labels: dict[str, str]) -> types_pb2.Volume:
        volume: types_pb2.Volume = self.shim.CreateVolume(
            types_pb2.VolumeCreateRequest(name=name, labels=labels))
        return volume

    def inspect(self, name: str) -> types_pb2.Volume:
        volume: types_pb2.Volume = self.shim.InspectVolume(
            types_pb2.VolumeInspectRequest(name=name))
        return volume

    def list(self) -> types_pb2.VolumeListResponse:
        reply: types_pb2.VolumeListResponse = self.shim.ListVolumes(shim_pb2.VolumeListRequest())
        return reply

    def remove(self, name: str, force: bool) -> engine_pb2.VolumeRemoveResponse:
        self.shim.RemoveVolume(types_pb2.VolumeRemoveRequest(name=name, force=force))
        return engine_pb2.VolumeRemoveResponse()

    def prune(self, all: bool) -> types_pb2.VolumePruneResponse:
        reply: types_pb2.VolumePruneResponse = self.shim.PruneVolumes(
            types_pb2.VolumePruneRequest(all=all))
        return reply
