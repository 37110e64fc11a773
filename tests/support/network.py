"""What a test engine's networking may leave on the host: bridges, veths, netfilter rules,
leases. Engines side by side each own a bridge (and user-network bridges), so everything is
counted by those names only."""

from __future__ import annotations

import json
import shlex
import socket
import subprocess
from pathlib import Path


def engine_bridges(root: Path, default_bridge: str) -> list[str]:
    """The default bridge and the bridges of the engine's user networks."""
    names = [default_bridge]
    for file in (root / "shim" / "network" / "networks").glob("*.json"):
        try:
            names.append(json.loads(file.read_text())["bridge"])
        except (ValueError, KeyError, OSError):
            continue
    return sorted(set(names))


def links() -> dict[str, str]:
    """name -> master name ("" when none) of every link on the host."""
    out = {}
    sysnet = Path("/sys/class/net")
    for dev in sysnet.iterdir():
        master = dev / "master"
        out[dev.name] = master.resolve().name if master.exists() else ""
    return out


def rules_mentioning(names: list[str]) -> list[tuple[str, str]]:
    """(table, `-A ...` line) of every iptables rule naming one of ``names``."""
    text = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    table, out = "", []
    for line in text.splitlines():
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith("-A ") and any(n in line.split() for n in names):
            out.append((table, line))
    return out


def leases(root: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for file in (root / "shim" / "network" / "ipam").glob("*.json"):
        try:
            text = file.read_text()
        except FileNotFoundError:
            continue  # its last lease released since the listing (ipam.Pool removes it)
        out.update(json.loads(text).get("leases", {}))
    return out


def container_leftovers(root: Path, default_bridge: str) -> list[str]:
    """What containers alone own: veths on the engine's bridges, DNAT rules, leases.
    (The default bridge and its masquerade rules stay up while the shim runs, like docker0.)"""
    bridges = engine_bridges(root, default_bridge)
    found = []
    veths = [n for n, master in links().items() if master in bridges]
    if veths:
        found.append(f"veths {veths}")
    dnat = [line for _, line in rules_mentioning(bridges) if "DNAT" in line]
    if dnat:
        found.append(f"DNAT rules {dnat}")
    held = leases(root)
    if held:
        found.append(f"IPAM leases {held}")
    return found


def retiring(root: Path) -> list[str]:
    """Veths the shim took off their bridge to delete on a thread, still on the host."""
    recorded = root / "shim" / "network" / "retiring"
    names = [p.name for p in recorded.iterdir()] if recorded.is_dir() else []
    return [n for n in names if n in links()]


def leftovers(root: Path, default_bridge: str) -> list[str]:
    """Everything, for an engine that has stopped."""
    bridges = engine_bridges(root, default_bridge)
    found = container_leftovers(root, default_bridge)
    pending = retiring(root)
    if pending:
        found.append(f"veths never deleted {pending}")
    present = [b for b in bridges if b in links()]
    if present:
        found.append(f"bridges {present}")
    rules = [line for _, line in rules_mentioning(bridges) if "DNAT" not in line]
    if rules:
        found.append(f"netfilter rules {rules}")
    return found


def sweep(root: Path, default_bridge: str) -> list[str]:
    """Report, then remove, what leftovers() finds."""
    found = leftovers(root, default_bridge)
    bridges = engine_bridges(root, default_bridge)
    for table, line in rules_mentioning(bridges):
        subprocess.run(["iptables", "-w", "-t", table, "-D", *shlex.split(line)[1:]],
                       capture_output=True)
    all_links = links()
    pending = retiring(root)
    for name, master in all_links.items():
        if master in bridges or name in bridges or name in pending:
            subprocess.run(["ip", "link", "del", name], capture_output=True)
    return found


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A host port from the OS's ephemeral range, free right now."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
