"""`docker diff` (GET /containers/{id}/changes) against muelle's Docker API and a private
dockerd: the same added, changed and deleted paths, nothing of the runtime's own."""

from __future__ import annotations

import uuid

from tests.compat.conftest import DockerCli

SCRIPT = "mkdir -p /tmp/new/dir && echo x > /tmp/new/dir/f && echo y >> /bin/added " \
         "&& rm /bin/true && ln -s /etc /tmp/link && chmod 700 /home 2>/dev/null; true"


def _diff(docker: DockerCli, image: str) -> tuple[str, str]:
    """`docker diff` of a container that changed things, and of one that did not run."""
    name = f"diff-{uuid.uuid4().hex[:6]}"
    docker("run", "--name", name, image, "sh", "-c", SCRIPT)
    fresh = f"fresh-{uuid.uuid4().hex[:6]}"
    docker("create", "--name", fresh, image, "true")
    try:
        return docker("diff", name).stdout, docker("diff", fresh).stdout
    finally:
        docker("rm", "-f", name, fresh)


def test_diff_as_on_dockerd(muelle_cli: DockerCli, dockerd_cli: DockerCli,
                            pulled: str) -> None:
    on_muelle = _diff(muelle_cli, pulled)
    on_dockerd = _diff(dockerd_cli, pulled)
    assert "A /tmp/new/dir/f" in on_muelle[0].splitlines()
    assert "D /bin/true" in on_muelle[0].splitlines()
    # dockerd lists in the order it walks its layer (directory order varies): as sets
    assert [sorted(x.splitlines()) for x in on_muelle] == \
        [sorted(x.splitlines()) for x in on_dockerd]


def test_diff_of_no_such_container(muelle_cli: DockerCli) -> None:
    proc = muelle_cli("diff", "nosuch-container", check=False)
    assert proc.returncode == 1
    assert "No such container: nosuch-container" in proc.stderr
