"""Another local user can neither list the engine's directories nor read its files
(issue 19, item 5: MUELLE_ROOT was 0755, gateway.db, config.json with the container's
environment and container.log 0644, rootfs and volume dirs listable) — for a new store,
and for one an older version left with wide modes, once the services restart."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from engine import launcher
from tests.support.engine import Engine

SECRET = "hunter2-not-for-nobody"
NOBODY = 65534

# Run as nobody: which of the given dirs it can list, which files it can read, and
# whether any readable file holds the secret.
PROBE = """
import json, os, sys
paths, secret = json.load(sys.stdin), sys.argv[1]
listable, readable, leaks = [], [], []
for path, is_dir in paths:
    try:
        if is_dir:
            os.listdir(path)
            listable.append(path)
        else:
            with open(path, "rb") as f:
                data = f.read(1 << 20)
            readable.append(path)
            if secret.encode() in data:
                leaks.append(path)
    except OSError:
        pass
print(json.dumps({"listable": listable, "readable": readable, "leaks": leaks}))
"""


def _paths(*tops: Path) -> list[tuple[str, bool]]:
    """Every dir and regular file below ``tops`` (as root sees them), mounts included."""
    out: list[tuple[str, bool]] = []
    for top in tops:
        out.append((str(top), True))
        for dirpath, dirs, files in os.walk(top):
            # The runtime's own state (services/runtime/store.py) is not this test's.
            dirs[:] = [d for d in dirs if Path(dirpath, d) != top / "runtime"]
            out += [(os.path.join(dirpath, d), True) for d in dirs]
            out += [(os.path.join(dirpath, f), False) for f in files
                    if Path(dirpath, f).is_file() and not Path(dirpath, f).is_symlink()]
    return out


def _as_nobody(engine: Engine) -> dict[str, list[str]]:
    paths = _paths(engine.root, engine.run)
    proc = subprocess.run(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
         "/usr/bin/python3", "-I", "-c", PROBE, SECRET],
        input=json.dumps(paths), capture_output=True, text=True, timeout=120, check=True)
    result: dict[str, list[str]] = json.loads(proc.stdout)
    assert len(paths) > 50  # the walk did see the store
    return result


def _assert_private(engine: Engine) -> None:
    seen = _as_nobody(engine)
    assert seen["leaks"] == []
    assert seen["listable"] == []
    # Pid files are all another user may read (they say which process serves).
    assert [p for p in seen["readable"] if not p.endswith(".pid")] == []


def _loosen_like_an_older_version(engine: Engine) -> None:
    """The modes the engine used to leave (a store made before this change)."""
    for path in _paths(engine.root, engine.run):
        name, is_dir = Path(path[0]), path[1]
        if "rootfs" in name.parts or "snapshots" in name.parts or "_data" in name.parts \
                or "upper" in name.parts:
            continue  # the containers' own files keep their modes
        if not name.is_symlink():
            # (a namespace file bind-mounted there refuses: it is not ours to change)
            with contextlib.suppress(PermissionError):
                os.chmod(name, 0o755 if is_dir else 0o644)


def test_another_user_reads_and_lists_nothing(fresh_engine: Engine, busybox_ref: str) -> None:
    engine = fresh_engine
    engine.cli("pull", busybox_ref)
    engine.cli("run", "-d", "--name", "plain", "-e", f"PASSWORD={SECRET}", "-v", "data:/data",
               busybox_ref, "sh", "-c", 'echo "$PASSWORD" > /data/p; echo "$PASSWORD"; '
               "exec sleep 300")
    engine.cli("run", "-d", "--name", "remapped", "--uidmap", "0:100000:65536",
               "-e", f"PASSWORD={SECRET}", "-v", "data2:/data", busybox_ref, "sleep", "300")
    assert SECRET in engine.cli("logs", "plain").stdout  # it is in the log to be found
    _assert_private(engine)

    # A store an older version made: its services tighten it when they start again.
    launcher.stop(engine.cfg)
    try:
        _loosen_like_an_older_version(engine)
        assert _as_nobody(engine)["leaks"]  # the check sees what it is meant to
    finally:
        launcher.start(engine.cfg, str(engine.config_file))  # the fixture's close needs it
    _assert_private(engine)

    # The remapped container still starts again (its root traverses its own dirs).
    engine.cli("restart", "remapped")
    assert engine.cli("exec", "remapped", "cat", "/etc/hostname").stdout.strip()


@pytest.fixture(autouse=True)
def _needs_setpriv() -> None:
    if not Path("/usr/bin/setpriv").exists():
        pytest.fail("setpriv (util-linux) is needed to check modes as another user")
