"""The isolation chain comes with the first bridge's rules and goes, with every jump to
it, with the last one's; run in a network namespace this test makes (netfilter is per
namespace), so no other engine's rules are in the way."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0, reason="namespaces need root")]

REPO = Path(__file__).resolve().parents[3]

SCRIPT = """
import subprocess
from services.shim.network import iptables, rules

def save():
    return subprocess.run(["iptables-save"], capture_output=True, text=True).stdout

rules.add("mub1", "10.213.1.0/24")
rules.add("mub2", "10.213.2.0/24")
first = save()
rules.delete("mub1", "10.213.1.0/24")
iptables.prune()
second = save()
rules.delete("mub2", "10.213.2.0/24")
iptables.prune()
print(first + "=====" + second + "=====" + save())
"""


def test_the_isolation_chain_lives_as_long_as_a_bridge() -> None:
    proc = subprocess.run(["unshare", "--net", "--", sys.executable, "-c", SCRIPT],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    both, one, none = proc.stdout.split("=====")
    forward = [line for line in both.splitlines() if line.startswith("-A MUELLE-FORWARD")]
    # the isolation jumps come before every ACCEPT
    assert [line.endswith("-j MUELLE-ISOLATION") for line in forward] == [True] * 2 + \
        [False] * 4, forward
    assert "-A MUELLE-ISOLATION -o mub1 -j DROP" in both
    assert "-A MUELLE-ISOLATION -o mub2 -j DROP" in both
    assert "mub1" not in one and "-A MUELLE-ISOLATION -o mub2 -j DROP" in one
    assert "MUELLE" not in none, none
