"""2. Runtime only, one prepared bundle: ``muelle-runtime run`` vs ``runc run`` vs ``crun run``.

Each runtime keeps its state in its own --root; each round uses a fresh container ID and
the foreground ``run`` deletes the container when ``true`` exits. crun goes through an
``unshare -m sh`` wrapper on cgroup v1 hybrid hosts (see sides.crun_argv), which adds one
fork+exec to its times; the result's meta says so.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.bench.bundle import prepare_bundle
from tests.bench.harness import Contender, Settings, emit, run_rounds, timed
from tests.bench.sides import (
    MARKS,
    RUNTIMES,
    crun_argv,
    require,
    run_quiet,
    runtime_argv,
    runtime_missing,
)
from tests.support.engine import cgroups_under, mounts_under, sweep

pytestmark = MARKS


@pytest.fixture(scope="module")
def workdir() -> Iterator[tuple[Path, str]]:
    """A bundle and a cgroup parent; afterwards no container, mount or cgroup is left."""
    base = Path(tempfile.mkdtemp(prefix="mu-rt-"))
    parent = f"muelle-bench-{uuid.uuid4().hex[:8]}"
    try:
        prepare_bundle(base / "bundle", ["true"], f"/{parent}/bench")
        yield base, parent
    finally:
        for name in RUNTIMES:
            _delete_leftovers(name, base / f"state-{name}")
        leftovers = sweep(base, parent)
        shutil.rmtree(base, ignore_errors=True)
        assert not leftovers, leftovers
        assert not mounts_under(base) and not cgroups_under(parent)


def _delete_leftovers(name: str, root: Path) -> None:
    if not root.exists() or runtime_missing(name):
        return
    with contextlib.suppress(subprocess.SubprocessError, OSError):
        listing = subprocess.run(runtime_argv(name, root, "list", "--format", "json"),
                                 capture_output=True, text=True, timeout=30).stdout
        for state in json.loads(listing or "[]") or []:
            subprocess.run(runtime_argv(name, root, "delete", "--force", state["id"]),
                           capture_output=True, timeout=30)


def runner(name: str, root: Path, bundle: Path) -> Callable[[], None]:
    ids = itertools.count()

    def action() -> None:
        run_quiet(runtime_argv(name, root, "run", "--bundle", str(bundle),
                               f"bench-{name}-{next(ids)}"))

    return action


def test_runtime_run_true(settings: Settings, workdir: tuple[Path, str]) -> None:
    base, _ = workdir
    contenders = []
    for name in RUNTIMES:
        if not settings.wants(name):
            continue
        reason = runtime_missing(name)
        if reason:
            pytest.skip(reason)
        contenders.append(Contender(name, timed(runner(name, base / f"state-{name}",
                                                       base / "bundle"))))
    wrapped = crun_argv()[0] == "unshare"
    meta = {"command": "<runtime> run --bundle B ID (args: true)",
            "crun_wrapper": "unshare -m sh (hybrid cgroup host)" if wrapped else "none"}
    result = run_rounds("runtime", require(contenders), pairs=settings.pairs,
                        warmup=settings.warmup, meta=meta)
    emit(result, settings)
