"""process.* of config.json: executable lookup, env, rlimits, user and cwd."""

from __future__ import annotations

import os
import resource

from services.runtime import linux
from vocab.errors import FailedPrecondition, InvalidArgument
from vocab.platform import DEFAULT_PATH

TYPE_CHECKING = False  # mypy treats TYPE_CHECKING as true wherever it is defined
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Warn = Callable[[str], None]


def env_dict(env: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in env:
        key, _, value = item.partition("=")
        if key:
            out[key] = value
    return out


def lookup(arg0: str, env: dict[str, str]) -> str:
    """Resolve args[0] like execvp does (call after pivot_root); Go-style error text."""
    if "/" in arg0:
        if os.path.isfile(arg0) and os.access(arg0, os.X_OK):
            return arg0
        raise FailedPrecondition(f'exec: "{arg0}": stat {arg0}: no such file or directory'
                                 if not os.path.exists(arg0)
                                 else f'exec: "{arg0}": permission denied')
    for directory in env.get("PATH", DEFAULT_PATH).split(":"):
        candidate = os.path.join(directory or ".", arg0)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise FailedPrecondition(f'exec: "{arg0}": executable file not found in $PATH')


def rlimit_number(name: str) -> int:
    attr = getattr(resource, name, None)
    if not name.startswith("RLIMIT_") or not isinstance(attr, int):
        raise InvalidArgument(f"unknown rlimit {name!r}")
    return attr


def _rlim(value: Any) -> int:
    """OCI writes unlimited as the uint64 RLIM_INFINITY; Python's setrlimit takes -1."""
    number = int(value)
    return resource.RLIM_INFINITY if number >= (1 << 64) - 1 else number


def set_rlimits(rlimits: list[dict[str, Any]], warn: Warn) -> None:
    for rl in rlimits:
        num = rlimit_number(rl.get("type", ""))
        soft, hard = _rlim(rl.get("soft", 0)), _rlim(rl.get("hard", 0))
        try:
            resource.setrlimit(num, (soft, hard))
        except (ValueError, OSError) as exc:
            # Without CAP_SYS_RESOURCE a limit cannot be raised above the current hard one.
            cur_hard = resource.getrlimit(num)[1]
            if cur_hard != resource.RLIM_INFINITY and hard > cur_hard:
                warn(f"rlimit {rl['type']} {soft}/{hard} above hard limit {cur_hard}: "
                     f"clamped ({exc})")
                resource.setrlimit(num, (min(soft, cur_hard), cur_hard))
            else:
                raise FailedPrecondition(f"setrlimit {rl['type']}: {exc}") from None


def oom_score_adj(value: int, warn: Warn) -> None:
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(value))
    except OSError as exc:
        if not linux.is_eperm(exc):
            raise
        warn(f"oom_score_adj {value}: {exc.strerror}")


def switch_user(user: dict[str, Any]) -> None:
    """setgroups, setgid, setuid (capabilities survive via PR_SET_KEEPCAPS)."""
    uid, gid = int(user.get("uid", 0)), int(user.get("gid", 0))
    linux.setgroups([int(g) for g in user.get("additionalGids") or []])
    os.setgid(gid)
    if uid != 0:
        linux.prctl(linux.PR_SET_KEEPCAPS, 1)
    os.setuid(uid)
    if "umask" in user:
        os.umask(int(user["umask"]))


def chdir(cwd: str, make: bool = True) -> None:
    """Enter the process's cwd (made if missing, as runc does for the init) and check it
    is inside the container: a cwd such as /proc/self/fd/N of a directory fd leaked by a
    caller would otherwise be a host directory (getcwd fails for a cwd not under "/")."""
    if make:
        os.makedirs(cwd, exist_ok=True)
    os.chdir(cwd)
    try:
        os.getcwd()
    except FileNotFoundError:
        raise FailedPrecondition(f"cwd {cwd!r} is outside the container's root") from None


def home(env: dict[str, str], uid: int) -> None:
    """Like runc: set HOME from /etc/passwd when the config does not."""
    if "HOME" in env:
        return
    try:
        with open("/etc/passwd") as f:
            for line in f:
                fields = line.rstrip("\n").split(":")
                if len(fields) >= 6 and fields[2] == str(uid):
                    env["HOME"] = fields[5]
                    return
    except OSError:
        pass
    env["HOME"] = "/"


def default_signals() -> None:
    """Every signal back to its default action and unblocked, right before execve: the
    ones we ignore (Python ignores SIGPIPE and SIGXFSZ, the monitor SIGHUP and SIGINT)
    would stay ignored across exec, and a shell cannot even trap a signal that was
    ignored when it started (SIGINT from `kill -s INT` or --sig-proxy would be lost)."""
    # _signal (builtin): after pivot_root the host's stdlib is out of reach.
    import _signal

    for sig in _signal.valid_signals():
        if sig in (_signal.SIGKILL, _signal.SIGSTOP):
            continue
        try:
            _signal.signal(sig, _signal.SIG_DFL)
        except (OSError, ValueError):
            continue
    _signal.pthread_sigmask(_signal.SIG_SETMASK, [])
