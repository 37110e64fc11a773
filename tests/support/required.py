"""Parts every test machine has, because ``make setup`` installs them (runc, crun, gcc,
muelle's own runtime, ...). A test needing one that is missing or broken fails with the
reason; it is never skipped or silently left out of a parametrisation, which would let a
broken part pass as green. Only what a kind of machine cannot have may skip, saying so.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

VENV_BIN = Path(sys.executable).parent


@functools.cache
def _check(name: str) -> tuple[str, str]:
    """(path, "") when ``name`` runs ``--version``; ("", why not) otherwise."""
    own = VENV_BIN / name
    path = str(own) if own.exists() else shutil.which(name)
    if path is None:
        return "", f"{name} is not installed (make setup installs it)"
    try:
        proc = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return "", f"{path} --version failed: {exc}"
    if proc.returncode != 0:
        return "", (f"{path} --version exited {proc.returncode}: "
                    f"{(proc.stderr or proc.stdout).strip()[-2000:]}")
    return path, ""


def tool(name: str) -> str:
    """The path of a required program that answers ``--version``, or the test fails."""
    path, why = _check(name)
    if not path:
        pytest.fail(f"required part missing or broken: {why}", pytrace=False)
    return path
