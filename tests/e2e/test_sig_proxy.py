"""--sig-proxy: signals sent to an attached `muelle run`/`attach` reach the container."""

from __future__ import annotations

import json
import signal
import subprocess

import pytest

from tests.support.engine import CLI, Engine

pytestmark = pytest.mark.root

TRAPPER = ('trap "echo got-term; exit 7" TERM; trap "echo got-int; exit 8" INT; '
           'echo ready; while true; do sleep 0.1; done')


def _start(engine: Engine, *args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([CLI, *args], env=engine.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    return proc


@pytest.mark.parametrize("sig, text, code", [(signal.SIGTERM, "got-term", 7),
                                             (signal.SIGINT, "got-int", 8)])
def test_run_forwards_signals(engine: Engine, image: str, sig: signal.Signals, text: str,
                              code: int) -> None:
    name = f"sigproxy-{sig.name.lower()}"
    proc = _start(engine, "run", "--name", name, image, "sh", "-c", TRAPPER)
    try:
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
        assert out.strip() == text and proc.returncode == code, err
    finally:
        proc.kill()
        proc.wait()
        engine.cli("rm", "-f", name)


def test_attach_forwards_signals(engine: Engine, image: str) -> None:
    # The container ticks; the first tick the attached CLI prints shows it is attached, and
    # its signal proxy is set up before it attaches (no sleep standing in for either).
    ticker = 'trap "echo got-term; exit 7" TERM; while true; do echo tick; sleep 0.2; done'
    cid = engine.cli("run", "-d", image, "sh", "-c", ticker).stdout.strip()
    proc = subprocess.Popen([CLI, "attach", "--no-stdin", cid], env=engine.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "tick\n"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        assert "got-term" in out and proc.returncode == 7, err
    finally:
        proc.kill()
        proc.wait()
        engine.cli("rm", "-f", cid)


def test_no_sig_proxy(engine: Engine, image: str) -> None:
    proc = _start(engine, "run", "--name", "no-sigproxy", "--sig-proxy=false", image,
                  "sh", "-c", TRAPPER)
    try:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGTERM  # the CLI died, the container did not
        state = json.loads(engine.cli("inspect", "no-sigproxy").stdout)[0]["State"]
        assert state["Status"] == "running"
    finally:
        proc.kill()
        proc.wait()
        engine.cli("rm", "-f", "no-sigproxy")


def test_bad_sig_proxy_value(engine: Engine, image: str) -> None:
    proc = engine.cli("run", "--sig-proxy=maybe", image, "true", check=False)
    assert proc.returncode == 125 and "invalid boolean value 'maybe'" in proc.stderr


def _masks(text: str) -> dict[str, int]:
    return {line.split(":")[0]: int(line.split(":")[1], 16) for line in text.splitlines()}


# Signals 1-31. 32 and 33 are the C library's own (NPTL): one ignored in the environment
# that starts the engine (a CI runner's is) passes through runc and crun as well.
STANDARD = (1 << 31) - 1


@pytest.mark.parametrize("runtime", ["muelle", "runc", "crun"])
def test_processes_start_with_default_signal_handling(engine: Engine, image: str,
                                                     runtime: str) -> None:
    """Nothing ignored or blocked (a shell cannot trap a signal ignored when it started),
    for the container's process and an exec'd one."""
    probe = ["grep", "-E", "^Sig(Ign|Blk):", "/proc/self/status"]
    out = _masks(engine.cli("run", "--rm", "--runtime", runtime, image, *probe).stdout)
    assert out["SigBlk"] == 0 and out["SigIgn"] & STANDARD == 0, out
    cid = engine.cli("run", "-d", "--runtime", runtime, image, "sleep", "30").stdout.strip()
    try:
        out = _masks(engine.cli("exec", cid, *probe).stdout)
        assert out["SigBlk"] == 0 and out["SigIgn"] & STANDARD == 0, out
    finally:
        engine.cli("rm", "-f", cid)


def test_run_forwards_the_other_signals(engine: Engine, image: str) -> None:
    """HUP, USR1, USR2, QUIT reach the process one by one; the CLI keeps streaming."""
    script = ('for s in HUP USR1 USR2 QUIT; do trap "echo got-$s" $s; done; '
              'trap "echo got-TERM; exit 9" TERM; echo ready; while true; do sleep 0.1; done')
    proc = _start(engine, "run", "--rm", "--name", "sigproxy-others", image, "sh", "-c",
                  script)
    assert proc.stdout is not None
    try:
        for sig in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGQUIT):
            proc.send_signal(sig)
            assert proc.stdout.readline() == f"got-{sig.name[3:]}\n"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        assert out == "got-TERM\n" and proc.returncode == 9, err
    finally:
        proc.kill()
        proc.wait()
        engine.cli("rm", "-f", "sigproxy-others", check=False)


def test_start_attach_forwards_signals(engine: Engine, image: str) -> None:
    """docker start -a proxies too (no flag), when the container has no tty."""
    engine.cli("create", "--name", "sigproxy-start", image, "sh", "-c", TRAPPER)
    proc = _start(engine, "start", "-a", "sigproxy-start")
    try:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        assert out.strip() == "got-term" and proc.returncode == 7, err
    finally:
        proc.kill()
        proc.wait()
        engine.cli("rm", "-f", "sigproxy-start")


def test_no_proxy_with_a_tty(engine: Engine, image: str) -> None:
    """With -t the pty delivers ctrl-c; a signal to the CLI is not forwarded (docker)."""
    proc = _start(engine, "run", "-t", "--name", "sigproxy-tty", image, "sh", "-c",
                  TRAPPER.replace("echo ready", "stty -onlcr; echo ready"))
    try:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGTERM
        state = json.loads(engine.cli("inspect", "sigproxy-tty").stdout)[0]["State"]
        assert state["Status"] == "running"
    finally:
        proc.kill()
        proc.wait()
        engine.cli("rm", "-f", "sigproxy-tty")
