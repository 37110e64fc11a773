"""-v, --tmpfs, --mount and image VOLUMEs -> the shim's VolumeMounts."""

from __future__ import annotations

import pytest
from muelle.engine.v1 import engine_pb2
from muelle.types.v1 import types_pb2

from services.gateway.mounts import container_mounts, parse_bind, parse_size, parse_tmpfs
from vocab.errors import InvalidArgument


def test_bind_specs() -> None:
    m = parse_bind("/ctr")
    assert (m.type, m.source, m.target) == ("volume", "", "/ctr")
    m = parse_bind("/host:/ctr:ro")
    assert (m.type, m.source, m.target, m.readonly) == ("bind", "/host", "/ctr", True)
    m = parse_bind("data:/ctr:rw,nocopy,z")
    assert (m.type, m.source, m.readonly, m.no_copy) == ("volume", "data", False, True)
    for bad in ("ctr", "a:rel", "a:/b:c:d", ":/b", "/a:/b:bogus", "/a:/b:nocopy"):
        with pytest.raises(InvalidArgument):
            parse_bind(bad)


def test_tmpfs_specs() -> None:
    m = parse_tmpfs("/run", "size=64m,mode=1777,exec,uid=1000")
    assert (m.tmpfs_size, m.tmpfs_mode, list(m.tmpfs_options)) == (
        64 << 20, 0o1777, ["exec", "uid=1000"])
    assert parse_size("512k") == 512 << 10 and parse_size("10") == 10
    with pytest.raises(InvalidArgument):
        parse_tmpfs("/run", "size=lots")
    with pytest.raises(InvalidArgument):
        parse_tmpfs("/run", "mode=9")


def test_image_volumes_become_anonymous_unless_mounted_over() -> None:
    req = engine_pb2.CreateContainerRequest(
        image="x", binds=["data:/data/"], tmpfs={"/tmp": ""},
        mounts=[engine_pb2.VolumeMount(type="bind", source="/srv", target="/srv")])
    image = types_pb2.ImageConfig(volumes=["/data", "/cache", "/tmp"])
    got = [(m.type, m.source, m.target) for m in container_mounts(req, image)]
    assert got == [("volume", "data", "/data/"), ("bind", "/srv", "/srv"),
                   ("tmpfs", "", "/tmp"), ("volume", "", "/cache")]
    with pytest.raises(InvalidArgument, match="must be absolute"):
        container_mounts(engine_pb2.CreateContainerRequest(mounts=[
            engine_pb2.VolumeMount(type="bind", source="rel", target="/x")]), image)
