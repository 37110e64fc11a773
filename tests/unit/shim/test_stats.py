"""Counters of `stats` read from a cgroup tree laid out in a temp dir."""

from __future__ import annotations

from pathlib import Path

from services.shim import stats

# What cgroup v1 reports as the limit of a memory cgroup without one (PAGE_COUNTER_MAX).
UNLIMITED_V1 = "9223372036854771712\n"


def test_host_memory_reads_meminfo_with_units(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24683772 kB\nMemFree:        21173880 kB\n")
    assert stats._host_memory(meminfo) == 24683772 * 1024


def test_host_memory_of_this_host_is_known() -> None:
    assert stats._host_memory() > 0


def test_unlimited_container_shows_host_memory_as_limit(tmp_path: Path) -> None:
    """A container without `-m` shows the host's memory as its limit (Docker's
    `188KiB / 23.5GiB`), not cgroup v1's page-counter maximum (`8.389e+06TiB`)."""
    mem = tmp_path / "memory" / "c1"
    mem.mkdir(parents=True)
    (mem / "memory.limit_in_bytes").write_text(UNLIMITED_V1)
    (mem / "memory.usage_in_bytes").write_text("192512\n")
    (mem / "memory.stat").write_text("total_inactive_file 0\n")
    counters = stats.read("/c1", 0, root=tmp_path)
    assert counters.memory_limit == stats._host_memory() > 0
    assert counters.memory_usage == 192512
