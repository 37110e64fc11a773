"""Netfilter rules in muelle's own chains, so removal is exact.

nat    MUELLE              DNAT of published ports (jumped from PREROUTING and OUTPUT for
                           local destinations)
nat    MUELLE-POSTROUTING  masquerade of container traffic leaving its bridge, and of
                           127.0.0.0/8 sources DNATed into a bridge
filter MUELLE-FORWARD      accept traffic from and to muelle bridges; first, traffic from a
                           bridge to anywhere else goes through MUELLE-ISOLATION
filter MUELLE-ISOLATION    drop what enters another muelle bridge: networks (user networks,
                           the default bridge, other engines' bridges) do not reach each other,
                           as Docker's DOCKER-ISOLATION-STAGE-1/2 do
filter MUELLE-INPUT        drop new connections from a bridge to 127.0.0.0/8 (the price of
                           route_localnet, cf. CVE-2020-8558)

The chains and their jumps are made with their first rule and dropped, once empty, when a
bridge goes (callers hold the host-wide network lock, so engines side by side do not race).
"""

from __future__ import annotations

import subprocess

from vocab.errors import FailedPrecondition

NAT, FILTER = "nat", "filter"
DNAT_CHAIN, POST_CHAIN, FWD_CHAIN = "MUELLE", "MUELLE-POSTROUTING", "MUELLE-FORWARD"
INPUT_CHAIN = "MUELLE-INPUT"
ISOLATION_CHAIN = "MUELLE-ISOLATION"
# In pruning order: a chain goes only once no other one jumps to it.
JUMPS: dict[tuple[str, str], list[list[str]]] = {
    (NAT, DNAT_CHAIN): [
        ["PREROUTING", "-m", "addrtype", "--dst-type", "LOCAL", "-j", DNAT_CHAIN],
        ["OUTPUT", "-m", "addrtype", "--dst-type", "LOCAL", "-j", DNAT_CHAIN],
    ],
    (NAT, POST_CHAIN): [["POSTROUTING", "-j", POST_CHAIN]],
    (FILTER, FWD_CHAIN): [["FORWARD", "-j", FWD_CHAIN]],
    (FILTER, INPUT_CHAIN): [["INPUT", "-j", INPUT_CHAIN]],
    # jumped to from MUELLE-FORWARD's rules only (rules.py), which name their bridge
    (FILTER, ISOLATION_CHAIN): [],
}


def _run(table: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["iptables", "-w", "-t", table, *args], capture_output=True,
                          text=True)
    if check and proc.returncode != 0:
        raise FailedPrecondition(f"iptables -t {table} {' '.join(args)}: "
                                 f"{proc.stderr.strip()}")
    return proc


def _has(table: str, rule: list[str]) -> bool:
    return _run(table, "-C", *rule, check=False).returncode == 0


def _chain_exists(table: str, chain: str) -> bool:
    return _run(table, "-S", chain, check=False).returncode == 0


def rules(table: str, chain: str) -> list[str]:
    """The rules of ``chain`` as `iptables -S` prints them (without the -N line)."""
    proc = _run(table, "-S", chain, check=False)
    return [line for line in proc.stdout.splitlines() if line.startswith("-A ")]


def _ensure_chain(table: str, chain: str) -> None:
    if not _chain_exists(table, chain):
        _run(table, "-N", chain)
    for jump in JUMPS[(table, chain)]:
        if not _has(table, jump):
            _run(table, "-I", *jump)


def add(table: str, chain: str, rule: list[str], first: bool = False) -> None:
    """Append ``rule`` to ``chain`` (once), or insert it at the top with ``first``; the
    chain and its jumps are made if missing."""
    if _has(table, [chain, *rule]):
        return
    where = ["-I", chain, "1"] if first else ["-A", chain]
    if _run(table, *where, *rule, check=False).returncode != 0:
        _ensure_chain(table, chain)
        _run(table, *where, *rule)


def delete(table: str, chain: str, rule: list[str]) -> None:
    """Delete ``rule`` wherever present (nothing if the chain is gone)."""
    while _run(table, "-D", chain, *rule, check=False).returncode == 0:
        pass


def prune() -> None:
    """Drop muelle's chains that hold no rule, with their jumps (when a bridge goes)."""
    for (table, chain), jumps in JUMPS.items():
        if not _chain_exists(table, chain) or rules(table, chain):
            continue
        for jump in jumps:
            while _has(table, jump):
                _run(table, "-D", *jump)
        _run(table, "-X", chain, check=False)
