"""The Docker JSON <-> engine.v1 translations of the Docker API, without a server."""

from __future__ import annotations

import json
from typing import Any

import pytest
from muelle.engine.v1 import engine_pb2
from muelle.types.v1 import types_pb2

from services.dockerapi import container_json, filters, pull
from services.dockerapi.create import create_request
from services.dockerapi.errors import ApiError
from services.dockerapi.http import Request
from services.dockerapi.routes import strip_version
from services.dockerapi.streams import encode, frame

# What docker CLI 20.10 sends for `docker run -d -p 8080:80 --restart on-failure:3 -m 64m
# --cpus 0.5 -v /data:/data:ro --mount type=tmpfs,dst=/scratch --tmpfs /run:size=1m
# --init --read-only --cap-add NET_ADMIN --network app --network-alias web IMAGE sh`
# (zero-valued fields as the CLI sends them).
CLI_BODY: dict[str, Any] = {
    "Hostname": "", "User": "", "Env": ["A=1"], "Cmd": ["sh"], "Image": "busybox",
    "Entrypoint": None, "Labels": {"k": "v"}, "Tty": False, "OpenStdin": False,
    "ExposedPorts": {"80/tcp": {}}, "StopTimeout": 5,
    "HostConfig": {
        "Binds": ["/data:/data:ro"], "NetworkMode": "app",
        "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]},
        "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3},
        "AutoRemove": False, "CapAdd": ["NET_ADMIN"], "CapDrop": None, "Dns": [],
        "DnsOptions": [], "DnsSearch": [], "ExtraHosts": None, "IpcMode": "", "PidMode": "",
        "Privileged": False, "ReadonlyRootfs": True, "SecurityOpt": None,
        "Tmpfs": {"/run": "size=1m"}, "UTSMode": "", "ShmSize": 0, "ConsoleSize": [0, 0],
        "Isolation": "", "Memory": 67108864, "NanoCpus": 500000000, "MemorySwappiness": -1,
        "OomKillDisable": False, "PidsLimit": None, "Devices": [], "Ulimits": None,
        "Init": True, "LogConfig": {"Type": "", "Config": {}}, "CgroupnsMode": "",
        "Mounts": [{"Type": "tmpfs", "Target": "/scratch"}],
    },
    "NetworkingConfig": {"EndpointsConfig": {"app": {"Aliases": ["web"]}}},
}


def test_create_maps_what_the_cli_sends() -> None:
    r = create_request(json.loads(json.dumps(CLI_BODY)), "c1")
    assert (r.name, r.image, list(r.cmd.values), r.HasField("entrypoint")) == \
        ("c1", "busybox", ["sh"], False)
    assert r.restart_policy == "on-failure:3" and r.stop_timeout == 5
    assert list(r.ports) == [types_pb2.NetworkPort(container_port=80, protocol="tcp",
                                                   host_port=8080)]
    assert (r.memory, r.nano_cpus, r.init, r.read_only) == (64 << 20, 500_000_000, True, True)
    assert list(r.binds) == ["/data:/data:ro"] and dict(r.tmpfs) == {"/run": "size=1m"}
    assert r.mounts[0].type == "tmpfs" and r.mounts[0].target == "/scratch"
    assert (r.network_mode, list(r.network_aliases)) == ("app", ["web"])
    assert list(r.cap_add) == ["NET_ADMIN"] and dict(r.labels) == {"k": "v"}


