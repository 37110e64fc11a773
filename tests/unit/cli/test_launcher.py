"""The `muelle` command that make setup writes: pip's entry point, without `site`."""

from __future__ import annotations

import subprocess
from pathlib import Path

from clients.cli import launcher


def test_the_written_command_runs_without_site(tmp_path: Path) -> None:
    target = tmp_path / "muelle"
    launcher.write(target)
    first = target.read_text().splitlines()[0]
    assert first.startswith("#!") and first.endswith(" -S")
    out = subprocess.run([str(target), "version", "--help"], capture_output=True, text=True,
                         cwd="/", check=True).stdout
    assert out.startswith("usage: muelle version")
    # and a module from site-packages is found (grpc, for exec -i and load)
    probe = target.read_text().replace("from clients.cli.main import main\nmain()\n",
                                       "import grpc, site, sys\nprint(sys.flags.no_site)\n")
    target.write_text(probe)
    assert subprocess.run([str(target)], capture_output=True, text=True, cwd="/",
                          check=True).stdout.strip() == "1"
