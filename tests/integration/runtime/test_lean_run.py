"""A real ``muelle-runtime run`` imports only what it uses: a fresh interpreter per
container, where typing, re, enum, pathlib, json, contextlib, threading... cost more than
runc's whole call on a small VM (issue 21). Started as the native front starts it (a sealed
copy of the interpreter running ``-S -c``), with ``os._exit`` watched: each of its processes
that exits through it (run itself, the intermediate) records the modules it imported."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.runtime.conftest import Runtime

pytestmark = pytest.mark.root

ROOT = str(Path(__file__).resolve().parents[3])

# Loaded by the runtime's verbs only for what this bundle does not ask for (hooks, a
# console socket, a seccomp profile compiled afresh), or never.
HEAVY = ("typing", "re", "enum", "pathlib", "json", "contextlib", "collections",
         "functools", "threading", "shutil", "platform", "signal", "urllib", "ipaddress",
         "fnmatch", "argparse", "subprocess", "tempfile", "datetime", "hashlib", "socket",
         "runpy", "importlib.util", "dataclasses", "inspect", "ctypes.util")

PROBE = """
import os, sys
if os.environ.get("LEAN_PROBE_STAGE") != "sealed":
    from services.runtime.sealed import sealed_copy  # as the native front seals it
    fd = sealed_copy()
    os.environ["LEAN_PROBE_STAGE"] = "sealed"
    os.execve(fd, [sys.executable, "-S", "-c", os.environ["LEAN_PROBE_CODE"], *sys.argv[1:]],
              os.environ)
sys.path[0] = os.environ["LEAN_PROBE_ROOT"]
before = set(sys.modules)
real_exit = os._exit

def watched_exit(code):
    try:
        with open(os.environ["LEAN_PROBE_OUT"], "a") as out:
            out.write(" ".join(sorted(set(sys.modules) - before)) + "\\n")
    finally:
        real_exit(code)

os._exit = watched_exit
from services.runtime.main import main
main()
"""


def _imports(rt: Runtime, tmp_path: Path, *args: str) -> set[str]:
    """What the verb imported, in each of its processes that exited through os._exit."""
    out = tmp_path / "modules"
    env = {**os.environ, "LEAN_PROBE_CODE": PROBE, "LEAN_PROBE_ROOT": ROOT,
           "LEAN_PROBE_OUT": str(out), "PYTHONPATH": ROOT}
    with open(tmp_path / "verb.err", "wb") as err:  # create's init inherits stdio: no pipes
        proc = subprocess.run([sys.executable, "-S", "-c", PROBE, "--root", str(rt.root),
                               *args], stdout=subprocess.DEVNULL, stderr=err, timeout=60,
                              stdin=subprocess.DEVNULL, env=env, cwd=tmp_path)
    assert proc.returncode == 0, (tmp_path / "verb.err").read_text()
    lines = out.read_text().splitlines()
    assert len(lines) == 2, lines  # the verb's own process and the intermediate
    return {m for line in lines for m in line.split()}


def _heavy(imported: set[str]) -> list[str]:
    return sorted(m for m in imported if m in HEAVY or m.split(".")[0] in HEAVY)


def test_run_imports_only_what_it_uses(muelle: Runtime, rootfs: Path, tmp_path: Path) -> None:
    bundle = muelle.bundle("lean-run", ["true"], rootfs)
    imported = _imports(muelle, tmp_path, "run", "--bundle", str(bundle), "lean-run")
    assert "services.runtime.run" in imported  # the probe saw the verb's imports
    assert _heavy(imported) == []


def test_create_imports_only_what_it_uses(muelle: Runtime, rootfs: Path,
                                          tmp_path: Path) -> None:
    bundle = muelle.bundle("lean-create", ["true"], rootfs)
    imported = _imports(muelle, tmp_path, "create", "--bundle", str(bundle), "lean-create")
    assert muelle.cmd("start", "lean-create").returncode == 0
    assert muelle.wait_status("lean-create", "stopped") == "stopped"
    assert muelle.cmd("delete", "lean-create").returncode == 0
    assert "services.runtime.create" in imported
    assert _heavy(imported) == []