@pytest.mark.parametrize(("host", "text"), [
    ({"DeviceRequests": [{"Count": -1}]}, "HostConfig.DeviceRequests"),
    ({"BlkioWeight": 300}, "HostConfig.BlkioWeight"),
    ({"MemorySwappiness": "x"}, "MemorySwappiness must be an integer"),
    ({"Links": [1]}, "Links must be a list of strings"),
    ({"Ulimits": [{"Name": "nofile", "Soft": "1"}]}, "Soft must be an integer"),
    ({"Devices": "/dev/null"}, "Devices must be a list"),
    ({"OomScoreAdj": 1 << 40}, "OomScoreAdj 1099511627776 is out of range"),
    ({"Memory": 1 << 70}, "Memory 1180591620717411303424 is out of range"),
    ({"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 1 << 40}},
     "MaximumRetryCount 1099511627776 is out of range"),
    ({"LogConfig": {"Type": "syslog"}}, "log driver 'syslog'"),
    ({"PortBindings": {"80/tcp": [{"HostPort": "8000-8010"}]}}, "host port range"),
    ({"Mounts": [{"Type": "npipe", "Target": "/x"}]}, "mount type 'npipe'"),
    ({"Memory": "64m"}, "Memory must be an integer"),
])
def test_create_refuses_what_the_engine_cannot_do_by_name(host: dict[str, Any],
                                                          text: str) -> None:
    with pytest.raises(ApiError) as err:
        create_request({"Image": "busybox", "HostConfig": host}, "")
    assert err.value.status == 400 and text in err.value.message


def test_create_maps_namespaces_dns_sysctls_and_system_paths() -> None:
    r = create_request({"Image": "b", "HostConfig": {
        "PidMode": "host", "IpcMode": "container:db", "UTSMode": "host",
        "Dns": ["10.0.0.53"], "DnsSearch": ["example.com"], "DnsOptions": ["ndots:2"],
        "Sysctls": {"net.ipv4.ip_forward": "1"}, "CgroupParent": "/pods",
        "MaskedPaths": [], "ReadonlyPaths": None}}, "")
    assert (r.pid_mode, r.ipc_mode, r.uts_mode) == ("host", "container:db", "host")
    assert (list(r.dns), list(r.dns_search), list(r.dns_options)) == (
        ["10.0.0.53"], ["example.com"], ["ndots:2"])
    assert dict(r.sysctls) == {"net.ipv4.ip_forward": "1"} and r.cgroup_parent == "/pods"
    # [] (systempaths=unconfined) replaces the defaults; null keeps them
    assert r.HasField("masked_paths") and not r.masked_paths.values
    assert not r.HasField("readonly_paths")


def test_create_maps_hosts_ulimits_shm_devices_and_oom_score() -> None:
    # docker run --add-host db:10.0.0.2 --ulimit nofile=1024:2048 --shm-size 128m
    # --device /dev/null:/dev/mynull --oom-score-adj 300, as the CLI sends them
    r = create_request({"Image": "b", "HostConfig": {
        "ExtraHosts": ["db:10.0.0.2"],
        "Ulimits": [{"Name": "nofile", "Hard": 2048, "Soft": 1024}], "ShmSize": 128 << 20,
        "Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/mynull",
                     "CgroupPermissions": "rwm"}, {"PathOnHost": "/dev/zero"}],
        "OomScoreAdj": 300}}, "")
    assert list(r.extra_hosts) == ["db:10.0.0.2"]
    assert list(r.ulimits) == [types_pb2.Ulimit(name="nofile", soft=1024, hard=2048)]
    assert (r.shm_size, r.oom_score_adj) == (128 << 20, 300)
    assert list(r.devices) == [
        types_pb2.DeviceMapping(path_on_host="/dev/null", path_in_container="/dev/mynull",
                                cgroup_permissions="rwm"),
        types_pb2.DeviceMapping(path_on_host="/dev/zero")]
    doc = container_json.inspect(engine_pb2.ContainerDetail(config=r), None)["HostConfig"]
    assert doc["ExtraHosts"] == ["db:10.0.0.2"] and doc["ShmSize"] == 128 << 20
    assert doc["Ulimits"] == [{"Name": "nofile", "Hard": 2048, "Soft": 1024}]
    assert doc["Devices"][1] == {"PathOnHost": "/dev/zero", "PathInContainer": "/dev/zero",
                                 "CgroupPermissions": "rwm"}
    assert doc["OomScoreAdj"] == 300
    empty = container_json.inspect(engine_pb2.ContainerDetail(), None)["HostConfig"]
    assert (empty["ExtraHosts"], empty["Ulimits"], empty["ShmSize"], empty["Devices"],
            empty["OomScoreAdj"]) == (None, None, 64 << 20, [], 0)  # dockerd's defaults


