"""The harness itself, on trivial callables (no engine, no root): order, stats, ratios, JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bench.harness import (
    Contender,
    Result,
    Stats,
    alternate,
    report,
    run_rounds,
    settings_from_env,
    timed,
    write_json,
)


def counter(log: list[str], name: str, values: list[float]) -> Contender:
    it = iter(values)

    def sample() -> float:
        log.append(name)
        return next(it)

    return Contender(name, sample)


def test_rounds_alternate_after_warmup() -> None:
    log: list[str] = []
    result = run_rounds("x", [counter(log, "a", [9, 1, 2, 3]), counter(log, "b", [9, 2, 2, 6])],
                        pairs=3, warmup=1)
    assert log == ["a", "b"] * 4
    assert result.warmup == {"a": [9.0], "b": [9.0]}
    assert result.samples == {"a": [1.0, 2.0, 3.0], "b": [2.0, 2.0, 6.0]}
    assert result.ratios() == {"a/b": [0.5, 1.0, 0.5]}
    assert result.median_ratios() == {"a/b": 0.5}
    stats = result.stats()["b"]
    assert (stats.min, stats.median, stats.max, stats.n) == (2.0, 2.0, 6.0, 3)


def test_three_contenders_ratios_against_the_subject() -> None:
    log: list[str] = []
    result = run_rounds("x", [counter(log, "m", [1, 1]), counter(log, "p", [2, 4]),
                              counter(log, "q", [1, 2])], pairs=2, warmup=0)
    assert log == ["m", "p", "q", "m", "p", "q"]
    assert result.median_ratios() == {"m/p": 0.375, "m/q": 0.75}


def test_alternate_two_callables() -> None:
    result = alternate(lambda: 1.0, lambda: 4.0, pairs=2, warmup=1, names=("m", "d"))
    assert result.median_ratios() == {"m/d": 0.25}
    assert len(result.samples["m"]) == 2


def test_timed_runs_setup_and_teardown_outside_the_measurement() -> None:
    calls: list[str] = []
    sample = timed(lambda: calls.append("run"), setup=lambda: calls.append("setup"),
                   teardown=lambda: calls.append("teardown"))
    assert sample() >= 0
    assert calls == ["setup", "run", "teardown"]


def test_a_failing_side_stops_the_benchmark_and_still_tears_down() -> None:
    calls: list[str] = []

    def boom() -> None:
        raise RuntimeError("side broke")

    sample = timed(boom, teardown=lambda: calls.append("teardown"))
    with pytest.raises(RuntimeError, match="side broke"):
        run_rounds("x", [Contender("a", lambda: 1.0), Contender("b", sample)],
                   pairs=2, warmup=0)
    assert calls == ["teardown"]


def test_bad_contender_lists_are_refused() -> None:
    with pytest.raises(ValueError):
        run_rounds("x", [], pairs=1, warmup=0)
    with pytest.raises(ValueError):
        run_rounds("x", [Contender("a", lambda: 1.0), Contender("a", lambda: 1.0)],
                   pairs=1, warmup=0)
    with pytest.raises(ValueError):
        Stats.of([])


def test_json_file_and_report(tmp_path: Path) -> None:
    result = alternate(lambda: 0.002, lambda: 0.004, pairs=2, warmup=0, name="demo",
                       names=("muelle", "docker"))
    result.meta["note"] = "hello"
    first, second = write_json(result, tmp_path), write_json(result, tmp_path)
    assert first != second and first.name.startswith("demo-") and first.suffix == ".json"
    data = json.loads(first.read_text())
    assert data["benchmark"] == "demo" and data["unit"] == "s" and data["subject"] == "muelle"
    assert data["median_ratios"] == {"muelle/docker": 0.5}
    assert data["stats"]["docker"]["median"] == 0.004
    assert data["samples"]["muelle"] == [0.002, 0.002]
    assert {"kernel", "cpus", "versions", "git_commit"} <= set(data["machine"])
    text = report(result)
    assert "muelle" in text and "2.0 ms" in text and "muelle/docker: 0.500" in text
    assert "note: hello" in text


def test_memory_units_in_report() -> None:
    result = Result("m", "B", "a", {"a": [2.0 * 2**20], "b": [4.0 * 2**20]})
    assert "2.0 MiB" in report(result) and "a/b: 0.500" in report(result)


def test_settings_from_env() -> None:
    default = settings_from_env({})
    assert (default.pairs, default.warmup, default.smoke) == (5, 1, False)
    smoke = settings_from_env({"MUELLE_BENCH_SMOKE": "1"})
    assert (smoke.pairs, smoke.warmup, smoke.smoke) == (1, 0, True)
    assert smoke.scaled(20, 4) == 4 and default.scaled(20, 4) == 20
    custom = settings_from_env({"MUELLE_BENCH_PAIRS": "7", "MUELLE_BENCH_WARMUP": "0",
                                "MUELLE_BENCH_OUT": "/x", "MUELLE_BENCH_ONLY": "docker, runc"})
    assert (custom.pairs, custom.warmup, str(custom.out)) == (7, 0, "/x")
    assert custom.wants("runc") and not custom.wants("muelle") and default.wants("muelle")
    assert default.runtime == "muelle"
    assert settings_from_env({"MUELLE_BENCH_RUNTIME": "runc"}).runtime == "runc"
    for bad in ({"MUELLE_BENCH_PAIRS": "0"}, {"MUELLE_BENCH_PAIRS": "many"},
                {"MUELLE_BENCH_WARMUP": "-1"}, {"MUELLE_BENCH_RUNTIME": "kata"}):
        with pytest.raises(ValueError):
            settings_from_env(bad)


def test_teardown_runs_when_setup_fails() -> None:
    calls: list[str] = []

    def setup() -> None:
        raise OSError("no space")

    sample = timed(lambda: calls.append("run"), setup=setup,
                   teardown=lambda: calls.append("teardown"))
    with pytest.raises(OSError):
        sample()
    assert calls == ["teardown"]
