"""Fault injection: kill -9 of a service at a seeded random point of pull, run, rm, exec
or commit, then restart, and the engine must converge to a consistent state.

Each round: a container to act on; one operation (pull, run -d, run --rm, rm -f, exec,
commit) started through the CLI; one of the services it goes through (registry,
imagestore, shim, gateway) killed -9 a random moment into it; the operation's outcome
noted; the service started again. Then, within a bound:
- `system check` is clean: no corrupted or missing blob, snapshot or record, and no
  container that only some of gateway, shim and image store know (hidden or lost);
- every container a command reported as made is listed (`ps -a`), a running one still
  runs; nothing is listed that no command may have made;
- once every container is removed: no process, mount, cgroup, veth, DNAT rule, IP lease,
  shim dir or writable layer is left.

    MUELLE_FAULT_ROUNDS=100 MUELLE_FAULT_SEED=7 pytest tests/faults/test_kill9.py -s

Rounds default to 10 (`make test`); the seed to a fixed one, so a failure reproduces. The
counts are printed at the end (`-s` shows them).
"""

from __future__ import annotations

import collections
import json
import os
import random
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.support import faults
from tests.support.engine import CLI, Engine
from tests.support.images import Entry, Layer, build_layout, busybox_layer, push_layout
from tests.support.registry import LocalRegistry

pytestmark = pytest.mark.root

ROUNDS = int(os.environ.get("MUELLE_FAULT_ROUNDS", "10"))
SEED = int(os.environ.get("MUELLE_FAULT_SEED", "19"))
# The services each operation goes through: one of them is killed.
INVOLVED = {
    "pull": ("gateway", "imagestore", "registry"),
    "run": ("gateway", "imagestore", "shim"),
    "run --rm": ("gateway", "imagestore", "shim"),
    "rm": ("gateway", "imagestore", "shim"),
    "exec": ("gateway", "shim"),
    "commit": ("gateway", "imagestore", "shim"),
}
OPERATIONS = tuple(INVOLVED)
CONVERGE = 60.0  # seconds for the engine to settle after a restart


@dataclass
class Tally:
    durations: dict[str, float] = field(default_factory=dict)  # of each op, unfaulted
    rounds: int = 0
    ops: collections.Counter[str] = field(default_factory=collections.Counter)
    kills: collections.Counter[str] = field(default_factory=collections.Counter)
    failed_ops: int = 0  # operations the kill made fail (each must fail cleanly)
    containers: int = 0  # containers made and checked
    corrupted_blobs: int = 0
    lost_containers: int = 0
    hidden_containers: int = 0
    leaks: int = 0


@pytest.fixture(scope="module")
def pull_ref(registry: LocalRegistry, tmp_path_factory: pytest.TempPathFactory) -> str:
    """An image with a layer of its own (4 MiB of random bytes: a pull takes a while)."""
    layout = tmp_path_factory.mktemp("layouts") / "pullme"
    data = random.Random(SEED).randbytes(4 << 20)
    build_layout(layout, [busybox_layer(), Layer([Entry("data", "dir"),
                                                  Entry("data/blob", data=data)])], tag="1")
    ref = f"{registry.host}/faults/pullme:1"
    push_layout(layout, ref, tag="1")
    return ref


@pytest.fixture(scope="module")
def engine(busybox_ref: str) -> Iterator[Engine]:
    with Engine() as eng:
        eng.cli("pull", busybox_ref)
        yield eng


def _container(engine: Engine, image: str) -> str:
    return engine.cli("run", "-d", image, "sleep", "1000").stdout.split()[-1]


def _command(op: str, image: str, pull_ref: str, target: str, n: int) -> list[str]:
    return {
        "pull": ["pull", pull_ref],
        "run": ["run", "-d", image, "sleep", "1000"],
        "run --rm": ["run", "--rm", image, "sh", "-c", "echo ran; sleep 0.1"],
        "rm": ["rm", "-f", target],
        "exec": ["exec", target, "sh", "-c", f"echo {n} > /tmp/round"],
        "commit": ["commit", target, f"faults/commit:r{n}"],
    }[op]


def _ids(engine: Engine, *args: str) -> set[str]:
    return set(engine.cli("ps", "-q", "--no-trunc", *args).stdout.split())


def _paused(engine: Engine, cid: str) -> bool:
    state = json.loads(engine.cli("inspect", cid).stdout)[0]["State"]
    return bool(state["Paused"])


def _settle(engine: Engine, image: str) -> str:
    """Wait until every service answers through the gateway and `system check` is clean;
    the check's output if it never is."""
    deadline = time.monotonic() + CONVERGE
    out = ""
    while time.monotonic() < deadline:
        pulled = engine.cli("pull", image, check=False)  # gateway, imagestore, registry
        check = engine.cli("system", "check", check=False)
        if pulled.returncode == 0 and check.returncode == 0:
            return ""
        out = f"pull: {pulled.stderr.strip()}\ncheck: {check.stdout}{check.stderr}"
        time.sleep(0.2)
    return out


