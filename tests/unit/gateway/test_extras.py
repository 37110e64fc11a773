"""The gateway's checks of --add-host, --ulimit, --shm-size, --device, --oom-score-adj, and
what it hands the shim."""

from __future__ import annotations

import pytest
from muelle.engine.v1 import engine_pb2
from muelle.shim.v1 import shim_pb2
from muelle.types.v1 import types_pb2

from services.gateway import extras, options
from vocab.errors import InvalidArgument


def req(**kw: object) -> engine_pb2.CreateContainerRequest:
    return engine_pb2.CreateContainerRequest(image="busybox", **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("bad", "message"), [
    (req(extra_hosts=["db"]), "invalid --add-host 'db': bad format for add-host"),
    (req(extra_hosts=["db:999.1.1.1"]), "invalid IP address in add-host"),
    (req(extra_hosts=["db:1.2.3.4"], network_mode="container:web"),
     "conflicting options: custom host-to-IP mapping and the network mode"),
    (req(ulimits=[types_pb2.Ulimit(name="files", soft=1, hard=1)]),
     "invalid --ulimit files=1:1: invalid ulimit type: files"),
    (req(ulimits=[types_pb2.Ulimit(name="nofile", soft=20, hard=10)]),
     "soft limit must be less than or equal to hard limit: 20 > 10"),
    (req(shm_size=-1), "invalid --shm-size: SHM size can not be less than 0"),
    (req(devices=[types_pb2.DeviceMapping(path_on_host="")]), "invalid --device"),
    (req(devices=[types_pb2.DeviceMapping(path_on_host="/dev/null",
                                          path_in_container="x")]),
     "x is not an absolute path"),
    (req(devices=[types_pb2.DeviceMapping(path_on_host="/dev/null",
                                          cgroup_permissions="rwx")]),
     "bad mode specified: rwx"),
    (req(oom_score_adj=-1001), "range for oom score adj is [-1000, 1000]"),
])
def test_bad_values_are_refused_naming_the_flag(bad: engine_pb2.CreateContainerRequest,
                                                message: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        options.check_request(bad)
    assert message in str(err.value)


def test_the_shim_gets_them_with_docker_defaults() -> None:
    spec = shim_pb2.ContainerSpec()
    extras.to_spec(req(
        extra_hosts=["db: 10.0.0.2", "gw:host-gateway"],
        ulimits=[types_pb2.Ulimit(name="nofile", soft=1024, hard=2048)],
        shm_size=1 << 20, oom_score_adj=-5,
        devices=[types_pb2.DeviceMapping(path_on_host="/dev/null")]), spec)
    assert list(spec.extra_hosts) == ["db:10.0.0.2", "gw:host-gateway"]
    assert list(spec.ulimits) == [types_pb2.Ulimit(name="nofile", soft=1024, hard=2048)]
    assert (spec.shm_size, spec.oom_score_adj) == (1 << 20, -5)
    assert list(spec.devices) == [types_pb2.DeviceMapping(
        path_on_host="/dev/null", path_in_container="/dev/null", cgroup_permissions="rwm")]
