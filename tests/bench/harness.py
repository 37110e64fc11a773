"""The benchmark harness: run contenders alternately, summarise, print, write JSON.

Every benchmark compares muelle (the *subject*, listed first) with one or more peers in the
same run, interleaved round by round (A B A B ..., after a warm-up), so that drift of the
machine (page cache, CPU frequency, background work) hits both sides alike. A sample is
whatever a contender's callable returns: ``timed()`` turns an action into its wall time in
seconds; memory benchmarks return bytes.

    result = alternate(timed(muelle_run), timed(docker_run), names=("muelle", "docker"),
                       name="run", unit="s", pairs=settings.pairs, warmup=settings.warmup)
    emit(result, settings)   # prints the table, writes <out>/run-<date>.json

Settings come from the environment:
    MUELLE_BENCH_PAIRS   measured rounds (default 5)
    MUELLE_BENCH_WARMUP  unmeasured rounds first (default 1)
    MUELLE_BENCH_SMOKE=1 one round, no warm-up, smaller workloads (checks that it all works)
    MUELLE_BENCH_OUT     directory for the JSON results (default /tmp/muelle-bench)
    MUELLE_BENCH_ONLY    comma-separated contenders to run (e.g. "docker,runc"); default all
    MUELLE_BENCH_RUNTIME OCI runtime of the muelle engine (default muelle; runc, crun)
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

Sample = Callable[[], float]


@dataclass(frozen=True)
class Settings:
    pairs: int = 5
    warmup: int = 1
    smoke: bool = False
    out: Path = Path("/tmp/muelle-bench")
    only: frozenset[str] = frozenset()
    # OCI runtime of the muelle engines ("muelle", "runc", "crun"): with runc the engines
    # are compared on equal runtimes, with the default the product as shipped.
    runtime: str = "muelle"

    def wants(self, contender: str) -> bool:
        """True when ``contender`` should run (MUELLE_BENCH_ONLY unset, or names it)."""
        return not self.only or contender in self.only

    def scaled(self, full: int, smoke: int) -> int:
        """A workload size: ``full`` normally, ``smoke`` in smoke mode."""
        return smoke if self.smoke else full


def _env_int(env: dict[str, str], key: str, default: int, minimum: int) -> int:
    raw = env.get(key, "")
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ValueError(f"{key}={raw!r} is not an integer") from exc
    if value < minimum:
        raise ValueError(f"{key}={value} must be at least {minimum}")
    return value


def settings_from_env(env: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if env is None else env)
    smoke = env.get("MUELLE_BENCH_SMOKE", "") not in ("", "0", "false", "no")
    pairs = _env_int(env, "MUELLE_BENCH_PAIRS", 1 if smoke else 5, 1)
    warmup = _env_int(env, "MUELLE_BENCH_WARMUP", 0 if smoke else 1, 0)
    only = frozenset(n.strip() for n in env.get("MUELLE_BENCH_ONLY", "").split(",") if n.strip())
    out = Path(env.get("MUELLE_BENCH_OUT") or "/tmp/muelle-bench")
    runtime = env.get("MUELLE_BENCH_RUNTIME") or "muelle"
    if runtime not in ("muelle", "runc", "crun"):
        raise ValueError(f"MUELLE_BENCH_RUNTIME={runtime!r}: expected muelle, runc or crun")
    return Settings(pairs=pairs, warmup=warmup, smoke=smoke, out=out, only=only,
                    runtime=runtime)


@dataclass
class Contender:
    """One side of a benchmark: ``sample()`` is called once per round."""

    name: str
    sample: Sample


def timed(action: Callable[[], object], setup: Callable[[], object] | None = None,
          teardown: Callable[[], object] | None = None) -> Sample:
    """A sample that is the wall time of ``action`` in seconds; setup/teardown are not timed."""

    def run() -> float:
        try:  # teardown also cleans up after a setup that failed half way
            if setup is not None:
                setup()
            start = time.perf_counter()
            action()
            return time.perf_counter() - start
        finally:
            if teardown is not None:
                teardown()

    return run


@dataclass
class Stats:
    n: int
    min: float
    median: float
    max: float
    mean: float
    stdev: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Stats:
        if not values:
            raise ValueError("no samples")
        return cls(
            n=len(values), min=min(values), median=statistics.median(values), max=max(values),
            mean=statistics.fmean(values),
            stdev=statistics.stdev(values) if len(values) > 1 else 0.0,
        )


@dataclass
class Result:
    """Samples of every contender, round by round, and the subject/peer ratios per round."""

    name: str
    unit: str
    subject: str
    samples: dict[str, list[float]]
    warmup: dict[str, list[float]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    started: str = ""

    def stats(self) -> dict[str, Stats]:
        return {name: Stats.of(values) for name, values in self.samples.items() if values}

    def ratios(self) -> dict[str, list[float]]:
        """``"subject/peer"`` -> the ratio of each round's samples (lower is better for s, B)."""
        if self.subject not in self.samples:
            return {}
        mine = self.samples[self.subject]
        out: dict[str, list[float]] = {}
        for peer, theirs in self.samples.items():
            if peer == self.subject:
                continue
            out[f"{self.subject}/{peer}"] = [
                a / b if b else float("inf") for a, b in zip(mine, theirs, strict=True)
            ]
        return out

    def median_ratios(self) -> dict[str, float]:
        return {key: statistics.median(values) for key, values in self.ratios().items() if values}

    def to_json(self) -> dict[str, Any]:
        return {
            "benchmark": self.name,
            "unit": self.unit,
            "subject": self.subject,
            "started": self.started,
            "samples": self.samples,
            "warmup": self.warmup,
            "stats": {name: asdict(s) for name, s in self.stats().items()},
            "ratios": self.ratios(),
            "median_ratios": self.median_ratios(),
            "meta": self.meta,
            "machine": machine_info(),
        }


