"""commit, export and import through the CLI, against a whole engine: a container's
changes (added, modified, deleted files, a replaced directory) survive into a committed
image and a rootfs export, and an imported export runs."""

from __future__ import annotations

import json
import subprocess
import tarfile
import threading
import time
from pathlib import Path

import pytest

from tests.support.engine import CLI, Engine

pytestmark = pytest.mark.root

CHANGES = ("echo changed > /etc/motd; echo new > /added; chmod 4755 /added; "
           "rm /etc/group; rm -rf /home; mkdir /home; echo only > /home/only")
# /etc/hostname, hosts and resolv.conf are every container's own (bind-mounted, as Docker's).
CHECK = ("cat /etc/motd /added /home/only; ls /home; stat -c %a /added; "
         "ls /etc | grep -v -x -e hostname -e hosts -e resolv.conf")


def test_commit_keeps_the_changes_and_the_config(engine: Engine, image: str) -> None:
    engine.cli("run", "--name", "to-commit", "-e", "FROM_RUN=1", "-w", "/home", image,
               "sh", "-c", CHANGES)
    try:
        image_id = engine.cli("commit", "-a", "tester", "-m", "a message", "to-commit",
                              "demo/committed:1").stdout.strip()
        assert image_id.startswith("sha256:")
        out = engine.cli("run", "--rm", "demo/committed:1", "sh", "-c", CHECK).stdout
        assert out.split("\n") == ["changed", "new", "only", "only", "4755", "motd",
                                   "passwd", ""]
        doc = json.loads(engine.cli("inspect", "demo/committed:1").stdout)[0]
        config = json.loads(engine.cli("inspect", image).stdout)[0]
        assert doc["Author"] == "tester"
        assert "FROM_RUN=1" in doc["Config"]["Env"]
        assert doc["Config"]["Cmd"] == ["sh", "-c", CHANGES]
        assert doc["Config"]["WorkingDir"] == "/home"
        assert doc["RootFS"]["Layers"][:-1] == config["RootFS"]["Layers"]
        assert "no problems found" in engine.cli("system", "check").stdout
    finally:
        engine.cli("rm", "-f", "to-commit", check=False)
        engine.cli("rmi", "demo/committed:1", check=False)


def test_export_then_import_runs(engine: Engine, image: str, tmp_path: Path) -> None:
    engine.cli("run", "--name", "to-export", image, "sh", "-c", CHANGES)
    try:
        archive = tmp_path / "rootfs.tar"
        engine.cli("export", "-o", str(archive), "to-export")
        with tarfile.open(archive) as tar:
            names = set(tar.getnames())
            assert tar.getmember("added").mode == 0o4755
        assert {"added", "etc/motd", "home/only", "bin/busybox"} <= names
        assert "etc/group" not in names and not [n for n in names if ".wh." in n]
        # stdout export equals the file; import from stdin
        piped = subprocess.run([CLI, "export", "to-export"], env=engine.env,
                               capture_output=True, check=True).stdout
        assert piped == archive.read_bytes()
        with archive.open("rb") as f:
            image_id = subprocess.run([CLI, "import", "-", "demo/imported:1"], stdin=f,
                                      env=engine.env, capture_output=True, text=True,
                                      check=True).stdout.strip()
        assert image_id.startswith("sha256:")
        out = engine.cli("run", "--rm", "demo/imported:1", "sh", "-c", CHECK).stdout
        assert out.split("\n") == ["changed", "new", "only", "only", "4755", "motd",
                                   "passwd", ""]
    finally:
        engine.cli("rm", "-f", "to-export", check=False)
        engine.cli("rmi", "demo/imported:1", check=False)


