"""A shim killed during create (issue 19, item 3).

The runtime's `create` is held at a gate, the shim is killed -9 there, then the gate
opens: the runtime makes the container, whose init waits on its exec FIFO under a monitor
that outlived the shim, while the gateway's create has failed. Once the shim is back the
engine must converge with no help: nothing of the container left (process, mount,
cgroup, veth, lease, shim dir, writable layer, record), and `system check` clean.
"""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.support import faults
from tests.support.engine import CLI, Engine

pytestmark = pytest.mark.root


def _check_clean(engine: Engine) -> bool:
    return engine.cli("system", "check", check=False).returncode == 0


@pytest.mark.parametrize("killed", ["shim", "gateway"])
def test_a_service_killed_in_create_leaves_nothing(busybox_ref: str, tmp_path: Path,
                                                   killed: str) -> None:
    gate = faults.Gate(tmp_path / "gate")
    with Engine(extra_config=gate.config) as engine:
        engine.cli("pull", busybox_ref)
        create = subprocess.Popen([CLI, "create", "--runtime", "gated", "--name", "half",
                                   busybox_ref, "sleep", "1000"], env=engine.env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            gate.wait_entered()
            faults.kill9(engine, killed)
            gate.release()
            _, err = create.communicate(timeout=60)
        finally:
            create.kill()
            create.wait()
        assert create.returncode != 0, err  # the shim or the gateway was unavailable
        # The runtime finished the create for a monitor that no shim waits for.
        containers = engine.root / "shim" / "containers"
        faults.wait_for(lambda: any(containers.glob("*/init.pid")), what="the init")

        faults.restart(engine)
        try:
            faults.wait_for(lambda: not faults.leftovers(engine), timeout=60,
                            what="the half-created container to go")
        except AssertionError:
            raise AssertionError(f"{faults.leftovers(engine)}\n{engine.logs()}") from None
        assert _check_clean(engine), engine.cli("system", "check", check=False).stdout
        assert engine.cli("ps", "-aq").stdout.strip() == ""
        engine.cli("create", "--name", "half", busybox_ref, "true")  # the name is free
        engine.cli("rm", "half")


def test_system_check_finds_and_repairs_what_one_service_lacks(busybox_ref: str) -> None:
    """What a crash could leave (made here by editing the gateway's records): a running
    container the gateway forgot (hidden: `ps -a` and `rm` cannot reach it) and a record
    of a container nobody else knows (lost). `system check` names both; `--repair`
    removes them, and the engine is left with nothing of either."""
    with Engine() as engine:
        engine.cli("pull", busybox_ref)
        hidden = engine.cli("run", "-d", busybox_ref, "sleep", "1000").stdout.split()[-1]
        kept = engine.cli("run", "-d", "--name", "kept", busybox_ref, "sleep", "1000"
                          ).stdout.split()[-1]
        lost = "f" * 64
        db = sqlite3.connect(engine.root / "gateway" / "gateway.db")
        with db:
            db.execute("DELETE FROM containers WHERE id = ?", (hidden,))
            db.execute("INSERT INTO containers SELECT ?, 'lost', image, image_id, created, "
                       "request, spec, entrypoint, cmd, runtime, auto_remove, stop_signal, "
                       "stop_timeout, bundle, ready FROM containers WHERE id = ?", (lost, kept))
        db.close()
        assert hidden not in engine.cli("ps", "-aq", "--no-trunc").stdout

        found = engine.cli("system", "check", check=False)
        assert found.returncode == 1
        assert f"container {hidden}: hidden: known to the shim and the image store" \
            in found.stdout, found.stdout
        assert f"container {lost}: lost:" in found.stdout, found.stdout
        assert "2 problem(s) found" in found.stderr and kept not in found.stdout

        repaired = engine.cli("system", "check", "--repair")
        assert "(removed)" in repaired.stdout and "2 problem(s) found and repaired" \
            in repaired.stdout, repaired.stdout
        assert engine.cli("system", "check").returncode == 0
        assert engine.cli("ps", "-q", "--no-trunc").stdout.split() == [kept]
        engine.cli("rm", "-f", "kept")
        assert not faults.leftovers(engine)
