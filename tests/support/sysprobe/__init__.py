"""sysprobe: a static C program, built on this machine, that tries the system calls
Docker's seccomp profile decides about and prints ``name=result`` (``ok`` or an errno name).

    binary = build(tmp_path / "sysprobe")
    parse(output) -> {"clone3": "ENOSYS", "mount": "EPERM", ...}
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

SOURCE = Path(__file__).with_name("sysprobe.c")


def build(out: Path) -> Path:
    """Compile the probe statically (it runs in a busybox image with no libc)."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        raise RuntimeError("sysprobe needs gcc (apt-get install gcc libc6-dev)")
    subprocess.run([cc, "-static", "-O2", "-Wall", "-Werror", "-o", str(out), str(SOURCE)],
                   check=True, capture_output=True)
    return out


def parse(output: str) -> dict[str, str]:
    result = {}
    for line in output.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            result[key.strip()] = value.strip()
    return result
