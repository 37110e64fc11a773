"""waitfd.readable: works for fds past select's 1024 limit (a shim with ~1000 containers
holds one pidfd per monitor, so its new fds are that high)."""

from __future__ import annotations

import os
import resource
import select

import pytest

from services.shim.waitfd import readable

HIGH = 1500


def test_readable_with_an_fd_past_1024() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= HIGH:
        pytest.skip(f"this process may not open fd {HIGH}: its hard RLIMIT_NOFILE is {hard} "
                    "(the shim meets fds past 1024 only with a limit above 1024)")
    if soft != resource.RLIM_INFINITY and soft <= HIGH:
        resource.setrlimit(resource.RLIMIT_NOFILE, (HIGH + 1, hard))
    r, w = os.pipe()
    high = os.dup2(r, HIGH)
    try:
        with pytest.raises(ValueError, match="out of range"):
            select.select([high], [], [], 0)  # what the shim used, and failed with
        assert not readable(high, 0.01)
        os.write(w, b"x")
        assert readable(high, 0) and readable(high, None)
    finally:
        for fd in (r, w, high):
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
