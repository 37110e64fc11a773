"""Volumes, bind mounts and tmpfs through a real shim, with runc and muelle-runtime."""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from pathlib import Path

import pytest
from muelle.shim.v1 import shim_pb2 as pb

from tests.integration.shim.conftest import RUNTIMES, ShimProcess
from vocab.errors import FailedPrecondition, InvalidArgument, NotFound

pytestmark = pytest.mark.root

VOLUME_RUNTIMES = [r for r in RUNTIMES if r in ("runc", "muelle")]


def vol(target: str, source: str = "", **kw: object) -> pb.VolumeMount:
    return pb.VolumeMount(type="volume", source=source, target=target, **kw)  # type: ignore[arg-type]


def bind(source: str | Path, target: str, **kw: object) -> pb.VolumeMount:
    return pb.VolumeMount(type="bind", source=str(source), target=target, **kw)  # type: ignore[arg-type]


def tree_hash(root: str) -> str:
    """Names, types, sizes, modes and contents of every file under ``root``."""
    h = hashlib.sha256()
    for dirpath, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(dirs + files):
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            h.update(f"{path}\0{st.st_mode}\0{st.st_size}\0".encode())
            if os.path.isfile(path) and not os.path.islink(path) and st.st_size < 1 << 20:
                with contextlib.suppress(OSError):
                    h.update(Path(path).read_bytes())
    return h.hexdigest()


def upper_of(rootfs: list) -> Path:
    opt = next(o for o in rootfs[0].options if o.startswith("upperdir="))
    return Path(opt.split("=", 1)[1])


def run_with(shim: ShimProcess, args: list[str], runtime: str,
             rootfs: list | None = None, **spec: object) -> tuple[str, pb.ContainerStatus]:
    cid = uuid.uuid4().hex + uuid.uuid4().hex
    shim.stub.Create(pb.CreateRequest(
        id=cid, runtime=runtime, rootfs=rootfs or shim.rootfs(),
        spec=pb.ContainerSpec(args=args, **spec)))  # type: ignore[arg-type]
    shim.stub.Start(pb.StartRequest(id=cid))
    return cid, shim.stub.Wait(pb.WaitRequest(id=cid), timeout=60)


@pytest.mark.parametrize("runtime", VOLUME_RUNTIMES)
def test_named_volume_outlives_its_container(shim: ShimProcess, runtime: str) -> None:
    name = f"data-{uuid.uuid4().hex[:8]}"
    cid, st = shim.run(["sh", "-c", "echo kept > /data/f"], runtime=runtime,
                       volume_mounts=[vol("/data", name)])
    assert st.exit_code == 0, shim.output(cid)
    info = shim.stub.InspectVolume(pb.VolumeInspectRequest(name=name))
    assert list(info.containers) == [cid] and not info.anonymous and info.driver == "local"
    assert [m.name for m in shim.stub.State(pb.StateRequest(id=cid)).volume_mounts] == [name]
    with pytest.raises(FailedPrecondition, match="volume is in use"):
        shim.stub.RemoveVolume(pb.VolumeRemoveRequest(name=name))
    shim.stub.Delete(pb.DeleteRequest(id=cid, remove_volumes=True))  # named: kept
    cid2, st2 = shim.run(["cat", "/data/f"], runtime=runtime,
                         volume_mounts=[vol("/data", name, readonly=True)])
    assert shim.output(cid2) == b"kept\n"
    shim.stub.Delete(pb.DeleteRequest(id=cid2))
    assert not shim.stub.InspectVolume(pb.VolumeInspectRequest(name=name)).containers
    shim.stub.RemoveVolume(pb.VolumeRemoveRequest(name=name))
    with pytest.raises(NotFound):
        shim.stub.InspectVolume(pb.VolumeInspectRequest(name=name))


@pytest.mark.parametrize("runtime", VOLUME_RUNTIMES)
def test_readonly_bind_and_tmpfs(shim: ShimProcess, runtime: str) -> None:
    host = shim.dir / "hostdir"
    host.mkdir()
    (host / "hello.txt").write_text("from the host\n")
    script = ("cat /in/hello.txt; touch /in/x 2>/dev/null && echo wrote-ro; "
              "echo rw > /out/f; grep ' /scratch ' /proc/mounts; "
              "touch /rootfile 2>/dev/null && echo wrote-root; "
              "echo ok > /scratch/t && cat /scratch/t")
    cid, st = shim.run(["sh", "-c", script], runtime=runtime, readonly_rootfs=True,
                       volume_mounts=[
                           bind(host, "/in", readonly=True), vol("/out"),
                           pb.VolumeMount(type="tmpfs", target="/scratch",
                                          tmpfs_size=4 * 1024 * 1024, tmpfs_mode=0o1770)])
    out = shim.output(cid).decode()
    assert st.exit_code == 0, out
    assert "from the host" in out
    assert "wrote-ro" not in out and "wrote-root" not in out
    mount_line = next(line for line in out.splitlines() if " /scratch " in line)
    assert mount_line.startswith("tmpfs /scratch tmpfs ") and "size=4096k" in mount_line
    assert "mode=1770" in mount_line
    assert out.rstrip().endswith("ok")
    assert not (host / "x").exists()
    # The anonymous volume goes with the container when asked to.
    anon = [m for m in shim.stub.State(pb.StateRequest(id=cid)).volume_mounts if m.anonymous]
    assert len(anon) == 1 and Path(anon[0].source, "f").read_text() == "rw\n"
    shim.stub.Delete(pb.DeleteRequest(id=cid, remove_volumes=True))
    with pytest.raises(NotFound):
        shim.stub.InspectVolume(pb.VolumeInspectRequest(name=anon[0].name))


