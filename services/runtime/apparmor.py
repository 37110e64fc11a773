"""process.apparmorProfile: refused where the host has no AppArmor, else set for the exec.

runc and crun refuse a profile they cannot apply; ignoring it would run the container
without the confinement its config asks for.
"""

from __future__ import annotations

import os

from vocab.errors import FailedPrecondition

ENABLED = "/sys/module/apparmor/parameters/enabled"
SECURITYFS = "/sys/kernel/security/apparmor"


def enabled() -> bool:
    """As runc's apparmor.IsEnabled: the module is on and its securityfs is there."""
    try:
        with open(ENABLED) as f:
            return f.read().startswith("Y") and os.path.isdir(SECURITYFS)
    except OSError:
        return False


def check(profile: str | None) -> None:
    """Before anything is made: a profile this host cannot apply is an error."""
    if profile and not enabled():
        raise FailedPrecondition(f"process.apparmorProfile {profile!r}: AppArmor is not "
                                 "enabled on this host")


def apply_on_exec(profile: str | None) -> None:
    """In the container, after pivot_root (its /proc): the next execve enters the profile."""
    if not profile:
        return
    for attr in ("/proc/self/attr/apparmor/exec", "/proc/self/attr/exec"):
        try:
            with open(attr, "w") as f:
                f.write(f"exec {profile}")
            return
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise FailedPrecondition(f"apparmor profile {profile!r}: {exc.strerror}") from None
    raise FailedPrecondition(f"apparmor profile {profile!r}: no /proc/self/attr to set it")
