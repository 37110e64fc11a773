"""Strict counting of runtime-tools validation programs (tests/conformance/tap.py).

records/ holds outputs recorded with `runtime_tools.py --record` on this project's VM
(2026-12-06; hostname's inner container output trimmed); the rest are written here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conformance.runtime_tools import read_record, result
from tests.conformance.tap import classify

RECORDS = Path(__file__).parent / "records"


def _record(name: str) -> dict:
    return result(*read_record(RECORDS / f"{name}.out"))


def test_error_block_then_empty_plan_is_a_failure() -> None:
    """What the old count took for clean: exit 0, no `not ok`, an error block, `1..0`."""
    r = _record("hooks-error-block")
    assert (r["pass"], r["fail"], r["exit"]) == (0, 0, 0)
    assert not r["clean"] and not r["empty"]
    assert "1 error block(s)" in r["problems"]


def test_a_clean_program() -> None:
    r = _record("create-clean")
    assert r["clean"] and (r["pass"], r["fail"], r["skip"]) == (4, 0, 0)


def test_yaml_before_its_test_line_is_that_tests_diagnostic() -> None:
    """RuntimeInsideValidate prints the container's output, then the test line."""
    r = _record("hostname-yaml-before-test")
    assert r["clean"] and r["pass"] == 4


def test_not_ok_is_a_failure() -> None:
    r = _record("relative-memory-not-ok")
    assert not r["clean"] and r["fail"] == 1 and r["problems"] == ["1 not ok"]
    assert r["failures"] == ["not ok 6 - memory kernel is set correctly"]


def test_non_zero_exit_is_a_failure() -> None:
    r = _record("blkio-exit-1")
    assert not r["clean"] and r["exit"] == 1 and "exited 1" in r["problems"]


def test_no_tap_at_all_is_a_failure() -> None:
    r = _record("capabilities-no-tap")
    assert not r["clean"] and not r["empty"]
    assert r["problems"] == ["exited 1", "no TAP output"]


def test_every_tap_document_needs_its_plan() -> None:
    """linux_cgroups_cpus prints a second document; here it ran no test (no cpu,cpuacct
    directory on this host): the program is not clean, only "empty"."""
    r = _record("cpus-second-document-empty")
    assert r["pass"] == 112 and r["fail"] == 0
    assert not r["clean"] and r["empty"]


def test_a_bare_empty_plan_is_not_clean_but_empty() -> None:
    r = _record("poststop-empty-plan")
    assert not r["clean"] and r["empty"]


def test_yaml_before_a_not_ok_line_is_no_extra_error_block() -> None:
    r = _record("ns-itype-not-ok")
    assert r["problems"] == ["1 not ok"]


@pytest.mark.parametrize(("stdout", "code", "clean", "problems"), [
    ("TAP version 13\n1..0 # SKIP no cgroup v2\n", 0, True, []),
    ("TAP version 13\n1..1\nok 1 # SKIP linux-specific\n", 0, True, []),
    ("TAP version 13\nok 1 - a\nok 2 - b\n", 0, False, ["no plan"]),
    ("TAP version 13\nok 1 - a\n1..3\n", 0, False, ["plan 1..3 but 1 test lines"]),
    ("TAP version 13\nok 1 - a\n1..1\n", -1, False, ["exited -1"]),
    ("TAP version 13\nok 1 - a\n  ---\n  {\"error\": \"x\"}\n  ...\n1..1\n", 0, True, []),
    ("TAP version 13\nok 1 - a\n  ---\n  {}\n  ...\n  ---\n  {\"error\": \"x\"}\n  ...\n"
     "1..1\n", 0, False, ["1 error block(s)"]),
])
def test_written_cases(stdout: str, code: int, clean: bool, problems: list[str]) -> None:
    v = classify(stdout, code)
    assert (v.clean, v.problems) == (clean, problems)


def test_a_description_on_two_lines_keeps_its_yaml() -> None:
    """state's descriptions end in a newline and "Refer to: ..." before their YAML block."""
    r = _record("state-description-on-two-lines")
    assert r["clean"] and r["pass"] == 3