def test_change_on_commit_and_import(engine: Engine, image: str, tmp_path: Path) -> None:
    engine.cli("run", "--name", "to-change", image, "true")
    try:
        flags = ["--change", "ENV GREETING=hi", "-c", "CMD [\"sh\", \"-c\", \"echo $GREETING\"]",
                 "-c", "WORKDIR /tmp"]
        engine.cli("commit", *flags, "to-change", "demo/changed:1")
        assert engine.cli("run", "--rm", "demo/changed:1").stdout == "hi\n"
        archive = tmp_path / "rootfs.tar"
        engine.cli("export", "-o", str(archive), "to-change")
        engine.cli("import", *flags, str(archive), "demo/changed:2")
        assert engine.cli("run", "--rm", "demo/changed:2", "pwd").stdout == "/tmp\n"
        bad = engine.cli("commit", "-c", "RUN true", "to-change", "demo/changed:3", check=False)
        assert (bad.returncode, bad.stderr) == (
            1, "Error response from daemon: run is not a valid change command\n")
        assert "demo/changed  3" not in engine.cli("images").stdout
    finally:
        engine.cli("rm", "-f", "to-change", check=False)
        engine.cli("rmi", "demo/changed:1", "demo/changed:2", check=False)


def test_bad_input_is_one_error_line(engine: Engine, tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar at all" * 100)
    for args in (("import", str(junk), "demo/junk:1"), ("commit", "no-such-container"),
                 ("export", "-o", str(tmp_path / "x.tar"), "no-such-container")):
        proc = engine.cli(*args, check=False)
        assert proc.returncode == 1, args
        assert len(proc.stderr.splitlines()) == 1 and "Traceback" not in proc.stderr, args
    assert not (tmp_path / "x.tar").exists()
    assert "demo/junk" not in engine.cli("images").stdout


@pytest.mark.parametrize("flags, pauses", [([], True), (["--pause=false"], False)])
def test_commit_pauses_a_running_container(engine: Engine, image: str, flags: list[str],
                                           pauses: bool) -> None:
    """Docker's default: frozen while its layer is read, running again after; --pause=false
    leaves it running. A 48 MiB random file makes the commit last long enough to see."""
    cid = engine.cli("run", "-d", image, "sh", "-c",
                     "head -c 50331648 /dev/urandom > /big; echo done > /ready; sleep 60"
                     ).stdout.strip()
    seen: set[str] = set()
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            state = json.loads(engine.cli("inspect", cid).stdout)[0]["State"]
            seen.add(state["Status"])

    try:
        for _ in range(200):
            if engine.cli("exec", cid, "cat", "/ready", check=False).returncode == 0:
                break
            time.sleep(0.05)
        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            engine.cli("commit", *flags, cid, "demo/paused:1")
        finally:
            stop.set()
            watcher.join()
        assert ("paused" in seen) == pauses, seen
        state = json.loads(engine.cli("inspect", cid).stdout)[0]["State"]
        assert state["Status"] == "running" and not state["Paused"]
        size = engine.cli("run", "--rm", "demo/paused:1", "stat", "-c", "%s", "/big").stdout
        assert size.strip() == "50331648"
    finally:
        engine.cli("rm", "-f", cid, check=False)
        engine.cli("rmi", "demo/paused:1", check=False)


def test_commit_bad_pause_value(engine: Engine, image: str) -> None:
    proc = engine.cli("commit", "--pause=perhaps", "whatever", check=False)
    assert proc.returncode != 0 and "invalid boolean value 'perhaps'" in proc.stderr


def test_commit_resumes_after_a_failure_and_keeps_a_user_pause(engine: Engine,
                                                               image: str) -> None:
    """A commit that fails (a bad reference: the image store refuses it while the container
    is frozen) leaves it running; a container the user paused stays paused."""
    cid = engine.cli("run", "-d", image, "sh", "-c", "echo x > /f; sleep 60").stdout.strip()

    def state() -> dict[str, object]:
        found: dict[str, object] = json.loads(engine.cli("inspect", cid).stdout)[0]["State"]
        return found

    try:
        bad = engine.cli("commit", cid, "Not A/Valid::Ref", check=False)
        assert bad.returncode != 0 and len(bad.stderr.splitlines()) == 1, bad.stderr
        assert "Traceback" not in bad.stderr
        assert state()["Status"] == "running" and not state()["Paused"]
        engine.cli("pause", cid)
        engine.cli("commit", cid, "demo/userpaused:1")
        assert state()["Status"] == "paused" and state()["Paused"]
        engine.cli("unpause", cid)
        out = engine.cli("run", "--rm", "demo/userpaused:1", "cat", "/f").stdout
        assert out == "x\n"
    finally:
        engine.cli("rm", "-f", cid, check=False)
        engine.cli("rmi", "demo/userpaused:1", check=False)