def _timed(engine: Engine, image: str, pull_ref: str) -> dict[str, float]:
    """How long each operation takes here without a fault (the CLI's start included):
    kills land uniformly within it."""
    out = {}
    for op in OPERATIONS:
        target = _container(engine, image)
        _prepare(engine, op, pull_ref, target)
        began = time.monotonic()
        engine.cli(*_command(op, image, pull_ref, target, -1))
        out[op] = time.monotonic() - began
        engine.cli("rm", "-f", *_ids(engine, "-a"), check=False)
        engine.cli("rmi", "-f", "faults/commit:r-1", check=False)
    return out


def _prepare(engine: Engine, op: str, pull_ref: str, target: str) -> None:
    if op == "pull":  # its own layer must be fetched again
        engine.cli("rmi", "-f", pull_ref, check=False)
    if op == "commit":  # a layer that takes a while to read (the container is paused)
        engine.cli("exec", target, "dd", "if=/dev/urandom", "of=/data", "bs=1M", "count=8")


def _round(engine: Engine, rng: random.Random, op: str, image: str, pull_ref: str, n: int,
           tally: Tally) -> None:
    victim = rng.choice(INVOLVED[op])
    delay = rng.uniform(0, tally.durations[op])
    made = {_container(engine, image)}  # something to exec in, commit, remove
    target = next(iter(made))
    _prepare(engine, op, pull_ref, target)
    removed: set[str] = set()
    maybe_removed: set[str] = set()  # the rm's reply was lost
    proc = subprocess.Popen([CLI, *_command(op, image, pull_ref, target, n)], env=engine.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    faults.kill9(engine, victim)
    tally.kills[victim] += 1
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError(f"round {n}: `{op}` hung after {victim} was killed") from None
    ok = proc.returncode == 0
    if not ok:
        tally.failed_ops += 1
        assert "Traceback" not in err and "internal error" not in err, (n, op, victim, err)
    if op == "run" and ok:
        made.add(out.split()[-1])
    if op == "rm":
        (removed if ok else maybe_removed).add(target)
    faults.restart(engine)

    context = f"round {n}: {op}, {victim} killed {delay * 1000:.0f} ms in (exit {proc.returncode})"
    problems = _settle(engine, image)
    if problems:
        tally.corrupted_blobs += problems.count("blob ")
        tally.hidden_containers += problems.count("hidden")
        tally.lost_containers += problems.count("lost")
        raise AssertionError(f"{context}: did not converge:\n{problems}\n{engine.logs()}")
    if op == "commit":  # thawed by the commit, or its retries, or the next start
        faults.wait_for(lambda: not any(_paused(engine, c) for c in _ids(engine)),
                        timeout=CONVERGE, what=f"{context}: the committed container to thaw")
    if op == "run --rm":  # removed once it exits: by the attach, or a watcher, or restore
        faults.wait_for(lambda: not _ids(engine, "-a") - made, timeout=CONVERGE,
                        what=f"{context}: the --rm container to go")
    listed = _ids(engine, "-a")
    running = _ids(engine)
    expected = made - removed - maybe_removed
    lost = expected - listed
    # A run whose reply was lost may have made its container (then it is listed, which is
    # fine: not hidden); nothing else may appear.
    unexpected = listed - made
    if op == "run" and not ok and len(unexpected) <= 1:
        unexpected = set()
    # Running, not stopped, and not paused either (a commit pauses while it reads).
    stopped = (expected & listed) - running
    stopped |= {c for c in expected & running if _paused(engine, c)}
    if lost or unexpected or stopped:
        tally.lost_containers += len(lost) + len(stopped)
        raise AssertionError(f"{context}: lost {lost}, not running {stopped}, "
                             f"unexpected {unexpected}\n{engine.logs()}")
    tally.containers += len(listed)
    if listed:
        engine.cli("rm", "-f", *listed)
    if op == "commit":
        engine.cli("rmi", "-f", f"faults/commit:r{n}", check=False)
    try:
        faults.wait_for(lambda: not faults.leftovers(engine), timeout=30, what="no leftovers")
    except AssertionError:
        tally.leaks += 1
        raise AssertionError(f"{context}: left {faults.leftovers(engine)}\n{engine.logs()}"
                             ) from None
    tally.rounds += 1


def test_kill9_at_random_points_converges(engine: Engine, busybox_ref: str,
                                          pull_ref: str) -> None:
    rng = random.Random(SEED)
    tally = Tally(durations=_timed(engine, busybox_ref, pull_ref))
    try:
        # Every operation once in each run of len(OPERATIONS) rounds, in a seeded order.
        ops = [op for _ in range(0, ROUNDS, len(OPERATIONS))
               for op in rng.sample(OPERATIONS, len(OPERATIONS))]
        for n, op in enumerate(ops[:ROUNDS]):
            tally.ops[op] += 1
            _round(engine, rng, op, busybox_ref, pull_ref, n, tally)
    finally:
        times = ", ".join(f"{op} {t * 1000:.0f} ms" for op, t in tally.durations.items())
        print(f"\nfault rounds (seed {SEED}; unfaulted {times}): {tally.rounds} of {ROUNDS} "
              f"passed; operations {dict(sorted(tally.ops.items()))}; kills "
              f"{dict(sorted(tally.kills.items()))}; operations failed by the kill "
              f"{tally.failed_ops}; containers checked {tally.containers}; corrupted blobs "
              f"{tally.corrupted_blobs}; lost containers {tally.lost_containers}; hidden "
              f"containers {tally.hidden_containers}; rounds with leaks {tally.leaks}")
    assert tally.rounds == ROUNDS

