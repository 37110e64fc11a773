"""The native front of muelle-runtime (services/runtime/native/muelle-runtime.c, built by
make setup over pip's script): state, start, kill and delete answered in C must be what
the Python runtime answers, byte for byte but the time, on state a Python create made.

The same binary runs both paths: MUELLE_RUNTIME_FRONT=python hands every call to the
Python runtime, =native refuses to hand one over (exit 3), so a comparison can only pass
if the native path answered.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from tests.integration.runtime.bundle import edit
from tests.integration.runtime.conftest import MUELLE, PARENT, Runtime, _cgroup_dirs

TIME = re.compile(r'time[=":\s]+"?[0-9T:.+-]+Z"?')
HANDED_OVER = 3  # MUELLE_RUNTIME_FRONT=native: the front would have handed the call over


@pytest.fixture(autouse=True)
def _front_built() -> None:
    with open(MUELLE, "rb") as f:
        assert f.read(4) == b"\x7fELF", f"{MUELLE} is not the native front: run make setup"


def call(rt: Runtime, mode: str, *args: str, log: Path | None = None,
         fmt: str = "text") -> subprocess.CompletedProcess[str]:
    glob = ["--log-format", fmt] + (["--log", str(log)] if log else [])
    return subprocess.run([MUELLE, "--root", str(rt.root), *glob, *args],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                          env={**os.environ, "MUELLE_RUNTIME_FRONT": mode})


def outcome(proc: subprocess.CompletedProcess[str], log: Path | None = None) -> tuple[
        int, str, str, str]:
    logged = log.read_text() if log and log.exists() else ""
    return (proc.returncode, proc.stdout, TIME.sub("time", proc.stderr), TIME.sub("time", logged))


def same(rt: Runtime, tmp: Path, *args: str) -> tuple[int, str, str, str]:
    """Run a call that changes nothing (a query or a refusal) on both paths, in both log
    formats, with a --log file each: every answer must be the same."""
    first = None
    for fmt in ("text", "json"):
        got = {}
        for mode in ("native", "python"):
            log = tmp / f"{mode}-{fmt}-{len(list(tmp.iterdir()))}.log"
            got[mode] = outcome(call(rt, mode, *args, log=log, fmt=fmt), log)
        assert got["native"] == got["python"], args
        assert got["native"][0] != HANDED_OVER, got["native"]
        first = first or got["native"]
    assert first is not None
    return first


def created(rt: Runtime, rootfs: Path, cid: str, args: list[str] | None = None,
            annotations: dict[str, str] | None = None) -> int:
    bundle = rt.bundle(cid, args or ["sleep", "60"], rootfs)
    if annotations:
        edit(bundle, lambda cfg: cfg.update(annotations=annotations))
    code, err, pid_file = rt.create(cid, bundle)
    assert code == 0, err
    return int(pid_file.read_text())


def test_front_hands_over_what_it_does_not_answer(muelle: Runtime) -> None:
    for args in (["create", "--bundle", "/nonexistent", "x"], ["list"], ["--version"],
                 ["kill", "--all", "x"], ["state", "bad/id"], ["pause", "x"]):
        assert call(muelle, "native", *args).returncode == HANDED_OVER, args


def test_state_start_kill_as_python(muelle: Runtime, rootfs: Path, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    created(muelle, rootfs, "st", annotations={"a": "1", "quote\"é": "tab\there"})
    code, out, _, _ = same(muelle, logs, "state", "st")
    assert code == 0 and json.loads(out)["status"] == "created"
    assert json.loads(out)["annotations"] == {"a": "1", "quote\"é": "tab\there"}
    assert same(muelle, logs, "start", "nope")[0] == 1  # before start: nothing changes
    start = call(muelle, "native", "start", "st")
    assert start.returncode == 0, start.stderr
    code, out, _, _ = same(muelle, logs, "state", "st")
    assert json.loads(out)["status"] == "running"
    code, _, err, _ = same(muelle, logs, "start", "st")
    assert (code, err) == (1, "cannot start container st: it is running, not created\n")
    kill = call(muelle, "native", "kill", "st", "KILL")
    assert kill.returncode == 0, kill.stderr
    assert muelle.wait_status("st", "stopped") == "stopped"
    code, out, _, _ = same(muelle, logs, "state", "st")
    assert json.loads(out)["status"] == "stopped" and json.loads(out)["pid"] == 0
    code, _, err, _ = same(muelle, logs, "kill", "st")
    assert (code, err) == (1, "container st is not running\n")
    assert call(muelle, "native", "delete", "st").returncode == 0


def test_refusals_as_python(muelle: Runtime, rootfs: Path, tmp_path: Path) -> None:
    created(muelle, rootfs, "ref")
    for args in (["state", "nope"], ["start", "nope"], ["kill", "nope"], ["delete", "nope"],
                 ["delete", "-f", "nope"], ["kill", "ref", "FOO"], ["kill", "ref", "0"],
                 ["kill", "ref", "65"], ["kill", "ref", "SIGNOPE"]):
        code, out, err, logged = same(muelle, tmp_path, *args)
        assert code == 1 and not out and err and "level" in logged, (args, err, logged)
    code, _, err, _ = same(muelle, tmp_path, "delete", "ref")
    assert (code, err) == (1, "cannot delete container ref: it is created, not stopped "
                              "(use --force)\n")
    assert muelle.status("ref") == "created"  # refused: the container is untouched
    assert call(muelle, "native", "delete", "--force", "ref").returncode == 0


def test_signal_names_as_python(muelle: Runtime) -> None:
    """The front's table is Python's signal.Signals: every name parses (the call gets as
    far as the unknown container), with or without SIG, in any case."""
    names = list(signal.Signals.__members__)
    for name in names + [n.removeprefix("SIG").lower() for n in names] + ["9", "64", "009"]:
        proc = call(muelle, "native", "kill", "nope", name)
        assert proc.stderr == "container 'nope' does not exist\n", (name, proc.stderr)


@pytest.mark.parametrize("mode", ["native", "python"])
def test_lifecycle_logs_as_python(muelle: Runtime, rootfs: Path, tmp_path: Path,
                                  mode: str) -> None:
    """start, kill, delete (and delete --force of a running one) leave what Python leaves
    and log what it logs (compared with the log of the Python path, recorded alike)."""
    cid = f"life-{mode}"
    log = tmp_path / "log.json"
    created(muelle, rootfs, cid)
    for args in (["start", cid], ["kill", cid, "KILL"]):
        proc = call(muelle, mode, *args, log=log, fmt="json")
        assert proc.returncode == 0, proc.stderr
    assert muelle.wait_status(cid, "stopped") == "stopped"
    assert call(muelle, mode, "delete", cid, log=log, fmt="json").returncode == 0
    forced = f"forced-{mode}"
    init = created(muelle, rootfs, forced)
    assert call(muelle, mode, "start", forced).returncode == 0
    assert call(muelle, mode, "delete", "--force", forced, log=log,
                fmt="json").returncode == 0
    for gone in (cid, forced):
        assert not (muelle.root / gone).exists()
        assert not _cgroup_dirs(f"{PARENT}/{gone}")
    assert not os.path.exists(f"/proc/{init}") or _zombie(init)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    for line in lines:
        line.pop("time")
        line["container"] = line["container"].replace(mode, "M")
        line.pop("pid", None)
    assert lines == [{"event": "started", "container": "life-M", "level": "info"},
                     {"event": "deleted", "container": "life-M", "level": "info"},
                     {"event": "deleted", "container": "forced-M", "level": "info"}]


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_hooks_go_to_python(muelle: Runtime, rootfs: Path, tmp_path: Path) -> None:
    """poststart and poststop hooks run in Python: the front hands start (with poststart
    hooks) and delete (with poststop hooks) over, and keeps the others (Docker gives every
    container a prestart hook)."""
    out = tmp_path / "hook.out"

    def hook(name: str) -> dict[str, object]:
        return {"path": "/bin/sh", "args": ["sh", "-c", f"echo $0 >> {out}", name]}

    cases = (("pre", {"prestart": [hook("prestart-pre")], "poststop": []}, 0, 0),
             ("both", {"poststart": [hook("poststart-both")],
                       "poststop": [hook("poststop-both")]}, HANDED_OVER, HANDED_OVER),
             ("stop", {"poststart": [], "poststop": [hook("poststop-stop")]}, 0, HANDED_OVER))
    for cid, hooks, start, delete in cases:
        bundle = muelle.bundle(cid, ["sleep", "60"], rootfs)
        edit(bundle, lambda cfg, hooks=hooks: cfg.update(hooks=hooks))
        code, err, _ = muelle.create(cid, bundle)
        assert code == 0, err
        assert call(muelle, "native", "start", cid).returncode == start, cid
        if start == HANDED_OVER:
            assert call(muelle, "", "start", cid).returncode == 0
        assert call(muelle, "native", "delete", "-f", cid).returncode == delete, cid
        if delete == HANDED_OVER:
            assert call(muelle, "", "delete", "-f", cid).returncode == 0
    assert sorted(out.read_text().split()) == ["poststart-both", "poststop-both",
                                               "poststop-stop", "prestart-pre"]


def test_failing_start_container_hook_as_python(muelle: Runtime, rootfs: Path,
                                                tmp_path: Path) -> None:
    """A startContainer hook that fails: the init writes "E" and the hook's error on the
    fifo, and start fails with it, on either path (the front answers: no poststart)."""
    answers = {}
    for mode in ("native", "python"):
        cid = f"hook-{mode}"
        bundle = muelle.bundle(cid, ["true"], rootfs)
        edit(bundle, lambda cfg: cfg.update(hooks={"startContainer": [
            {"path": "/bin/sh", "args": ["sh", "-c", "echo 'bad – news' >&2; exit 4"]}]}))
        code, err, _ = muelle.create(cid, bundle)
        assert code == 0, err
        log = tmp_path / f"{mode}.json"
        answers[mode] = outcome(call(muelle, mode, "start", cid, log=log, fmt="json"), log)
        assert call(muelle, "native", "delete", "--force", cid).returncode == 0
    assert answers["native"] == answers["python"]
    code, _, err, _ = answers["native"]
    assert code == 1 and "startContainer hook /bin/sh exited 4" in err, err