def run_rounds(name: str, contenders: Sequence[Contender], *, pairs: int, warmup: int,
               unit: str = "s", meta: dict[str, Any] | None = None) -> Result:
    """Call every contender once per round, in the given order, ``warmup + pairs`` rounds.

    The first contender is the subject of the ratios. A contender that raises stops the
    benchmark: a broken side must not silently produce a flattering ratio.
    """
    if not contenders:
        raise ValueError("no contenders")
    names = [c.name for c in contenders]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate contender names {names}")
    result = Result(
        name=name, unit=unit, subject=names[0],
        samples={n: [] for n in names}, warmup={n: [] for n in names}, meta=dict(meta or {}),
        started=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    for round_no in range(warmup + pairs):
        into = result.warmup if round_no < warmup else result.samples
        for contender in contenders:
            into[contender.name].append(float(contender.sample()))
    return result


def alternate(a: Sample, b: Sample, *, pairs: int, warmup: int, name: str = "bench",
              names: tuple[str, str] = ("muelle", "peer"), unit: str = "s") -> Result:
    """Two contenders, A B A B ...: the common case."""
    return run_rounds(name, [Contender(names[0], a), Contender(names[1], b)],
                      pairs=pairs, warmup=warmup, unit=unit)


def _fmt(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value * 1000:.1f} ms" if value < 10 else f"{value:.2f} s"
    if unit == "B":
        return f"{value / 2**20:.1f} MiB"
    return f"{value:.4g} {unit}"


def report(result: Result) -> str:
    """A small table: min/median/max per contender, then the median per-round ratios."""
    lines = [f"== {result.name} ({sum(len(v) for v in result.samples.values())} samples, "
             f"unit {result.unit})"]
    width = max([len(n) for n in result.samples] + [10])
    lines.append(f"  {'':<{width}}  {'min':>12} {'median':>12} {'max':>12}")
    for name, s in result.stats().items():
        lines.append(f"  {name:<{width}}  {_fmt(s.min, result.unit):>12} "
                     f"{_fmt(s.median, result.unit):>12} {_fmt(s.max, result.unit):>12}")
    for key, value in result.median_ratios().items():
        lines.append(f"  median ratio {key}: {value:.3f}")
    for key, value in result.meta.items():
        if isinstance(value, str | int | float):
            lines.append(f"  {key}: {value}")
    return "\n".join(lines)


def write_json(result: Result, out: Path) -> Path:
    """Write the result to ``out/<name>-<UTC date-time>.json`` and return the path."""
    out.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = out / f"{result.name}-{stamp}.json"
    n = 1
    while path.exists():  # two results of one benchmark within a second
        n += 1
        path = out / f"{result.name}-{stamp}-{n}.json"
    path.write_text(json.dumps(result.to_json(), indent=2, sort_keys=True) + "\n")
    return path


def emit(result: Result, settings: Settings) -> Path:
    """Print the report (run pytest with -s to see it) and write the JSON file."""
    if settings.smoke:
        result.meta.setdefault("mode", "smoke")
    engine_run = result.name != "runtime" and not result.name.startswith("pull")
    if result.subject == "muelle" and engine_run:
        result.meta.setdefault("muelle_runtime", settings.runtime)
    path = write_json(result, settings.out)
    print("\n" + report(result) + f"\n  -> {path}", flush=True)
    return path


def _version(cmd: list[str]) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unavailable"
    text = (proc.stdout or proc.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


_MACHINE: dict[str, Any] = {}


def machine_info() -> dict[str, Any]:
    """Where and with what the numbers were taken (computed once per process)."""
    if _MACHINE:
        return _MACHINE
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        mem_kib = 0
    repo = Path(__file__).resolve().parents[2]
    _MACHINE.update({
        "hostname": platform.node(),
        "kernel": platform.release(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory_mib": mem_kib // 1024,
        "python": platform.python_version(),
        "git_commit": _version(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"]),
        "versions": {
            "dockerd": _version(["dockerd", "--version"]),
            "runc": _version(["runc", "--version"]),
            "crun": _version(["crun", "--version"]),
            "skopeo": _version(["skopeo", "--version"]),
        },
    })
    return _MACHINE