def test_entrypoint_reset_and_cpu_quota() -> None:
    r = create_request({"Image": "b", "Entrypoint": [], "HostConfig": {
        "CpuQuota": 50000, "CpuPeriod": 100000}}, "")
    assert list(r.entrypoint.values) == [""]  # docker --entrypoint ""
    assert r.nano_cpus == 500_000_000


def test_frames_are_docker_multiplexed_unless_tty() -> None:
    assert frame("stdout", b"hi\n") == b"\x01\x00\x00\x00\x00\x00\x00\x03hi\n"
    assert frame("stderr", b"") == b"\x02\x00\x00\x00\x00\x00\x00\x00"
    assert encode("stderr", b"x", tty=True) == b"x"


@pytest.mark.parametrize(("path", "version", "rest"), [
    ("/_ping", "1.41", "/_ping"), ("/v1.24/containers/json", "1.24", "/containers/json"),
    ("/v1.41/images/127.0.0.1:5000/x:1/json", "1.41", "/images/127.0.0.1:5000/x:1/json"),
])
def test_version_prefixes(path: str, version: str, rest: str) -> None:
    req = Request("GET", path, {}, {}, b"")
    strip_version(req)
    assert (req.api_version, req.path) == (version, rest)


def test_booleans_as_the_cli_and_docker_py_send_them() -> None:
    req = Request("DELETE", "/containers/x", {"force": ["True"], "v": ["False"],
                                              "link": ["0"], "all": ["1"]}, {}, b"")
    assert (req.flag("force"), req.flag("v"), req.flag("link"), req.flag("all")) == \
        (True, False, False, True)


def test_inspect_ports_list_both_families_and_exposed_nulls() -> None:
    ports = [types_pb2.NetworkPort(container_port=80, protocol="tcp", host_port=32773)]
    assert container_json.ports_map(ports, ["443/tcp"]) == {
        "443/tcp": None,
        "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "32773"},
                   {"HostIp": "::", "HostPort": "32773"}]}


def test_inspect_shape_of_a_created_container() -> None:
    d = engine_pb2.ContainerDetail(
        id="c" * 64, name="web", args=["sleep", "5"], image="busybox",
        state=engine_pb2.ContainerState(status="created"),
        config=engine_pb2.CreateContainerRequest(image="busybox", tty=True))
    doc = container_json.inspect(d, None)
    assert doc["Name"] == "/web" and doc["Path"] == "sleep" and doc["Args"] == ["5"]
    assert doc["State"]["StartedAt"] == "0001-01-01T00:00:00Z"
    assert doc["Config"]["Tty"] is True and doc["Config"]["Cmd"] is None
    assert doc["HostConfig"]["NetworkMode"] == "default"


def test_filters_accept_both_forms_and_refuse_unknown_names() -> None:
    assert filters.parse('{"label":{"a=b":true}}', ["label"]) == {"label": ["a=b"]}
    assert filters.labels_match({"a": "b", "c": "d"}, ["a=b", "c"])
    assert not filters.labels_match({"a": "x"}, ["a=b"])
    with pytest.raises(ApiError, match="invalid filter 'nope'"):
        filters.parse('{"nope":["x"]}', ["label"])


def test_pull_progress_lines() -> None:
    assert pull.reference("busybox", "latest") == "busybox:latest"
    assert pull.reference("busybox", "sha256:ab") == "busybox@sha256:ab"
    layer = types_pb2.PullProgress(layer=types_pb2.LayerProgress(
        digest="sha256:" + "a" * 64, phase="Downloading", current=50, total=100))
    line = pull.progress_line(layer, "busybox", "1")
    assert line is not None and line["id"] == "a" * 12
    assert line["progressDetail"] == {"current": 50, "total": 100}
    assert line["progress"].startswith("[" + "=" * 24 + ">")
    first = pull.progress_line(types_pb2.PullProgress(status="Pulling from library/bb"),
                               "bb", "1")
    assert first == {"status": "Pulling from library/bb", "id": "1"}
    assert pull.line({"status": "x"}).endswith(b"}\r\n")
