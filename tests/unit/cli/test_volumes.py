"""`muelle volume ...`, -v/--mount/--tmpfs and rm -v against the fake gateway."""

from __future__ import annotations

import json

import pytest

from clients.cli.mounts import parse_mount, parse_tmpfs
from clients.cli.units import UsageError
from tests.unit.cli.test_render import cli, gateway  # noqa: F401 - the fixture
from vocab import errors

Gateway = tuple  # (FakeEngine, host)


def test_volume_verbs_render_like_docker(gateway: Gateway) -> None:  # noqa: F811
    fake, host = gateway
    assert cli(host, "volume", "create", "-l", "a=b", "data") == (0, "data\n", "")
    assert fake.calls[-1][1].labels == {"a": "b"}
    assert cli(host, "volume", "ls") == (
        0, "DRIVER    VOLUME NAME\nlocal     data\nlocal     zeta\n", "")
    assert cli(host, "volume", "ls", "-q") == (0, "data\nzeta\n", "")
    code, out, err = cli(host, "volume", "inspect", "data", "ghost")
    assert code == 1 and err == "Error: get ghost: no such volume\n"
    assert json.loads(out) == [{
        "CreatedAt": "2024-01-01T00:00:00Z", "Driver": "local", "Labels": {"a": "b"},
        "Mountpoint": "/v/data/_data", "Name": "data", "Options": None, "Scope": "local"}]
    fake.fail["RemoveVolume"] = errors.FailedPrecondition("remove data: volume is in use - [c]")
    code, out, err = cli(host, "volume", "rm", "data")
    assert code == 1 and err == ("Error response from daemon: remove data: volume is in use"
                                 " - [c]\n")
    assert cli(host, "volume", "prune", "-f", "-a") == (
        0, "Deleted Volumes:\nold\n\nTotal reclaimed space: 2.05kB\n", "")
    assert fake.calls[-1][1].all


def test_run_sends_mounts_and_rm_v(gateway: Gateway) -> None:  # noqa: F811
    fake, host = gateway
    code, _, _ = cli(host, "run", "-d", "-v", "data:/data:ro", "-v", "/anon",
                     "--mount", "type=bind,src=/srv,dst=/srv,readonly",
                     "--tmpfs", "/run:size=1m,mode=1777", "busybox")
    assert code == 0
    req = fake.calls[0][1]
    assert list(req.binds) == ["data:/data:ro", "/anon"]
    assert (req.mounts[0].type, req.mounts[0].source, req.mounts[0].target,
            req.mounts[0].readonly) == ("bind", "/srv", "/srv", True)
    assert dict(req.tmpfs) == {"/run": "size=1m,mode=1777"}
    assert cli(host, "rm", "-v", "web")[0] == 0
    assert fake.calls[-1][1].remove_volumes


def test_mount_flag_parsing() -> None:
    m = parse_mount("type=tmpfs,destination=/t,tmpfs-size=2m,tmpfs-mode=700")
    assert (m.type, m.target, m.tmpfs_size, m.tmpfs_mode) == ("tmpfs", "/t", 2 << 20, 0o700)
    m = parse_mount("source=v,target=/v,volume-nocopy,ro=false")
    assert (m.type, m.source, m.no_copy, m.readonly) == ("volume", "v", True, False)
    for bad in ("type=nfs,target=/x", "source=v", "type=bind,target=/x",
                "type=volume,target=/x,color=red", "target=/x,readonly=maybe"):
        with pytest.raises(UsageError):
            parse_mount(bad)
    assert parse_tmpfs(["/a", "/b:size=1k"]) == {"/a": "", "/b": "size=1k"}


def test_bad_mount_flag_is_one_line_exit_125() -> None:
    code, _, err = cli("unix:///nowhere", "run", "--mount", "type=nfs,target=/x", "busybox")
    assert code == 125 and len(err.splitlines()) == 1 and "unsupported mount type" in err
