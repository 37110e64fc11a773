"""services/runtime/api.py, the runtime's library face: typed errors (told apart by type,
never by message text), the warm calls' JSON, the CLI's error lines, and the sealed-copy
rule for the verbs that go into a container. No container is made here."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.runtime import api
from services.runtime.store import State, Store
from services.shim.runtimes import NativeRuntime, Runtime
from vocab.errors import FailedPrecondition, InvalidArgument, NotFound


def _stopped(root: Path, cid: str = "c1") -> None:
    """State of a container whose init is gone (pid 0: stopped)."""
    store = Store(root)
    store.reserve(cid)
    store.save(State(cid, str(root / "bundle")))


def test_unknown_container_is_container_not_found(tmp_path: Path) -> None:
    rt = api.Runtime(tmp_path)
    with pytest.raises(api.ContainerNotFound, match="does not exist") as err:
        rt.state("nosuch")
    assert isinstance(err.value, NotFound)  # the core taxonomy: NOT_FOUND at an edge
    assert not rt.knows("nosuch")
    with pytest.raises(api.ContainerNotFound):
        rt.kill("nosuch", 15)


def test_a_stopped_container_is_not_running_to_kill_or_pause(tmp_path: Path) -> None:
    _stopped(tmp_path)
    rt = api.Runtime(tmp_path)
    assert rt.knows("c1") and rt.state("c1")["status"] == "stopped"
    with pytest.raises(api.NotRunning) as err:
        rt.kill("c1", 15)
    assert isinstance(err.value, FailedPrecondition)
    with pytest.raises(api.NotRunning):
        rt.pause("c1")
    assert [i["id"] for i in rt.list()] == ["c1"]


def test_the_shim_driver_keeps_not_running_typed(tmp_path: Path) -> None:
    """Before the face, NativeRuntime.kill raised a plain FailedPrecondition and the shim
    matched "not running" in its text."""
    _stopped(tmp_path / "muelle")
    native = NativeRuntime("muelle", "/nonexistent", tmp_path / "muelle")
    with pytest.raises(api.NotRunning, match="container c1 is not running"):
        native.kill("c1", 15)
    with pytest.raises(api.NotRunning, match="container gone is not running"):
        native.kill("gone", 15)
    assert native.state("gone") is None


def test_an_external_runtime_kill_is_told_apart_by_its_state(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """runc/crun: a failed kill is NotRunning when `state` says stopped (or knows nothing),
    whatever words the runtime's error uses."""
    fake = tmp_path / "fakert"
    fake.write_text("#!/bin/sh\n"
                    'case "$*" in *" kill "*) echo "oops: no such thing" >&2; exit 1;; '
                    '*" state "*) echo "{\\"status\\": \\"$STATUS\\"}";; esac\n')
    fake.chmod(0o755)
    rt = Runtime("fake", str(fake), tmp_path / "root")
    monkeypatch.setenv("STATUS", "stopped")
    with pytest.raises(api.NotRunning):
        rt.kill("c1", 15)
    monkeypatch.setenv("STATUS", "running")
    with pytest.raises(FailedPrecondition, match="fake kill: oops") as err:
        rt.kill("c1", 15)
    assert not isinstance(err.value, api.NotRunning)


def test_warm_calls_cross_as_json(tmp_path: Path) -> None:
    create = api.Create(str(tmp_path), "c1", "/b", "/b/pid", "/run/console.sock")
    delete = api.Delete(str(tmp_path), "c1", force=True)
    for call in (create, delete):
        assert api.decode(api.encode(call)) == call
    with pytest.raises(ValueError):
        api.decode('{"verb": "format-disk"}')


def test_describe_is_the_cli_line() -> None:
    assert api.describe(InvalidArgument("bad id")) == "bad id"
    assert api.describe(FileNotFoundError(2, "No such file or directory", "/x")) == \
        "No such file or directory: /x"
    assert api.describe(KeyError("k")) == "internal error: KeyError: 'k'"


def test_create_refuses_a_process_that_is_not_sealed(tmp_path: Path) -> None:
    """A library caller that was not started from a sealed copy (sealed_command) gets
    NotSealed and nothing is made: it is never re-executed from the face."""
    rt = api.Runtime(tmp_path)
    for verb in (lambda: rt.create("c1", str(tmp_path)), lambda: rt.run("c1", str(tmp_path)),
                 lambda: rt.exec("c1", str(tmp_path / "process.json"))):
        with pytest.raises(api.NotSealed):
            verb()
    assert not rt.knows("c1")


def test_a_spawned_call_exits_1_with_its_line(tmp_path: Path) -> None:
    err = tmp_path / "err"
    with open(err, "wb") as f, open(os.devnull, "rb") as null:
        child = api.spawn(api.Delete(str(tmp_path), "nosuch"), null.fileno(), f.fileno(),
                          f.fileno(), str(tmp_path))
    assert child.wait() == 1
    assert err.read_text() == "container 'nosuch' does not exist\n"


def test_the_face_loads_ctypes_only_for_linux() -> None:
    probe = ("import sys; from services.runtime import api; a = 'ctypes' in sys.modules; "
             "api.linux; print(a, 'ctypes' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout
    assert out == "False True\n"
