"""Benchmark fixtures: settings, a private dockerd, a muelle engine, images loaded into both.

Benchmarks live in ``bench_*.py`` files, which pytest collects only when it is pointed at
this directory (``make bench`` = ``pytest -q -s tests/bench``); ``make test`` ignores it.
A fixture skips with a reason only when its side truly cannot run here (the muelle
services have not been written yet); dockerd is required (make setup installs docker.io),
and a side that exists but fails is an error. Shared session fixtures (``registry``,
``busybox_ref``) come from tests/conftest.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import launcher
from tests.bench.harness import Settings, settings_from_env
from tests.bench.sides import ENGINE_MODULES, muelle_missing
from tests.support.docker import Dockerd, started
from tests.support.engine import Engine

BENCH_DIR = Path(__file__).resolve().parent


def _pointed_here(config: pytest.Config) -> bool:
    # Only collect benchmarks when the run names this directory (or something in it), so a
    # plain `pytest tests` without --ignore still never runs them.
    for arg in config.args:
        path = (config.invocation_params.dir / str(arg).split("::", 1)[0]).resolve()
        if path == BENCH_DIR or BENCH_DIR in path.parents:
            return True
    return False


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    if (file_path.suffix == ".py" and file_path.name.startswith("bench_")
            and file_path.parent == BENCH_DIR and _pointed_here(parent.config)
            # pytest itself collects a file named on the command line
            and not parent.session.isinitpath(file_path)):
        module: pytest.Module = pytest.Module.from_parent(parent, path=file_path)
        return module
    return None


@pytest.fixture(scope="session")
def settings() -> Settings:
    if os.geteuid() != 0:
        pytest.skip("benchmarks need root: real containers, dockerd, runtimes")
    try:
        return settings_from_env()
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from exc


@pytest.fixture(scope="session")
def dockerd(settings: Settings) -> Iterator[Dockerd]:
    """A private Docker Engine for the session (installed with apt-get when missing), with a
    bridge of its own: `docker run` gets a veth by default, as a muelle container does."""
    daemon = started()
    try:
        yield daemon
    finally:
        daemon.close()


@pytest.fixture(scope="session")
def docker_busybox(dockerd: Dockerd, busybox_ref: str) -> str:
    """The busybox test image, pulled into the private dockerd from the local registry."""
    dockerd.docker("pull", "-q", busybox_ref)
    return busybox_ref


def _engine(settings: Settings, combined: bool,
            services: tuple[str, ...] = launcher.ORDER) -> Iterator[Engine]:
    """A whole muelle engine for the session; skipped while its services do not exist."""
    reason = muelle_missing(*ENGINE_MODULES)
    if reason:
        pytest.skip(reason)
    with Engine(default_runtime=settings.runtime, combined=combined,
                services=services) as engine:
        yield engine


@pytest.fixture(scope="session")
def muelle_engine(settings: Settings) -> Iterator[Engine]:
    yield from _engine(settings, combined=False)


@pytest.fixture(scope="session")
def muelle_docker_engine(settings: Settings) -> Iterator[Engine]:
    """An engine with its Docker API (muelle-dockerapi), for the docker clients."""
    yield from _engine(settings, combined=False, services=launcher.ALL)


@pytest.fixture(scope="session")
def muelle_combined_engine(settings: Settings) -> Iterator[Engine]:
    """The four services in one process (muelle-engine)."""
    yield from _engine(settings, combined=True)


@pytest.fixture(scope="session")
def muelle_combined_busybox(muelle_combined_engine: Engine, busybox_ref: str) -> str:
    muelle_combined_engine.cli("pull", busybox_ref)
    return busybox_ref


@pytest.fixture(scope="session")
def muelle_busybox(muelle_engine: Engine, busybox_ref: str) -> str:
    """The busybox test image, pulled into the session's muelle engine."""
    muelle_engine.cli("pull", busybox_ref)
    return busybox_ref
