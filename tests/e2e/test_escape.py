"""The engine's own paths into a container run from a sealed copy of the interpreter.

The fork server and its monitors run muelle-runtime's create in-process, and exec goes
through the runtime's command: a container that execs /proc/self/exe, or scans /proc for
the runtime's processes, must find a sealed memfd, never the host's Python (which every
service runs: a write to it would be refused as "text file busy" today and succeed the
moment they stop). These probes only look; the writes are tried on a private copy in
tests/integration/runtime/test_escape.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.support.engine import Engine

pytestmark = pytest.mark.root

# Run as the runtime's executable (``#!/proc/self/exe``): what is it, and is it sealed?
PROBE = """#!/proc/self/exe
import fcntl, os
fd = os.open("/proc/self/exe", os.O_RDONLY)
try:
    seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
except OSError:
    seals = -1
print(os.readlink("/proc/self/exe"), seals)
"""
SEALED = 15  # F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE


def _python_volumes(out: Path) -> list[str]:
    """What an image shipping this machine's Python holds: its libraries, its prefix."""
    return ["-v", f"{out}:/out", "-v", "/usr/lib:/lib:ro", "-v", "/usr/lib64:/lib64:ro",
            "-v", f"{sys.base_prefix}:{sys.base_prefix}:ro",
            "-e", f"PYTHONHOME={sys.base_prefix}"]


@pytest.fixture
def probe(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    (out / "probe").write_text(PROBE)
    (out / "probe").chmod(0o755)
    return out


def _sealed(line: str) -> bool:
    target, seals = line.rsplit(" ", 1)
    return target.startswith("/memfd:") and int(seals) & SEALED == SEALED


def test_entrypoint_of_proc_self_exe_finds_a_sealed_copy(engine: Engine, image: str,
                                                         probe: Path) -> None:
    out = engine.cli("run", "--rm", *_python_volumes(probe), image, "/out/probe").stdout
    assert _sealed(out.strip()), out


def test_exec_of_proc_self_exe_finds_a_sealed_copy(engine: Engine, image: str,
                                                   probe: Path) -> None:
    engine.cli("run", "-d", "--name", "probe-exec", *_python_volumes(probe), image,
               "sleep", "1000")
    try:
        out = engine.cli("exec", "probe-exec", "/out/probe").stdout
    finally:
        engine.cli("rm", "-f", "probe-exec", check=False)
    assert _sealed(out.strip()), out


# Opens (and closes at once) every /proc/<pid>/exe that is not a file of the container.
SCANNER = r"""
: > /out/scan.log
while [ ! -e /out/stop ]; do
  for d in /proc/[0-9]*; do
    t=$(readlink $d/exe 2>/dev/null) || continue
    [ -z "$t" ] && continue
    [ -e "$t" ] && continue
    ( exec 3<$d/exe && echo "open ${d#/proc/} $t" >> /out/scan.log ) 2>/dev/null
  done
done
"""


@pytest.mark.parametrize("ptrace", [False, True], ids=["default-caps", "cap-sys-ptrace"])
def test_execs_are_out_of_a_neighbours_reach(engine: Engine, image: str, tmp_path: Path,
                                             ptrace: bool) -> None:
    """Without CAP_SYS_PTRACE the runtime's processes cannot be opened at all (they are
    non-dumpable); with it, all that can be opened is the sealed copy."""
    out = tmp_path / "out"
    out.mkdir()
    name = f"scan-{int(ptrace)}"
    caps = ["--cap-add", "SYS_PTRACE"] if ptrace else []
    engine.cli("run", "-d", "--name", name, "-v", f"{out}:/out", *caps, image,
               "sh", "-c", SCANNER)
    try:
        for _ in range(20):
            engine.cli("exec", name, "true")
    finally:
        (out / "stop").touch()
        engine.cli("rm", "-f", name, check=False)
    opened = (out / "scan.log").read_text().splitlines()
    if not ptrace:
        assert opened == []
    assert [line for line in opened if "/memfd:" not in line] == [], opened
