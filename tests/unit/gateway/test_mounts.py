"""-v, --tmpfs, --mount and image VOLUMEs -> the shim's VolumeMounts."""

from __future__ import annotations

import pytest
from muelle.engine.v1 import engine_pb2
from muelle.types.v1 import types_pb2

from services.gateway.mounts import (
    container_mounts,
    inherited,
    parse_bind,
    parse_size,
    parse_tmpfs,
    parse_volumes_from,
)
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
        mounts=[types_pb2.VolumeMount(type="bind", source="/srv", target="/srv")])
    image = types_pb2.ImageConfig(volumes=["/data", "/cache", "/tmp"])
    got = [(m.type, m.source, m.target) for m in container_mounts(req, image)]
    assert got == [("volume", "data", "/data/"), ("bind", "/srv", "/srv"),
                   ("tmpfs", "", "/tmp"), ("volume", "", "/cache")]
    with pytest.raises(InvalidArgument, match="must be absolute"):
        container_mounts(engine_pb2.CreateContainerRequest(mounts=[
            types_pb2.VolumeMount(type="bind", source="rel", target="/x")]), image)


def test_volumes_from_yield_to_user_mounts_and_anonymous_ones_yield_to_them() -> None:
    """dockerd's order: -v NAME/HOST and --mount first, then --volumes-from (a later
    source wins a path), then `-v /path` and image VOLUMEs where nothing is mounted."""
    source = [types_pb2.VolumeMount(type="volume", name="v1", target="/a"),
              types_pb2.VolumeMount(type="bind", source="/h", target="/b", readonly=True),
              types_pb2.VolumeMount(type="volume", name="v2", target="/c"),
              types_pb2.VolumeMount(type="tmpfs", target="/t")]
    shared = inherited(source, "") + inherited(
        [types_pb2.VolumeMount(type="volume", name="v3", target="/c")], "ro")
    req = engine_pb2.CreateContainerRequest(image="x", binds=["mine:/a", "/b", "/d"])
    image = types_pb2.ImageConfig(volumes=["/c", "/e"])
    got = [(m.type, m.source, m.target, m.readonly, m.no_copy)
           for m in container_mounts(req, image, shared)]
    assert got == [("volume", "mine", "/a", False, False), ("bind", "/h", "/b", True, False),
                   ("volume", "v3", "/c", True, True), ("volume", "", "/d", False, False),
                   ("volume", "", "/e", False, False)]


def test_volumes_from_specs() -> None:
    assert parse_volumes_from("web") == ("web", "")
    assert parse_volumes_from("web:ro") == ("web", "ro")
    assert parse_volumes_from("web:z,ro") == ("web", "ro")
    assert parse_volumes_from("web:Z") == ("web", "rw")
    for bad, message in (("", "cannot be an empty string"), ("web:x", "invalid mode: x"),
                         ("web:ro,rw", "invalid mode: ro,rw"),
                         ("web:ro:x", "invalid mode: ro:x")):
        with pytest.raises(InvalidArgument, match=message):
            parse_volumes_from(bad)
