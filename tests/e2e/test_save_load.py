"""save/load through the CLI: muelle -> muelle, skopeo's OCI archive -> muelle, and both
directions with a private Docker Engine (a dockerd that cannot start fails them)."""

from __future__ import annotations

import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.docker import Dockerd
from tests.support.engine import CLI, Engine

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def other() -> Iterator[Engine]:
    """A second, empty engine to load into."""
    with Engine() as eng:
        yield eng


@pytest.fixture
def empty(other: Engine) -> Engine:
    other.remove_all_containers()
    ids = other.cli("images", "-q", "--no-trunc").stdout.split()
    if ids:
        other.cli("rmi", "-f", *dict.fromkeys(ids))
    return other


def test_save_then_load_into_another_engine(engine: Engine, image: str, empty: Engine,
                                            tmp_path: Path) -> None:
    archive = tmp_path / "bb.tar"
    engine.cli("save", "-o", str(archive), image)
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert {"manifest.json", "index.json", "oci-layout", "repositories"} <= names
    out = empty.cli("load", "-i", str(archive)).stdout
    assert out == f"Loaded image: {image}\n"
    assert empty.cli("images", "-q").stdout == engine.cli("images", "-q").stdout
    assert "no problems found" in empty.cli("system", "check").stdout
    run = empty.cli("run", "--rm", image, "cat", "/etc/passwd", check=False)
    assert run.returncode == 0, run.stderr
    # Loaded the same way from stdin, again: nothing changes.
    with archive.open("rb") as f:
        again = subprocess.run([CLI, "load"], stdin=f, env=empty.env,
                               capture_output=True, text=True, check=True)
    assert again.stdout == out


def test_load_skopeo_oci_archive(busybox_ref: str, empty: Engine, tmp_path: Path) -> None:
    archive = tmp_path / "oci.tar"
    subprocess.run(["skopeo", "copy", "--src-tls-verify=false", f"docker://{busybox_ref}",
                    f"oci-archive:{archive}:{busybox_ref.rsplit('/', 1)[0]}/skopeo:7"],
                   check=True, capture_output=True)
    out = empty.cli("load", "-i", str(archive)).stdout
    assert out.startswith("Loaded image")
    assert "no problems found" in empty.cli("system", "check").stdout
    assert len(empty.cli("images", "-q").stdout.split()) == 1


def test_bad_archive_is_refused_cleanly(empty: Engine, tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar at all" * 100)
    proc = empty.cli("load", "-i", str(junk), check=False)
    assert proc.returncode == 1 and "not a valid image archive" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    missing = empty.cli("save", "-o", str(tmp_path / "x.tar"), "nope:1", check=False)
    assert missing.returncode == 1 and "no such image" in missing.stderr.lower()
    assert not (tmp_path / "x.tar").exists()
    assert empty.cli("images", "-q").stdout == ""


def test_docker_loads_muelle_save_and_muelle_loads_docker_save(
        engine: Engine, image: str, empty: Engine, dockerd: Dockerd, tmp_path: Path) -> None:
    ours = tmp_path / "muelle.tar"
    engine.cli("save", "-o", str(ours), image)
    loaded = dockerd.docker("load", "-i", str(ours)).stdout
    assert f"Loaded image: {image}" in loaded
    dockerd.docker("run", "--rm", "--network=none", image, "true")

    theirs = tmp_path / "docker.tar"
    dockerd.docker("tag", image, "127.0.0.1:1/demo/from-docker:2")
    dockerd.docker("save", "-o", str(theirs), "127.0.0.1:1/demo/from-docker:2")
    out = empty.cli("load", "-i", str(theirs)).stdout
    assert out == "Loaded image: 127.0.0.1:1/demo/from-docker:2\n"
    assert "no problems found" in empty.cli("system", "check").stdout
    run = empty.cli("run", "--rm", "127.0.0.1:1/demo/from-docker:2", "true", check=False)
    assert run.returncode == 0, run.stderr
