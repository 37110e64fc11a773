"""The CNI side of muelle-cri that needs no root: config files, results, plugin calls
(services/cri/cni.py). The plugins themselves run in tests/e2e/test_cri_cni.py."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from k8s.cri.v1 import api_pb2

from services.cri import cni
from vocab.errors import FailedPrecondition, Internal

CONFLIST = {"cniVersion": "1.0.0", "name": "pods",
            "plugins": [{"type": "bridge", "bridge": "br0"},
                        {"type": "portmap", "capabilities": {"portMappings": True}}]}


def test_the_first_config_in_lexical_order(tmp_path: Path) -> None:
    (tmp_path / "20-b.conflist").write_text(json.dumps(dict(CONFLIST, name="second")))
    (tmp_path / "10-a.conflist").write_text(json.dumps(CONFLIST))
    (tmp_path / "00-notes.txt").write_text("not a config")
    network = cni.load(tmp_path)
    assert (network.name, network.cni_version) == ("pods", "1.0.0")
    assert [p["type"] for p in network.plugins] == ["bridge", "portmap"]
    assert network.source == str(tmp_path / "10-a.conflist")


def test_a_conf_is_a_list_of_one_plugin(tmp_path: Path) -> None:
    (tmp_path / "10-one.conf").write_text(json.dumps(
        {"cniVersion": "0.4.0", "name": "one", "type": "bridge", "bridge": "br1"}))
    network = cni.load(tmp_path)
    assert network.plugins == [{"type": "bridge", "bridge": "br1"}]


@pytest.mark.parametrize(("text", "says"), [
    ("{", "not JSON"),
    ("[]", "not a JSON object"),
    ('{"name": "x", "cniVersion": "1.0.0"}', "neither `plugins` nor `type`"),
    ('{"cniVersion": "1.0.0", "plugins": [{"type": "bridge"}]}', "no network `name`"),
    ('{"name": "x", "plugins": []}', "`plugins` is empty"),
    ('{"name": "x", "plugins": [{"type": "../../bin/sh"}]}', "without a valid `type`"),
    ('{"name": "x", "plugins": [{"bridge": "b"}]}', "without a valid `type`"),
])
def test_bad_configs_say_what_is_wrong(tmp_path: Path, text: str, says: str) -> None:
    (tmp_path / "10-bad.conflist").write_text(text)
    with pytest.raises(FailedPrecondition, match="10-bad.conflist") as info:
        cni.load(tmp_path)
    assert says in str(info.value)


def test_no_config_is_not_ready(tmp_path: Path) -> None:
    c = cni.Cni(tmp_path / "net.d", "/usr/lib/cni", tmp_path, tmp_path)
    ready, why = c.ready()
    assert not ready and "net.d" in why
    (tmp_path / "net.d").mkdir()
    assert "no CNI network config" in c.ready()[1]


def test_addresses_of_results_ipv4_first() -> None:
    result = {"cniVersion": "1.0.0", "ips": [{"address": "fd00::5/64"},
                                             {"address": "10.1.2.3/24", "gateway": "10.1.2.1"}]}
    assert cni.addresses(result) == ["10.1.2.3", "fd00::5"]
    assert cni.addresses({"ip4": {"ip": "10.9.0.4/16"}}) == ["10.9.0.4"]
    assert cni.addresses({"ips": [{"address": "garbage"}]}) == []


def test_port_mappings_and_args_as_containerd_passes_them() -> None:
    config = api_pb2.PodSandboxConfig(metadata=api_pb2.PodSandboxMetadata(
        name="web", namespace="prod", uid="u1"))
    config.port_mappings.extend([
        api_pb2.PortMapping(protocol=api_pb2.UDP, container_port=53, host_port=5353,
                            host_ip="127.0.0.1"),
        api_pb2.PortMapping(protocol=api_pb2.TCP, container_port=80)])  # not published
    assert cni.port_mappings(config) == [
        {"hostPort": 5353, "containerPort": 53, "protocol": "udp", "hostIP": "127.0.0.1"}]
    assert cni.cni_args("abc", config) == (
        "IgnoreUnknown=1;K8S_POD_NAMESPACE=prod;K8S_POD_NAME=web;"
        "K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u1")


def _plugin(bin_dir: Path, name: str, script: str) -> None:
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_plugins_get_the_spec_environment_and_chain_results(tmp_path: Path) -> None:
    bins = tmp_path / "bin"
    bins.mkdir()
    seen = tmp_path / "seen"
    # Records its environment and stdin, answers a result with the address it was told.
    _plugin(bins, "fake", f'env | grep ^CNI_ | sort > {seen}.$CNI_COMMAND.env\n'
            f'cat > {seen}.$CNI_COMMAND.in\n'
            'echo \'{"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.7/24"}]}\'\n')
    network = cni.parse(json.dumps({"cniVersion": "1.0.0", "name": "n", "plugins": [
        {"type": "fake", "capabilities": {"portMappings": True}}]}), "test")
    c = cni.Cni(tmp_path, f"/nonexistent:{bins}", tmp_path / "state", tmp_path / "run")
    record = {"args": "IgnoreUnknown=1", "portMappings": [{"hostPort": 1}]}
    sid = "a" * 64
    result = c._exec("ADD", sid, network, network.plugins[0], "/run/x", record,
                     {"prev": True})
    assert cni.addresses(result) == ["10.0.0.7"]
    env = (tmp_path / "seen.ADD.env").read_text().split()
    assert env == ["CNI_ARGS=IgnoreUnknown=1", "CNI_COMMAND=ADD", f"CNI_CONTAINERID={sid}",
                   "CNI_IFNAME=eth0", "CNI_NETNS=/run/x", f"CNI_PATH=/nonexistent:{bins}"]
    conf = json.loads((tmp_path / "seen.ADD.in").read_text())
    assert conf["name"] == "n" and conf["cniVersion"] == "1.0.0"
    assert conf["prevResult"] == {"prev": True}
    assert conf["runtimeConfig"] == {"portMappings": [{"hostPort": 1}]}


def test_a_failing_plugin_reports_the_spec_error(tmp_path: Path) -> None:
    _plugin(tmp_path, "broken", 'echo \'{"code": 11, "msg": "no addresses left", '
            '"details": "range full"}\'\nexit 1\n')
    network = cni.parse('{"name": "n", "plugins": [{"type": "broken"}]}', "test")
    c = cni.Cni(tmp_path, str(tmp_path), tmp_path, tmp_path)
    with pytest.raises(Internal, match=r"broken ADD failed .*no addresses left \(range full\)"
                                       r" \[code 11\]"):
        c._exec("ADD", "b" * 64, network, network.plugins[0], "", {}, None)
    with pytest.raises(FailedPrecondition, match="'missing' not found"):
        c._exec("ADD", "b" * 64, network, {"type": "missing"}, "", {}, None)


def test_detach_of_unknown_or_malformed_ids_is_a_no_op(tmp_path: Path) -> None:
    c = cni.Cni(tmp_path, str(tmp_path), tmp_path / "state", tmp_path / "run")
    (tmp_path / "evil.json").write_text(json.dumps({"network": {"plugins": [{"type": "x"}]}}))
    c.detach("c" * 64)
    c.detach("../evil")
    assert c.record("../evil") is None and c.ips("../evil") == []
