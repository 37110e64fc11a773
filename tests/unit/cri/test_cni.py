"""services/cri/cni.py without plugins: which configuration is in force, and what each
plugin is given."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.core.errors import FailedPrecondition
from services.cri.cni import Cni, PortMapping


def test_no_configuration_is_not_ready(tmp_path: Path) -> None:
    cni = Cni(str(tmp_path / "none"), "/usr/lib/cni", tmp_path / "cache")
    assert "cni config uninitialized" in cni.ready()
    with pytest.raises(FailedPrecondition, match="uninitialized"):
        cni.add("x" * 64, "/proc/1/ns/net", [])


def test_the_first_file_in_name_order_and_single_plugin_confs(tmp_path: Path) -> None:
    (tmp_path / "20-b.conflist").write_text(json.dumps(
        {"cniVersion": "1.0.0", "name": "b", "plugins": [{"type": "bridge"}]}))
    (tmp_path / "10-a.conf").write_text(json.dumps(
        {"cniVersion": "0.4.0", "name": "a", "type": "ptp"}))
    net = Cni(str(tmp_path), "/usr/lib/cni", tmp_path / "cache").network()
    assert net == {"cniVersion": "0.4.0", "name": "a", "plugins": [
        {"cniVersion": "0.4.0", "name": "a", "type": "ptp"}]}


def test_port_mappings_go_to_plugins_that_ask_for_them() -> None:
    conf = {"cniVersion": "1.0.0", "name": "n"}
    ports = [PortMapping(8080, 80, "tcp", "127.0.0.1")]
    portmap = Cni._plugin_conf(conf, {"type": "portmap", "capabilities": {
        "portMappings": True}}, ports, {"ips": []})
    assert portmap["runtimeConfig"] == {"portMappings": [
        {"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": "127.0.0.1"}]}
    assert portmap["prevResult"] == {"ips": []} and portmap["name"] == "n"
    assert "runtimeConfig" not in Cni._plugin_conf(conf, {"type": "bridge"}, ports, None)


def test_delete_without_a_cached_add_does_nothing(tmp_path: Path) -> None:
    Cni(str(tmp_path), "/nonexistent", tmp_path / "cache").delete("x" * 64)
