"""The gateway hands the shim every mount, and rm -v / --rm remove anonymous volumes."""

from __future__ import annotations

import pytest

from services.gateway.engine import Engine
from tests.unit.gateway.fakes import FakeImages, FakeShim
from tests.unit.gateway.test_engine import engine, eventually, images, req, runtime  # noqa: F401
from vocab.errors import InvalidArgument


def test_mounts_reach_the_shim_and_rm_v(engine: Engine, images: FakeImages,  # noqa: F811
                                        runtime: FakeShim) -> None:  # noqa: F811
    images.images["busybox"].config.volumes.append("/var/lib/db")
    cid = engine.create(req(cmd=["true"], binds=["data:/data:ro", "/host:/h"],
                            tmpfs={"/run": "size=1m"})).id
    mounts = list(runtime.containers[cid]["spec"].volume_mounts)
    assert [(m.type, m.source, m.target, m.readonly) for m in mounts] == [
        ("volume", "data", "/data", True), ("bind", "/host", "/h", False),
        ("tmpfs", "", "/run", False), ("volume", "", "/var/lib/db", False)]
    engine.remove(cid, remove_volumes=True)
    assert runtime.removed_volumes_of == [cid]


def test_auto_remove_takes_anonymous_volumes(engine: Engine,  # noqa: F811
                                             runtime: FakeShim) -> None:  # noqa: F811
    cid = engine.create(req(cmd=["true"], binds=["/scratch"], auto_remove=True)).id
    engine.start(cid)
    runtime.exit(cid, 0)
    eventually(lambda: runtime.removed_volumes_of == [cid])


def test_bad_bind_changes_nothing(engine: Engine, runtime: FakeShim,  # noqa: F811
                                  images: FakeImages) -> None:  # noqa: F811
    with pytest.raises(InvalidArgument, match="invalid volume specification"):
        engine.create(req(cmd=["true"], binds=["a:b:c:d"]))
    assert not runtime.containers and not images.rootfs
    assert not engine.list(all=True).containers
