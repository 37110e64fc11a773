"""The state store and status derivation, on a temp root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from services.runtime.store import State, Store, proc_start_time
from vocab.errors import AlreadyExists, InvalidArgument, NotFound


def test_reserve_save_load_remove(tmp_path: Path) -> None:
    store = Store(tmp_path / "root")
    store.reserve("c1")
    with pytest.raises(AlreadyExists):
        store.reserve("c1")
    me = os.getpid()
    state = State(id="c1", bundle="/b", pid=me, start_time=proc_start_time(me) or 0,
                  annotations={"k": "v"})
    store.save(state)
    assert store.load("c1") == state
    assert store.ids() == ["c1"]
    os.mkfifo(store.fifo("c1"))
    assert store.status(state) == "created"
    os.unlink(store.fifo("c1"))
    assert store.status(state) == "running"
    oci = state.oci("running")
    assert {"ociVersion", "id", "status", "pid", "bundle", "annotations"} <= set(oci)
    store.remove("c1")
    with pytest.raises(NotFound):
        store.load("c1")


def test_pid_reuse_is_stopped(tmp_path: Path) -> None:
    store = Store(tmp_path)
    me = os.getpid()
    state = State(id="c2", bundle="/b", pid=me, start_time=(proc_start_time(me) or 0) + 1)
    assert store.status(state) == "stopped"
    assert state.oci("stopped")["pid"] == 0


@pytest.mark.parametrize("bad", ["", "../x", "a/b", ".hidden", "x" * 200, "x\n"])
def test_bad_ids(tmp_path: Path, bad: str) -> None:
    with pytest.raises(InvalidArgument):
        Store(tmp_path).dir(bad)
