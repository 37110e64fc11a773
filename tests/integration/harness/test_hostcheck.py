"""tests/support/hostcheck.py sees what a session leaves on the host, and only that.

Each check runs in network and mount namespaces this test makes (``unshare``), so links,
routes, netfilter rules and mounts are made and left only there; the cgroup is made and
removed here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.support import hostcheck

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0, reason="namespaces need root")]

REPO = Path(__file__).resolve().parents[3]

# Inside `unshare --net --mount`: something that will vanish, a snapshot, then a leak of
# each kind and traffic that moves the counters, a second snapshot, the differences.
SCRIPT = """
import json, socket, subprocess, sys
from tests.support import hostcheck

def sh(*argv):
    subprocess.run(argv, check=True, capture_output=True)

sh("ip", "link", "set", "lo", "up")
sh("ip", "link", "add", "hcgone", "type", "bridge")
sh("iptables", "-w", "-A", "INPUT", "-i", "lo", "-j", "ACCEPT")
before = hostcheck.snapshot()
sh("ip", "link", "del", "hcgone")
sh("ip", "link", "add", "hcleak", "type", "bridge")
sh("ip", "link", "set", "hcleak", "up")
sh("ip", "addr", "add", "10.213.7.1/24", "dev", "hcleak")
sh("ip", "route", "add", "10.214.0.0/16", "via", "10.213.7.2")
sh("iptables", "-w", "-t", "nat", "-N", "HC-LEAK")
sh("iptables", "-w", "-P", "FORWARD", "DROP")
sh("mount", "-t", "tmpfs", "hcleak", sys.argv[1])
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:  # INPUT's counters move
    for _ in range(5):
        udp.sendto(b"x", ("127.0.0.1", 9))
after = hostcheck.snapshot()
print(json.dumps(hostcheck.report(hostcheck.compare(before, after))))
"""


def test_a_leak_of_each_kind_is_reported(tmp_path: Path) -> None:
    target = tmp_path / "mnt"
    target.mkdir()
    proc = subprocess.run(
        ["unshare", "--net", "--mount", "--", sys.executable, "-c", SCRIPT, str(target)],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = json.loads(proc.stdout.splitlines()[-1])
    text = "\n".join(lines)
    assert any(line.startswith("links: gone missing hcgone ") for line in lines), text
    assert any(line.startswith("links: left behind  hcleak ether") for line in lines), text
    assert "addresses: left behind  hcleak 10.213.7.1/24" in lines, text
    assert any("dst=10.214.0.0/16" in line and "gateway=10.213.7.2" in line
               for line in lines), text
    assert "netfilter: left behind  iptables-save nat :HC-LEAK" in lines, text
    assert "netfilter: left behind  iptables-save filter :FORWARD DROP" in lines, text
    assert any(line.startswith(f"mounts: left behind  {target} ") for line in lines), text
    # the packet counters that the datagrams moved are no difference; nor is lo's own state
    assert not any("INPUT" in line or " lo " in line for line in lines), text


def test_a_cgroup_left_behind_is_reported() -> None:
    mount = Path("/sys/fs/cgroup")
    hierarchy = next((h for h in ("pids", "memory", "unified") if (mount / h).is_dir()),
                     None)
    base = mount / hierarchy if hierarchy else mount
    before = hostcheck.cgroups()
    made = base / f"muelle-hostcheck-{uuid.uuid4().hex[:8]}"
    made.mkdir()
    try:
        lines = hostcheck.report(hostcheck.compare({"cgroups": before},
                                                   {"cgroups": hostcheck.cgroups()}))
    finally:
        made.rmdir()
    assert f"cgroups: left behind  {made.relative_to(mount)}" in lines


LEAKY = """
import subprocess
from tests.support import hostcheck

def test_leaks_a_bridge():
    hostcheck.claim("hcsession")  # blamed even when other engines run on this host
    subprocess.run(["ip", "link", "add", "hcsession", "type", "bridge"], check=True)

def test_tidy():
    subprocess.run(["ip", "link", "add", "hctidy", "type", "bridge"], check=True)
    subprocess.run(["ip", "link", "del", "hctidy"], check=True)
"""


@pytest.mark.parametrize("leak", [True, False])
def test_the_session_fails_when_the_host_changed(tmp_path: Path, leak: bool) -> None:
    """The hooks of tests/conftest.py, in a pytest run of its own inside a network
    namespace this test makes: its passing tests fail the run when one leaves a link."""
    (tmp_path / "test_leaky.py").write_text(LEAKY)
    select = "test_leaks_a_bridge" if leak else "test_tidy"
    proc = subprocess.run(
        ["unshare", "--net", "--", sys.executable, "-m", "pytest", "-q", "-p", "tests.conftest",
         "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
         f"{tmp_path / 'test_leaky.py'}::{select}"],
        cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True,
        text=True, timeout=120)
    if leak:
        assert proc.returncode == 1, proc.stdout
        assert "1 passed" in proc.stdout
        assert "links: left behind  hcsession ether" in proc.stdout, proc.stdout
    else:
        assert proc.returncode == 0, proc.stdout
        assert "hctidy" not in proc.stdout
