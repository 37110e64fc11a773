"""run and create pull a missing image (--pull missing|always|never) and honour --platform
the way docker does: "Unable to find image", the pull's progress on stderr, a warning for
an image of another platform than the host's."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.engine import Engine
from tests.support.images import push_multi_platform
from tests.support.registry import LocalRegistry
from vocab.platform import host_arch

pytestmark = pytest.mark.root

HOST = host_arch()[0]
OTHER = "arm64" if HOST == "amd64" else "amd64"


@pytest.fixture(scope="module")
def multi(registry: LocalRegistry, tmp_path_factory: pytest.TempPathFactory) -> str:
    """An index with an amd64 and an arm64 image; `cat /etc/arch` says which ran."""
    tmp: Path = tmp_path_factory.mktemp("multi-run")
    return push_multi_platform(registry.url, tmp, "demo/multi-run:1")["ref"]


def test_run_pulls_a_missing_image_then_runs_it(engine: Engine, busybox_ref: str) -> None:
    first = engine.cli("run", "--rm", busybox_ref, "echo", "hi")
    assert first.stdout == "hi\n"
    assert first.stderr.startswith(f"Unable to find image '{busybox_ref}' locally\n")
    assert f"Status: Downloaded newer image for {busybox_ref}" in first.stderr
    assert busybox_ref.rsplit(":", 1)[0].split("/", 1)[1] in engine.cli("images").stdout
    again = engine.cli("run", "--rm", busybox_ref, "echo", "hi")
    assert (again.stdout, again.stderr) == ("hi\n", "")
    always = engine.cli("create", "--pull", "always", busybox_ref)
    assert f"Status: Image is up to date for {busybox_ref}" in always.stderr
    assert len(always.stdout.strip()) == 64  # stdout: the ID only, as without a pull


def test_pull_never_leaves_a_missing_image_missing(engine: Engine, multi: str) -> None:
    proc = engine.cli("create", "--pull=never", multi, check=False)
    assert proc.returncode == 125
    assert proc.stderr == f"Error response from daemon: No such image: {multi}\n"


def test_platform_of_pull_run_and_create(engine: Engine, multi: str) -> None:
    engine.cli("pull", "--platform", f"linux/{OTHER}", multi)
    other = engine.cli("run", "--rm", multi, "cat", "/etc/arch")
    assert other.stdout == OTHER
    assert other.stderr == (
        f"WARNING: The requested image's platform (linux/{OTHER}) does not match the "
        f"detected host platform (linux/{HOST}) and no specific platform was requested\n")
    # Asked for the host's platform, the stored one does not fit: pulled, then no warning.
    host = engine.cli("run", "--rm", "--platform", f"linux/{HOST}", multi, "cat", "/etc/arch")
    assert host.stdout == HOST
    assert host.stderr.startswith(f"Unable to find image '{multi}' locally\n")
    assert "WARNING" not in host.stderr
    never = engine.cli("create", "--pull", "never", "--platform", f"linux/{OTHER}", multi,
                       check=False)
    assert never.returncode == 125
    assert never.stderr == (
        f"Error response from daemon: image with reference {multi} was found but does not "
        f"match the specified platform: wanted linux/{OTHER}, actual: linux/{HOST}\n")


def test_an_unreachable_registry_is_named_not_the_engine(engine: Engine) -> None:
    """The registry could not be reached; muelle's services are fine and say so."""
    ref = "127.0.0.1:1/demo/nothing:1"  # port 1: nothing listens, refused at once
    pulled = engine.cli("pull", ref, check=False)
    assert pulled.returncode == 1
    assert pulled.stderr.startswith("Error response from daemon: cannot reach registry "
                                    "127.0.0.1:1: "), pulled.stderr
    assert "unavailable" not in pulled.stderr
    ran = engine.cli("run", "--rm", ref, "true", check=False)
    assert ran.returncode == 125
    assert ran.stderr.splitlines()[0] == f"Unable to find image '{ref}' locally"
    assert ran.stderr.splitlines()[-1] == pulled.stderr.strip()
