"""runtimes.py, monitor helpers and signal parsing: no runtime is executed here."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from services.core.config import Config, ShimConfig
from services.shim import monitor, runtimes
from services.shim.monitors import exec_error
from services.shim.runtimes import Runtime, Runtimes, error_text
from services.shim.shim import parse_signal
from vocab.errors import FailedPrecondition, InvalidArgument


def test_command_lines(tmp_path: Path) -> None:
    rt = Runtime("runc", "/usr/sbin/runc", tmp_path / "runc")
    assert rt.create_argv("c1", "/b", "/b/pid") == [
        "/usr/sbin/runc", "--root", str(tmp_path / "runc"), "create", "--bundle", "/b",
        "--pid-file", "/b/pid", "c1"]
    assert rt.delete_argv("c1", force=True)[-2:] == ["--force", "c1"]


def test_crun_wrapper_on_hybrid_hosts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtimes, "_hybrid", lambda: True)
    argv = Runtime("crun", "/usr/bin/crun", tmp_path).prefix()
    assert argv[:4] == ["unshare", "--mount", "--propagation", "private"]
    assert "umount" in argv[6] and argv[7:] == ["/usr/bin/crun", "--root", str(tmp_path)]
    monkeypatch.setattr(runtimes, "_hybrid", lambda: False)
    assert Runtime("crun", "/usr/bin/crun", tmp_path).prefix()[0] == "/usr/bin/crun"


def test_registry_of_runtimes(tmp_path: Path) -> None:
    fake = tmp_path / "myrt"
    fake.write_text("#!/bin/sh\necho 'myrt version 9'\n")
    fake.chmod(0o755)
    cfg = Config(root=tmp_path, run=tmp_path / "run",
                 shim=ShimConfig(default_runtime="mine", runtimes={"mine": str(fake)}))
    rts = Runtimes(cfg)
    rt = rts.get()
    assert rt.name == "mine" and rt.root == tmp_path / "run" / "runtime" / "mine"
    assert rt.version() == "myrt version 9"
    with pytest.raises(InvalidArgument):
        rts.get("nosuch")
    cfg.shim.runtimes["gone"] = str(tmp_path / "missing")
    with pytest.raises(FailedPrecondition):
        rts.get("gone")


def test_error_text() -> None:
    runc = ('time="2024-01-01T00:00:00Z" level=error msg="runc create failed: exec: '
            '\\"x\\": executable file not found in $PATH"\n')
    assert error_text(runc) == 'runc create failed: exec: "x": executable file not found in $PATH'
    assert error_text('{"msg": "boom", "level": "error"}\n') == "boom"
    crun = "executable file `nosuch` not found in $PATH: No such file or directory"
    assert "executable file not found" in exec_error(error_text(crun))


def test_exit_codes() -> None:
    assert monitor.exit_code(7 << 8) == 7
    assert monitor.exit_code(signal.SIGKILL) == 137
    assert monitor.exit_code(-1) == 255


def test_oom_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(monitor, "CGROUP", tmp_path)
    assert not monitor.oom_killed("/p/c")
    (tmp_path / "memory" / "p" / "c").mkdir(parents=True)
    (tmp_path / "memory" / "p" / "c" / "memory.oom_control").write_text(
        "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    assert monitor.oom_killed("/p/c")
    os.remove(tmp_path / "memory" / "p" / "c" / "memory.oom_control")
    (tmp_path / "p" / "c").mkdir(parents=True)
    (tmp_path / "p" / "c" / "memory.events").write_text("low 0\noom 2\noom_kill 0\n")
    assert not monitor.oom_killed("/p/c")


@pytest.mark.parametrize(("text", "num"), [("", 15), ("9", 9), ("KILL", 9), ("sigterm", 15),
                                           ("SIGUSR1", 10)])
def test_parse_signal(text: str, num: int) -> None:
    assert parse_signal(text, signal.SIGTERM) == num


@pytest.mark.parametrize("text", ["SIGNOPE", "0", "99", "-1"])
def test_bad_signal(text: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_signal(text, signal.SIGTERM)