@pytest.mark.parametrize("runtime", VOLUME_RUNTIMES)
def test_symlink_to_etc_never_reaches_the_host(shim: ShimProcess, runtime: str) -> None:
    """A destination under a symlink to /etc lands in the rootfs's /etc, not the host's."""
    rootfs = shim.rootfs()
    upper = upper_of(rootfs)
    os.symlink("/etc", upper / "evil")
    os.symlink("../../../../../../../etc", upper / "evil2")
    host_file = shim.dir / "payload"
    host_file.write_text("payload\n")
    marker = f"muelle-pwn-{uuid.uuid4().hex[:8]}"
    before = tree_hash("/etc")
    cid, st = run_with(
        shim, ["sh", "-c", f"cat /etc/{marker}; ls /etc/sub-{marker}; cat /evil/passwd"],
        runtime, rootfs=rootfs,
        volume_mounts=[bind(host_file, f"/evil/{marker}"),
                       vol(f"/evil2/sub-{marker}"), vol("/evil")])
    out = shim.output(cid).decode()
    assert st.exit_code == 0, out
    assert out.startswith("payload\n")
    assert tree_hash("/etc") == before
    assert not os.path.lexists(f"/etc/{marker}") and not os.path.lexists(f"/etc/sub-{marker}")
    # The volume over /evil was filled from the image's /etc, not the host's.
    mounts = shim.stub.State(pb.StateRequest(id=cid)).volume_mounts
    data = Path(next(m.source for m in mounts if m.target == "/evil"))
    assert (data / "passwd").read_text() == (shim.lower / "etc" / "passwd").read_text()
    shim.stub.Delete(pb.DeleteRequest(id=cid, remove_volumes=True))
    assert tree_hash("/etc") == before


def test_bad_mounts_are_refused_and_leave_nothing(shim: ShimProcess) -> None:
    missing = f"/nonexistent-{uuid.uuid4().hex[:8]}"
    with pytest.raises(InvalidArgument, match="bind source path does not exist"):
        shim.create(["true"], volume_mounts=[vol("/a"), bind(missing, "/b")])
    with pytest.raises(InvalidArgument, match="absolute"):
        shim.create(["true"], volume_mounts=[vol("relative")])
    with pytest.raises(InvalidArgument, match="Duplicate mount point"):
        shim.create(["true"], volume_mounts=[vol("/a"), vol("/a/")])
    with pytest.raises(InvalidArgument, match="invalid characters"):
        shim.create(["true"], volume_mounts=[vol("/a", "bad/name")])
    with pytest.raises(InvalidArgument, match="mount type"):
        shim.create(["true"], volume_mounts=[pb.VolumeMount(type="nfs", target="/a")])
    # the anonymous volume of the first failed create is gone again
    assert not shim.stub.ListVolumes(pb.VolumeListRequest()).volumes
    assert not shim.stub.List(pb.ListRequest()).containers


def test_prune_removes_unused_volumes(shim: ShimProcess) -> None:
    named = f"keep-{uuid.uuid4().hex[:8]}"
    used = f"used-{uuid.uuid4().hex[:8]}"
    shim.stub.CreateVolume(pb.VolumeCreateRequest(name=named, labels={"a": "b"}))
    again = shim.stub.CreateVolume(pb.VolumeCreateRequest(name=named))
    assert again.labels == {"a": "b"}
    cid, _ = shim.run(["sh", "-c", "echo x > /v/f; echo y > /w/f"],
                      volume_mounts=[vol("/v"), vol("/w", used)])
    shim.stub.Delete(pb.DeleteRequest(id=cid))  # the anonymous volume stays, unused
    cid2 = shim.create(["true"], volume_mounts=[vol("/w", used)])
    pruned = shim.stub.PruneVolumes(pb.VolumePruneRequest())
    assert len(pruned.volumes) == 1 and len(pruned.volumes[0]) == 64
    assert pruned.space_reclaimed > 0
    names = {v.name for v in shim.stub.ListVolumes(pb.VolumeListRequest()).volumes}
    assert names == {named, used}
    assert list(shim.stub.PruneVolumes(pb.VolumePruneRequest(all=True)).volumes) == [named]
    shim.stub.Delete(pb.DeleteRequest(id=cid2))
    assert list(shim.stub.PruneVolumes(pb.VolumePruneRequest(all=True)).volumes) == [used]


def test_volume_refs_survive_a_shim_restart(shim: ShimProcess) -> None:
    name = f"live-{uuid.uuid4().hex[:8]}"
    cid = shim.create(["true"], volume_mounts=[vol("/data", name)])
    shim.kill9()
    shim.start()
    with pytest.raises(FailedPrecondition, match="volume is in use"):
        shim.stub.RemoveVolume(pb.VolumeRemoveRequest(name=name))
    shim.stub.Delete(pb.DeleteRequest(id=cid))
    shim.stub.RemoveVolume(pb.VolumeRemoveRequest(name=name))
