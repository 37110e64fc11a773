"""`docker cp` into a container (PUT /containers/{id}/archive) against muelle's Docker API
and a private dockerd: the same files, modes, owners and errors; a symlink in the container
never lets a copy write outside its root."""

from __future__ import annotations

import uuid
from pathlib import Path

from tests.compat.conftest import DockerCli

LIST = "cd /in && find . | sort | while read f; do stat -c '%n %A %u:%g' \"$f\"; " \
       "[ -f \"$f\" ] && [ ! -L \"$f\" ] && cat \"$f\"; done; true"


def _copies(docker: DockerCli, image: str, src: Path, host_dir: Path) -> list[object]:
    name = f"cpin-{uuid.uuid4().hex[:6]}"
    docker("run", "-d", "--name", name, image, "sh", "-c",
           f"mkdir /in && ln -s {host_dir} /in/esc && exec sleep 1000")
    seen: list[object] = []
    try:
        for args in ((str(src), f"{name}:/in/tree"), (str(src / "a"), f"{name}:/in/"),
                     (str(src / "a"), f"{name}:/in/esc/"), (str(src), f"{name}:/in/esc"),
                     (str(src / "a"), f"{name}:/nosuch/dir/")):
            proc = docker("cp", *args, check=False)
            seen.append((proc.returncode,
                         proc.stderr.replace(name, "C").replace(str(src), "SRC").strip()))
        seen.append(docker("exec", name, "sh", "-c", LIST).stdout)
    finally:
        docker("rm", "-f", name)
    return seen


def test_cp_into_a_container_as_on_dockerd(muelle_cli: DockerCli, dockerd_cli: DockerCli,
                                            pulled: str, tmp_path: Path,
                                            host_dir: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a").write_text("alpha\n")
    (src / "a").chmod(0o600)
    (src / "sub" / "b").write_text("beta\n")
    (src / "link").symlink_to("a")
    on_muelle = _copies(muelle_cli, pulled, src, host_dir)
    on_dockerd = _copies(dockerd_cli, pulled, src, host_dir)
    assert [p.name for p in host_dir.iterdir()] == ["secret"]  # nothing written through the link
    assert on_muelle[0] == (0, "")
    assert "./tree/a -rw------- 0:0\nalpha" in str(on_muelle[-1])
    assert on_muelle == on_dockerd
