"""A full disk (issue 19, item 2): the engine's root is a small tmpfs that the test fills.

Stop and kill work on it, a container that fills it gets its exit status recorded and
`run --rm` removes it, and whatever cannot be written is RESOURCE_EXHAUSTED with one line
that says what (never "internal error"), with nothing half-recorded."""

from __future__ import annotations

import contextlib
import errno
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.engine import Engine

pytestmark = pytest.mark.root

# A TERM trap: `stop` must deliver the signal and the exit code (3) must be recorded.
TRAPPED = 'trap "echo stopping; exit 3" TERM; echo up; while :; do sleep 0.1; done'


@pytest.fixture(scope="module")
def small(busybox_ref: str) -> Iterator[Engine]:
    # No reserve for pulls (1 GiB by default): this disk is to be filled to the last byte.
    with Engine(root_size="48m", extra_config="[imagestore]\nmin_free_bytes = 0\n") as eng:
        eng.cli("pull", busybox_ref)
        yield eng


@contextlib.contextmanager
def disk_full(engine: Engine) -> Iterator[Path]:
    """Fill the engine's root to the last byte; free it again on leaving."""
    path = engine.root / "filler"
    chunk = b"\0" * (1 << 20)
    with open(path, "wb", buffering=0) as f:
        for size in (1 << 20, 4096, 1):  # down to the last page (tmpfs) or byte
            try:
                while True:
                    f.write(chunk[:size])
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
    try:
        st = os.statvfs(engine.root)
        assert st.f_bavail == 0
        yield path
    finally:
        path.unlink()


def _state(engine: Engine, name: str) -> dict:
    return json.loads(engine.cli("inspect", name).stdout)[0]["State"]


def _wait_logged(engine: Engine, name: str, text: str) -> None:
    engine.cli("logs", name)  # the CLI waits nothing; poll the log a bounded number of times
    for _ in range(400):
        if text in engine.cli("logs", name).stdout:
            return
    raise AssertionError(f"{name} never logged {text!r}")


def _one_clear_line(proc: object, *words: str) -> str:
    err = proc.stderr.strip()  # type: ignore[attr-defined]
    assert proc.returncode != 0, proc  # type: ignore[attr-defined]
    assert len(err.splitlines()) == 1, err
    assert "internal error" not in err and "Traceback" not in err and "Errno" not in err, err
    assert "no space left on device: could not write" in err, err
    for word in words:
        assert word in err, err
    return err


def test_stop_kill_and_rm_work_on_a_full_disk(small: Engine, busybox_ref: str) -> None:
    names = [f"full-{os.getpid()}-{n}" for n in range(4)]
    for name in names:
        small.cli("run", "-d", "--name", name, busybox_ref, "sh", "-c", TRAPPED)
    try:
        for name in names:
            _wait_logged(small, name, "up")
        with disk_full(small):
            small.cli("stop", "-t", "20", names[0])
            small.cli("kill", names[1])
            small.cli("kill", "-s", "TERM", names[2])
            assert small.cli("wait", names[1]).stdout.strip() == "137"
            assert small.cli("wait", names[2]).stdout.strip() == "3"
            state = _state(small, names[0])
            assert state["Running"] is False and state["ExitCode"] == 3, state
            assert "stopping" in small.cli("logs", names[0]).stdout
            # rm works too (it is what frees space), with a fourth container to remove.
            extra = small.cli("ps", "-q").stdout.split()
            assert len(extra) == 1  # names[3], still running
            small.cli("rm", "-f", names[3])
        # The exit statuses outlive the full disk; so does a later start.
        assert [_state(small, n)["ExitCode"] for n in names[:3]] == [3, 137, 3]
        small.cli("start", names[0])
        _wait_logged(small, names[0], "up\nstopping\nup")
    finally:
        small.cli("rm", "-f", *names, check=False)
    assert small.cli("ps", "-aq").stdout.strip() == ""
    assert small.cli("system", "check").returncode == 0


def test_run_rm_that_fills_the_disk_keeps_its_exit_status(small: Engine,
                                                          busybox_ref: str) -> None:
    # dd fails when the disk is full; the shell then reports and exits 7. Its messages
    # find no room in the log either: dropped, not fatal.
    proc = small.cli("run", "--rm", busybox_ref, "sh", "-c",
                     "dd if=/dev/zero of=/fill bs=1M; echo filled; exit 7", check=False)
    assert proc.returncode == 7, (proc.stdout, proc.stderr)
    assert "monitor exited without recording" not in proc.stderr
    assert small.cli("ps", "-aq").stdout.strip() == ""
    st = os.statvfs(small.root)
    assert st.f_bavail > st.f_blocks // 2  # the container's writable layer went with it
    assert small.cli("system", "check").returncode == 0


def test_what_cannot_be_written_is_resource_exhausted(small: Engine,
                                                      busybox_ref: str) -> None:
    small.cli("create", "--name", "kept", busybox_ref, "true")
    try:
        with disk_full(small):
            before = small.cli("ps", "-aq").stdout.split()
            _one_clear_line(small.cli("create", busybox_ref, "true", check=False))
            _one_clear_line(small.cli("tag", busybox_ref, "full/tag:1", check=False))
            _one_clear_line(small.cli("run", "-d", busybox_ref, "true", check=False))
            # Nothing half-recorded: no new container, no new tag, the old one intact.
            assert small.cli("ps", "-aq").stdout.split() == before
            assert "full/tag" not in small.cli("images").stdout
        assert small.cli("system", "check").returncode == 0
        assert small.cli("start", "-a", "kept").returncode == 0
    finally:
        small.cli("rm", "-f", "kept", check=False)
    assert small.cli("ps", "-aq").stdout.strip() == ""
