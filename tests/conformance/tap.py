"""Strict reading of one runtime-tools validation program's TAP output.

A program is clean only if it exited 0, printed a plan (``1..N`` with N >= 1 and exactly N
test lines, or a skip plan ``1..0 # SKIP reason``), no ``not ok`` line and no error block.
An error block is a YAML diagnostic (``  ---`` .. ``  ...``) that belongs to no test line:
the programs print one when the runtime failed before any check could run (e.g. create
refused the config), then ``1..0``, and exit 0 - which a count of ``not ok`` lines alone
takes for a clean program.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

TEST = re.compile(r"^(not ok|ok)\b(.*)$")
PLAN = re.compile(r"^1\.\.(\d+)\s*(?:#\s*(.*))?$")
SKIP = re.compile(r"#\s*skip\b", re.IGNORECASE)
EMPTY = "empty plan 1..0 without # SKIP"


@dataclass
class Verdict:
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    exit: int = 0
    plan: int | None = None
    skip_plan: bool = False
    error_blocks: int = 0
    failures: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # why it is not clean

    @property
    def clean(self) -> bool:
        return not self.problems

    @property
    def empty(self) -> bool:
        """Not clean only for a plan ``1..0`` without ``# SKIP``: exit 0, no error, no test.
        The lifecycle programs (poststart, prestart_fail...) print just that when nothing
        went wrong, and linux_cgroups_cpus' second part when the host has no
        /sys/fs/cgroup/cpu,cpuacct: no check ran, so it is not counted clean."""
        return bool(self.problems) and all(p.startswith(EMPTY) for p in self.problems)


def classify(stdout: str, exit_code: int) -> Verdict:
    v = Verdict(exit=exit_code)
    streams: list[_Stream] = []
    stream = _Stream()
    prev = ""  # what the last line that was not blank belongs to: "test", "yaml", ...
    orphan = False  # the YAML block being read follows no test line (yet)
    in_yaml = False
    for raw in stdout.splitlines():
        line = raw.rstrip()
        if in_yaml:
            if line.strip() == "...":
                in_yaml = False
            continue
        if not line.strip():
            continue
        if line.strip() == "---" and raw.startswith(" "):
            # A test's diagnostic comes right after its line, or right before it
            # (RuntimeInsideValidate prints the container's output, then the test line).
            in_yaml, orphan = True, prev != "test"
            prev = "yaml"
            continue
        if orphan and not TEST.match(line):
            v.error_blocks += 1
        orphan = False
        if line.startswith("TAP version"):
            # Some programs print a second TAP document after the first (linux_cgroups_cpus).
            if stream.started:
                streams.append(stream)
            stream = _Stream(started=True)
            prev = "header"
            continue
        stream.started = True
        m = TEST.match(line)
        if m:
            stream.tests += 1
            prev = "test"
            if m.group(1) == "not ok":
                v.failed += 1
                v.failures.append(line.strip()[:160])
            elif SKIP.search(m.group(2)):
                v.skipped += 1
            else:
                v.passed += 1
            continue
        # A description with a newline goes on on the next line ("Refer to: ..."): text
        # after a test line still belongs to it, and so does a YAML block after that.
        prev = "test" if prev == "test" and not line.startswith(("#", "1..")) else "other"
        p = PLAN.match(line)
        if p:
            stream.plan = int(p.group(1))
            stream.skip_plan = stream.plan == 0 and bool(p.group(2)) and \
                p.group(2).lower().startswith("skip")
    if orphan:
        v.error_blocks += 1
    if stream.started:
        streams.append(stream)
    if exit_code != 0:
        v.problems.append(f"exited {exit_code}")
    if v.failed:
        v.problems.append(f"{v.failed} not ok")
    if v.error_blocks:
        v.problems.append(f"{v.error_blocks} error block(s)")
    if not streams:
        v.problems.append("no TAP output")
    for s in streams:
        if s.plan is None:
            v.problems.append("no plan")
        elif s.plan == 0 and not s.skip_plan:
            v.problems.append(EMPTY)
        elif s.plan != s.tests:
            v.problems.append(f"plan 1..{s.plan} but {s.tests} test lines")
    v.plan = streams[-1].plan if streams else None
    v.skip_plan = bool(streams) and streams[-1].skip_plan
    return v


@dataclass
class _Stream:
    started: bool = False
    tests: int = 0
    plan: int | None = None
    skip_plan: bool = False
