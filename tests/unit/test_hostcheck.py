"""tests/support/hostcheck.py: who is blamed for a difference when other engines ran."""

from __future__ import annotations

from pathlib import Path

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


def test_tmp_entries_are_engine_dirs_and_tempfile_probes(tmp_path: Path) -> None:
    for name in ("mu-ab12_cd", "mu-shim-x1y2", "pi_gswsi", "0ghx5rpd",  # watched
                 "tmpabcdefgh", "pytest-of-root", "muelle-bench-cache", "ABCDEFGH", "x"):
        (tmp_path / name).touch()
    assert hostcheck.tmp_entries(tmp_path) == {
        f"{tmp_path}/{n}" for n in ("mu-ab12_cd", "mu-shim-x1y2", "pi_gswsi", "0ghx5rpd")}
    before = hostcheck.tmp_entries(tmp_path)
    (tmp_path / "q97t_spk").touch()  # a probe file a killed process left
    diffs = hostcheck.compare({"tmp": before}, {"tmp": hostcheck.tmp_entries(tmp_path)})
    assert hostcheck.report(diffs) == [f"tmp: left behind  {tmp_path}/q97t_spk"]
