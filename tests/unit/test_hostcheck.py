"""tests/support/hostcheck.py: who is blamed for a difference when other engines ran."""

from __future__ import annotations

from tests.support import hostcheck

LINES = [
    "links: gone missing docker0 ether master= UP",
    "routes: gone missing -4 dst=default gateway=192.0.2.1 dev=eth0",
    "links: left behind  mut1a2b3c4d ether master= UP",
    "links: left behind  mu0123456789ab ether master= UP",
    "netfilter: left behind  iptables-save filter :MUELLE-ISOLATION",
    "cgroups: left behind  memory/muelle-test-1a2b3c4d",
    "cgroups: left behind  pids/testdir",
    "mounts: left behind  /tmp/mu-abc/root/x root=/ overlay overlay",
    "links: left behind  mdk00aa11bb ether master= UP",
]


def test_alone_every_difference_is_the_sessions() -> None:
    assert hostcheck.blamed(LINES, set(), contended=False) == LINES


def test_beside_other_engines_what_they_make_is_blamed_only_when_named() -> None:
    got = hostcheck.blamed(LINES, {"mu0123456789ab"}, contended=True)
    assert got == [
        "links: gone missing docker0 ether master= UP",  # no engine removes the host's
        "routes: gone missing -4 dst=default gateway=192.0.2.1 dev=eth0",
        "links: left behind  mu0123456789ab ether master= UP",  # claimed by this session
    ]
