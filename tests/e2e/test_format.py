"""--format and --filter of ps, images and inspect (the Go-template subset docker users
write), the pre-defined host and none networks, `system df -v` with volumes."""

from __future__ import annotations

import json

import pytest

from tests.support.engine import Engine

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def two(engine: Engine, image: str) -> tuple[str, str]:
    """A running container labelled tier=web with a volume, an exited one tier=db."""
    web = engine.cli("run", "-d", "--name", "fmt-web", "-l", "tier=web", "-v",
                     "fmt-data:/data", "-p", "127.0.0.1::80", image, "sleep",
                     "300").stdout.strip()
    db = engine.cli("run", "--name", "fmt-db", "-l", "tier=db", image, "sh", "-c",
                    "exit 3", check=False)
    assert db.returncode == 3
    return web, engine.cli("inspect", "-f", "{{.Id}}", "fmt-db").stdout.strip()


def test_ps_format_and_filters(engine: Engine, two: tuple[str, str]) -> None:
    web, db = two
    out = engine.cli("ps", "-a", "--filter", "label=tier", "--format",
                     '{{.Names}} {{.State}} {{.Label "tier"}} {{.ID}}').stdout
    assert sorted(out.splitlines()) == [f"fmt-db exited db {db[:12]}",
                                        f"fmt-web running web {web[:12]}"]
    # a status filter lists stopped containers without -a, as docker's does
    assert engine.cli("ps", "-q", "--filter", "status=exited",
                      "--filter", "name=^fmt-").stdout.split() == [db[:12]]
    assert engine.cli("ps", "-aq", "--no-trunc", "-f", "exited=3").stdout.split() == [db]
    assert engine.cli("ps", "-aq", "-f", "label=tier=web").stdout.split() == [web[:12]]
    table = engine.cli("ps", "--filter", "id=" + web[:8], "--format",
                       "table {{.ID}}\\t{{.Names}}\\t{{.Status}}").stdout.splitlines()
    assert table[0] == "CONTAINER ID   NAMES     STATUS"
    assert table[1].startswith(f"{web[:12]}   fmt-web   Up ")
    row = json.loads(engine.cli("ps", "-f", "name=fmt-web", "--format", "json").stdout)
    assert row["Names"] == "fmt-web" and row["Labels"] == "tier=web"
    assert (row["Networks"], row["Mounts"], row["LocalVolumes"]) == ("bridge", "fmt-data", "1")
    port = engine.cli("port", "fmt-web", "80").stdout.split()[0]  # 127.0.0.1:NNNNN
    assert row["Ports"] == f"{port}->80/tcp"
    default = engine.cli("ps", "-f", "name=fmt-web").stdout.splitlines()
    assert default[0].split()[-2:] == ["PORTS", "NAMES"] and f"{port}->80/tcp" in default[1]


def test_images_format_and_filters(engine: Engine, image: str) -> None:
    repo, tag = image.rsplit(":", 1)
    out = engine.cli("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    assert image in out
    assert engine.cli("images", "-q", "-f", "dangling=true").stdout == ""
    found = engine.cli("images", "--filter", "reference=*/demo/busybox:*", "--format",
                       "{{.Tag}} {{.ID}}").stdout.split()
    assert found[0] == tag and len(found[1]) == 12
    header = engine.cli("images", "--format", "table {{.Repository}}\\t{{.Size}}").stdout
    assert header.splitlines()[0].split() == ["REPOSITORY", "SIZE"]


def test_inspect_format(engine: Engine, image: str, two: tuple[str, str]) -> None:
    web, _ = two
    got = engine.cli("inspect", "-f", "{{.State.Status}} {{json .Config.Labels}} "
                     "{{range .Mounts}}{{.Name}}:{{.Destination}}{{end}}", "fmt-web",
                     "fmt-db").stdout
    assert got.splitlines() == ['running {"tier":"web"} fmt-data:/data',
                                'exited {"tier":"db"} ']
    assert engine.cli("inspect", "--format", "{{.Os}}/{{.Architecture}}", image).stdout \
        .strip().startswith("linux/")
    # docker's shape: what the image config lacks is null
    doc = json.loads(engine.cli("inspect", "--type", "image", image).stdout)[0]
    assert doc["Config"]["Labels"] is None and doc["GraphDriver"]["Name"]
    bad = engine.cli("inspect", "-f", "{{.State.Status", web, check=False)
    assert bad.returncode != 0 and "template parsing error" in bad.stderr
    missing = engine.cli("inspect", "--type", "container", image, check=False)
    assert missing.returncode == 1 and f"Error: No such container: {image}" in missing.stderr


def test_predefined_networks(engine: Engine) -> None:
    names = [line.split()[1] for line in engine.cli("network", "ls").stdout.splitlines()[1:]]
    assert names[:3] == ["bridge", "host", "none"]
    none = json.loads(engine.cli("network", "inspect", "none").stdout)[0]
    assert none["Name"] == "none" and none["Driver"] == "null"
    rm = engine.cli("network", "rm", "host", check=False)
    assert rm.returncode == 1
    assert "host is a pre-defined network and cannot be removed" in rm.stderr


def test_system_df_verbose_lists_volumes(engine: Engine, two: tuple[str, str]) -> None:
    engine.cli("exec", "fmt-web", "sh", "-c", "head -c 100000 /dev/zero > /data/blob")
    out = engine.cli("system", "df", "-v").stdout
    assert any(line.startswith("Local Volumes ") for line in out.splitlines()[:5]), out
    section = out.split("Local Volumes space usage:")[1]
    row = next(line.split() for line in section.splitlines() if line.startswith("fmt-data"))
    assert row[1] == "1" and row[2].endswith("kB"), row
