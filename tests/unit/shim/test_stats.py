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


def test_memory_detail_for_cri_from_a_v2_cgroup(tmp_path: Path) -> None:
    """rss, total usage, page faults and the cgroup's own limit (CRI's rssBytes,
    usageBytes, pageFaults, availableBytes) from memory.stat and memory.max."""
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    d = tmp_path / "c1"
    d.mkdir()
    (d / "memory.current").write_text("5000\n")
    (d / "memory.max").write_text("8192\n")
    (d / "memory.stat").write_text("anon 3000\ninactive_file 1000\npgfault 77\n"
                                   "pgmajfault 2\n")
    counters = stats.read("/c1", 0, root=tmp_path)
    assert (counters.memory_total, counters.memory_usage, counters.memory_rss) \
        == (5000, 4000, 3000)
    assert (counters.page_faults, counters.major_page_faults) == (77, 2)
    assert counters.memory_cgroup_limit == counters.memory_limit == 8192
    (d / "memory.max").write_text("max\n")
    unlimited = stats.read("/c1", 0, root=tmp_path)
    assert unlimited.memory_cgroup_limit == 0 and unlimited.memory_limit > 0


def test_v1_without_a_limit_has_no_cgroup_limit(tmp_path: Path) -> None:
    mem = tmp_path / "memory" / "c1"
    mem.mkdir(parents=True)
    (mem / "memory.limit_in_bytes").write_text(UNLIMITED_V1)
    (mem / "memory.usage_in_bytes").write_text("4096\n")
    (mem / "memory.stat").write_text("total_rss 2048\ntotal_pgfault 9\n"
                                     "total_pgmajfault 1\n")
    counters = stats.read("/c1", 0, root=tmp_path)
    assert counters.memory_cgroup_limit == 0
    assert (counters.memory_rss, counters.page_faults, counters.major_page_faults) \
        == (2048, 9, 1)


def _v1_cgroup(root: Path, rel: str, usage: int, pids: int) -> None:
    mem = root / "memory" / rel
    mem.mkdir(parents=True)
    (mem / "memory.limit_in_bytes").write_text(UNLIMITED_V1)
    (mem / "memory.usage_in_bytes").write_text(f"{usage}\n")
    (mem / "memory.stat").write_text("total_inactive_file 0\ntotal_rss 7\n")
    (root / "pids" / rel).mkdir(parents=True)
    (root / "pids" / rel / "pids.current").write_text(f"{pids}\n")
    (root / "cpuacct" / rel).mkdir(parents=True)
    (root / "cpuacct" / rel / "cpuacct.usage").write_text(f"{usage * 3}\n")


def test_many_at_once_reads_as_one_by_one(tmp_path: Path) -> None:
    for i in range(3):
        _v1_cgroup(tmp_path, f"p/c{i}", usage=1000 * (i + 1), pids=i + 1)
    targets = [(f"/p/c{i}", 0) for i in range(3)] + [("/p/gone", 0)]
    many = stats.read_many(targets, root=tmp_path)
    one = [stats.read(path, pid, root=tmp_path) for path, pid in targets]
    for c in (*many, *one):
        c.read_time_ns = 0
    assert many == one
    assert [(c.memory_usage, c.pids, c.cpu_usage_ns) for c in many] == \
        [(1000, 1, 3000), (2000, 2, 6000), (3000, 3, 9000), (0, 0, 0)]
