"""Shared fixtures: one real registry with test images, and whole muelle engines.

    registry      the real distribution registry on loopback (session-wide)
    busybox_ref   reference of a busybox image pushed to it ("127.0.0.1:P/demo/busybox:1")
    engine        a whole engine (four services) shared by a module's tests
    fresh_engine  a whole engine for one test

The session itself is checked too: the host's links, addresses, routes, netfilter rules,
mounts and cgroups must be the same after it as before it (tests/support/hostcheck.py);
a difference fails the run with a report. MUELLE_HOST_CHECK=0 turns the check off.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import hostcheck
from tests.support.engine import Engine
from tests.support.images import build_busybox_layout, push_layout
from tests.support.registry import LocalRegistry

# Tests build their own engines; settings meant for the host's engine must not leak in.
for _var in ("MUELLE_ROOT", "MUELLE_RUN", "MUELLE_HOST", "MUELLE_CONFIG"):
    os.environ.pop(_var, None)


_HOST = pytest.StashKey[tuple[hostcheck.Snapshot, hostcheck.Watch]]()


def pytest_sessionstart(session: pytest.Session) -> None:
    if os.environ.get("MUELLE_HOST_CHECK", "1") == "0":
        return
    watch = hostcheck.Watch().start()
    session.stash[_HOST] = (hostcheck.snapshot(), watch)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """After every fixture (the session's registry included) has been torn down."""
    if _HOST not in session.stash:
        return
    before, watch = session.stash[_HOST]
    others = watch.stop()
    diffs = hostcheck.compare(before, hostcheck.snapshot())
    if not diffs:
        return
    lines = hostcheck.report(diffs)
    names = hostcheck.claimed()
    factory = getattr(session.config, "_tmp_path_factory", None)
    if factory is not None and factory._basetemp is not None:  # tmp_path dirs of this run
        names.add(str(factory._basetemp))
    blamed = hostcheck.blamed(lines, names, contended=bool(others))
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    write = reporter.write_line if reporter else print
    if others:
        shown = [f"{pid} {cmd[:60]}" for pid, cmd in sorted(others.items())[:5]]
        write(f"host check: {len(others)} processes of other muelle engines or test sessions "
              f"ran on this host meanwhile ({'; '.join(shown)}{'; ...' * (len(others) > 5)}); "
              "a difference that such engines make is blamed on this session only when it "
              "names what this session made:")
        for line in blamed:
            write("  " + line)
        others_lines = [line for line in lines if line not in blamed]
        write(f"  ({len(others_lines)} more that other engines may have made or removed"
              + (f", e.g. {others_lines[0]})" if others_lines else ")"))
    else:
        write("host check: the session changed the host:")
        for line in lines:
            write("  " + line)
    if blamed:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() != 0:
        skip = pytest.mark.skip(reason="needs root: real namespaces, cgroups and mounts")
        for item in items:
            if "root" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    with LocalRegistry(tmp_path_factory.mktemp("registry")) as reg:
        yield reg


@pytest.fixture(scope="session")
def busybox_layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    layout = tmp_path_factory.mktemp("layouts") / "busybox"
    build_busybox_layout(layout, tag="1")
    return layout


@pytest.fixture(scope="session")
def busybox_ref(registry: LocalRegistry, busybox_layout: Path) -> str:
    ref = f"{registry.host}/demo/busybox:1"
    push_layout(busybox_layout, ref, tag="1")
    return ref


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    with Engine() as eng:
        yield eng


@pytest.fixture
def fresh_engine() -> Iterator[Engine]:
    with Engine() as eng:
        yield eng
