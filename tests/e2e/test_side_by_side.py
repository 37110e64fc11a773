"""Two engines with their own roots and run dirs on one host do not see each other."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import network
from tests.support.engine import Engine

pytestmark = pytest.mark.root


def test_two_engines_side_by_side(busybox_ref: str) -> None:
    with Engine() as one, Engine() as two:
        one.cli("pull", busybox_ref)
        assert "demo/busybox" in one.cli("images").stdout
        assert "demo/busybox" not in two.cli("images").stdout
        cid = one.cli("run", "-d", "--name", "only-here", busybox_ref, "sleep", "30").stdout
        assert "only-here" not in two.cli("ps", "-a").stdout
        two.cli("pull", busybox_ref)
        assert two.cli("run", "--rm", busybox_ref, "echo", "hi").stdout.strip() == "hi"
        one.cli("rm", "-f", cid.strip())


def test_two_engines_with_default_configs_keep_their_own_bridge(busybox_ref: str) -> None:
    """Default configs: each engine derives its bridge and cgroup parent from its root, so
    one stopping takes nothing from the other's containers (it deleted the shared muelle0
    and left its masquerade rule)."""
    one, two = Engine(default_names=True), Engine(default_names=True)
    assert one.bridge != two.bridge and one.cgroup_parent != two.cgroup_parent
    with two:
        with one:
            for eng in (one, two):
                eng.cli("pull", busybox_ref)
            cid = two.cli("run", "-d", busybox_ref, "sleep", "60").stdout.strip()
            one.cli("run", "--rm", busybox_ref, "true")
            pid = json.loads(two.cli("inspect", cid).stdout)[0]["State"]["Pid"]
            cgroup = Path(f"/proc/{pid}/cgroup").read_text()  # as the host sees it
            assert f"/{two.cgroup_parent}/" in cgroup and f"/{one.cgroup_parent}/" not in cgroup
            assert network.links().get(one.bridge) == ""  # made on first use
        # one stopped cleanly: its bridge and rules went, two's are untouched
        assert one.bridge not in network.links()
        assert network.rules_mentioning([one.bridge]) == []
        veths = [name for name, master in network.links().items() if master == two.bridge]
        assert len(veths) == 1
        assert two.cli("exec", cid, "cat", "/sys/class/net/eth0/operstate").stdout == "up\n"


def test_an_engine_configured_onto_another_engines_bridge_refuses_to_start() -> None:
    one = Engine()
    two = Engine(bridge=one.bridge)
    with one:
        try:
            with pytest.raises(Exception) as failed:  # noqa: PT011 - the launcher's error
                two.start()
        finally:
            two.close()  # stops what did start
    message = str(failed.value) + two.logs()
    assert f"network.bridge '{one.bridge}' is in use by the muelle engine at {one.root}" \
        in message, message
