"""Writes the `muelle` command over pip's script: the same entry point, started with
``python -S``.

Without -S, every command first runs `site`: the venv's .pth files, and setuptools'
distutils hook among them, ~5 ms of a command that takes ~15 ms to reach its first call.
The paths `site` would add (site-packages, this checkout and its generated code) are set
by the script itself. `make setup` runs this after pip (which writes its own script again on
every install); without it, pip's script works as before.

    python -m clients.cli.launcher .venv/bin/muelle
"""

from __future__ import annotations

import os
import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

TEMPLATE = '''#!{python} -S
# Written by clients/cli/launcher.py (make setup): pip's script, started without `site`.
import sys
sys.path += {paths!r}
from clients.cli.main import main
main()
'''


def script(python: str, paths: list[str]) -> str:
    return TEMPLATE.format(python=python, paths=paths)


def write(target: Path) -> None:
    paths = [sysconfig.get_paths()["purelib"], str(REPO), str(REPO / "gen")]
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(script(sys.executable, paths))
    tmp.chmod(0o755)
    os.replace(tmp, target)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m clients.cli.launcher PATH")
    write(Path(sys.argv[1]))
