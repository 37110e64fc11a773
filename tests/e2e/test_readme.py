"""The README's "By hand" block, run as written on this machine: `make up`, the demo
registry it documents, every muelle command, `make down`. A README command that stops
working (an image nobody pushed, a container already removed) fails here."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.support.engine import Engine
from tests.support.registry import free_port

pytestmark = pytest.mark.root

REPO = Path(__file__).resolve().parents[2]


def by_hand_block() -> list[str]:
    text = (REPO / "README.md").read_text()
    match = re.search(r"## By hand\n\n```sh\n(.*?)```", text, re.S)
    assert match, "README.md has no '## By hand' sh block"
    lines = []
    for raw in match.group(1).splitlines():
        line = re.sub(r"\s+#.*$", "", raw).strip()  # the comments say what a line does
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def as_script(lines: list[str]) -> str:
    """The block as one bash script. Two changes only where this machine differs from a
    fresh one: a published host port that is taken here becomes a free one, and `-it`
    commands get a terminal (script(1)) that types `exit`."""
    out = ["set -euxo pipefail"]
    for line in lines:
        for port in re.findall(r"127\.0\.0\.1:(\d+):\d+", line):
            line = line.replace(f"127.0.0.1:{port}:", f"127.0.0.1:{free_port()}:")
        if " -it " in line:
            assert "'" not in line, line
            line = f"printf 'exit\\n' | script -qefc '{line}' /dev/null"
        out.append(line)
    return "\n".join(out) + "\n"


def test_readme_by_hand_block_runs_as_written() -> None:
    lines = by_hand_block()
    assert lines[0] == "make up" and any("demo-registry.sh up" in x for x in lines)
    eng = Engine()  # its dirs, config and clean-up; the block's `make up` starts it
    env = dict(eng.env)
    env.pop("MUELLE_HOST")  # the CLI finds the gateway from MUELLE_RUN, as on a host
    try:
        proc = subprocess.run(["bash", "-c", as_script(lines)], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, (
            f"the README block failed (exit {proc.returncode})\n"
            f"stderr (bash -x trace):\n{proc.stderr[-6000:]}\nstdout:\n{proc.stdout[-3000:]}"
            f"\n{eng.logs()}")
        assert "hi" in proc.stdout.splitlines()
        assert "pid=1" in proc.stdout
    finally:
        subprocess.run(["deploy/demo-registry.sh", "down"], cwd=REPO, env=env,
                       capture_output=True)
        eng.close()
