"""core/memfile.py: scratch files with no name in any filesystem."""

from __future__ import annotations

import os
import subprocess
import tempfile

import pytest

from services.core.memfile import memfile


def test_a_memfile_reads_back_what_a_child_wrote_and_has_no_path() -> None:
    with memfile("child-stderr") as f:
        subprocess.run(["sh", "-c", "echo from the child >&2"], stderr=f.fileno(),
                       check=True)
        f.seek(0)
        assert f.read() == b"from the child\n"
        assert os.readlink(f"/proc/self/fd/{f.fileno()}").startswith("/memfd:child-stderr")


def test_no_temp_dir_is_probed(monkeypatch: pytest.MonkeyPatch) -> None:
    # tempfile's probe of /tmp (a named file, created and removed) is what a process
    # killed at the wrong moment left behind.
    def probe() -> str:
        raise AssertionError("tempfile looked for a temp dir")

    monkeypatch.setattr(tempfile, "gettempdir", probe)
    monkeypatch.setattr(tempfile, "_get_default_tempdir", probe)
    with memfile("x") as f:
        f.write(b"bytes")
        f.seek(0)
        assert f.read() == b"bytes"
