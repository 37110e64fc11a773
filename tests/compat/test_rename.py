"""`docker rename` against muelle's Docker API and a private dockerd: same exit codes and
messages (IDs masked), the new name everywhere, a rename event with the old name."""

from __future__ import annotations

import re
import time
import uuid

from tests.compat.conftest import DockerCli


def _rename_steps(docker: DockerCli, image: str, tag: str) -> list[tuple[int, str]]:
    a, b, other = f"a-{tag}", f"b-{tag}", f"o-{tag}"
    since = str(time.time() - 1)
    docker("run", "-d", "--name", a, image, "sleep", "100")
    docker("create", "--name", other, image, "true")
    try:
        steps = [("rename", a, b), ("rename", b, b), ("rename", b, other),
                 ("rename", f"nosuch-{tag}", "x"), ("rename", b, "bad name!")]
        seen = []
        for args in steps:
            proc = docker(*args, check=False)
            text = re.sub(r"[0-9a-f]{64}", "ID", proc.stderr.strip()).replace(tag, "T")
            seen.append((proc.returncode, text))
        names = docker("ps", "-a", "--format", "{{.Names}}", "--filter", f"name={tag}").stdout
        seen.append((0, " ".join(sorted(names.split())).replace(tag, "T")))
        events = docker("events", "--since", since, "--until", str(time.time() + 1),
                        "--filter", "event=rename", "--format",
                        "{{.Actor.Attributes.name}} {{.Actor.Attributes.oldName}}").stdout
        seen.append((0, events.replace(tag, "T").strip()))
        return seen
    finally:
        docker("rm", "-f", b, a, other, check=False)


def test_rename_as_on_dockerd(muelle_cli: DockerCli, dockerd_cli: DockerCli,
                              pulled: str) -> None:
    tag = uuid.uuid4().hex[:6]
    on_muelle = _rename_steps(muelle_cli, pulled, tag)
    on_dockerd = _rename_steps(dockerd_cli, pulled, tag)
    assert on_muelle[0] == (0, "")
    assert on_muelle[-2] == (0, "b-T o-T")
    assert on_muelle[-1] == (0, "b-T /a-T")
    assert on_muelle == on_dockerd
