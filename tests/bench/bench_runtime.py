"""2. Runtime only, one prepared bundle: ``muelle-runtime run`` vs ``runc run`` vs ``crun run``;
and the runtime under other engines: ``docker run --rm --runtime muelle`` (dockerd
``--add-runtime``) and ``podman --runtime muelle-runtime run --rm`` vs the same with runc.

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
import statistics
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
    MUELLE_RUNTIME,
    RUNTIMES,
    crun_argv,
    require,
    run_quiet,
    runtime_argv,
    runtime_missing,
)
from tests.support.docker import Dockerd
from tests.support.engine import cgroups_under, mounts_under, sweep
from tests.support.podman import PODMAN, Podman

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


# Under other engines: muelle-runtime as dockerd's `--add-runtime` and podman's `--runtime`,
# against runc on the same engine (same daemon, same image, --network none on both sides:
# the runtime is what differs). Both engines are private (tests/support/docker.py, podman.py).

WRAPPED = "#!/bin/sh\n" \
    's=$(date +%s%N); "{real}" "$@"; rc=$?; e=$(date +%s%N)\n' \
    'echo "$((e - s)) $*" >> "{log}"; exit $rc\n'
VERBS = ("create", "start", "state", "kill", "delete", "run", "exec", "features", "--version")


@pytest.fixture(scope="module")
def wrappers() -> Iterator[Path]:
    """``<dir>/timed-<runtime>``: sh wrappers that log each invocation's wall time and argv
    to ``<dir>/<runtime>.log`` (for the per-verb breakdown only, never in timed rounds)."""
    base = Path(tempfile.mkdtemp(prefix="mu-rtw-"))
    try:
        for name, real in (("muelle", str(MUELLE_RUNTIME)), ("runc", shutil.which("runc"))):
            path = base / f"timed-{name}"
            path.write_text(WRAPPED.format(real=real, log=base / f"{name}.log"))
            path.chmod(0o755)
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def runtime_dockerd(wrappers: Path) -> Iterator[Dockerd]:
    # muelle's own runtime is the subject: missing, the set-up is broken (not a skip).
    assert not runtime_missing("muelle"), runtime_missing("muelle")
    with Dockerd(extra_args=(f"--add-runtime=muelle={MUELLE_RUNTIME}",
                             f"--add-runtime=timed-muelle={wrappers / 'timed-muelle'}",
                             f"--add-runtime=timed-runc={wrappers / 'timed-runc'}")) as d:
        yield d


@pytest.fixture(scope="module")
def runtime_podman() -> Iterator[Podman]:
    if shutil.which(PODMAN) is None:
        pytest.fail("podman is missing: `make setup` installs it (APT_PACKAGES)")
    with Podman(str(MUELLE_RUNTIME)) as p:
        yield p


def _breakdown(log: Path) -> dict[str, float]:
    """Median milliseconds per verb from a wrapper's log."""
    per: dict[str, list[float]] = {}
    for line in log.read_text().splitlines() if log.exists() else []:
        ns, *argv = line.split()
        verb = next((a for a in argv if a in VERBS), "?")
        per.setdefault(verb, []).append(int(ns) / 1e6)
    return {verb: round(statistics.median(ms), 1) for verb, ms in sorted(per.items())}


def _engine_rounds(name: str, settings: Settings, argv_for: Callable[[str], list[str]],
                   env: dict[str, str], meta: dict[str, object]) -> None:
    def action(argv: list[str]) -> Callable[[], None]:
        return lambda: run_quiet(argv, env=env)

    contenders = [Contender(rt, timed(action(argv_for(rt))))
                  for rt in ("muelle", "runc") if settings.wants(rt)]
    result = run_rounds(name, require(contenders), pairs=settings.pairs,
                        warmup=settings.warmup, meta=meta)
    emit(result, settings)


def test_under_dockerd(settings: Settings, runtime_dockerd: Dockerd, busybox_ref: str,
                       wrappers: Path) -> None:
    d = runtime_dockerd
    d.docker("pull", "-q", busybox_ref)

    def argv(runtime: str) -> list[str]:
        return d.argv("run", "--rm", "--runtime", runtime, "--network", "none", busybox_ref,
                      "true")

    breakdown = {}
    for rt in ("muelle", "runc"):  # untimed: where each side's time goes, per invocation
        for _ in range(settings.scaled(5, 1)):
            run_quiet(argv(f"timed-{rt}"), env=d.env())
        breakdown[rt] = _breakdown(wrappers / f"{rt}.log")
    _engine_rounds("runtime-under-dockerd", settings, argv, d.env(),
                   {"command": "docker run --rm --runtime R --network none IMAGE true",
                    "ms_per_invocation_median": breakdown})


def test_under_podman(settings: Settings, runtime_podman: Podman, busybox_ref: str) -> None:
    p = runtime_podman
    p.podman("pull", "--tls-verify=false", "-q", busybox_ref)

    def argv(runtime: str) -> list[str]:
        # podman's default nofile and nproc (1048576) are above this host's hard limits,
        # which runc refuses (muelle-runtime clamps): both sides get lower ones.
        full = p.argv("run", "--rm", "--ulimit", "nofile=1024:1024", "--ulimit",
                      "nproc=4096:4096", busybox_ref, "true")
        at = full.index("--runtime") + 1
        full[at] = str(MUELLE_RUNTIME) if runtime == "muelle" else str(shutil.which("runc"))
        return full

    _engine_rounds("runtime-under-podman", settings, argv, p.env(),
                   {"command": "podman --runtime R run --rm --network none --ulimit nofile,nproc "
                                "IMAGE true"})
