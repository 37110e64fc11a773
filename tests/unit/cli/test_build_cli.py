"""`muelle build`'s flags, context and output against a canned engine."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

from tests.unit.cli.test_render import IMG, cli, gateway

__all__ = ["gateway"]  # the fixture, used by name


def test_build_sends_the_context_and_options(gateway, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fake, host = gateway
    (tmp_path / "Dockerfile").write_text("FROM busybox\n")
    (tmp_path / "a.txt").write_text("a")
    other = tmp_path.parent / f"{tmp_path.name}-Dockerfile.alt"
    other.write_text("FROM busybox\n")
    iid = tmp_path.parent / f"{tmp_path.name}.iid"
    code, out, err = cli(host, "build", "-t", "x:1", "-t", "y", "--build-arg", "A=1",
                         "--label", "l=v", "--target", "t", "--no-cache", "--pull",
                         "-f", str(other), "--iidfile", str(iid), str(tmp_path))
    assert (code, err) == (0, "")
    assert out == f"Step 1/1 : FROM busybox\n ---> {IMG[7:19]}\n"
    assert iid.read_text() == IMG
    options, data = fake.calls[-1][1]
    assert list(options.tags) == ["x:1", "y"] and dict(options.build_args) == {"A": "1"}
    assert dict(options.labels) == {"l": "v"} and options.target == "t"
    assert options.no_cache and options.pull and not options.quiet
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = tar.getnames()
    # a Dockerfile outside the context travels under a generated name
    assert options.dockerfile.startswith(".dockerfile.") and options.dockerfile in names
    assert "a.txt" in names


def test_build_quiet_prints_only_the_id(gateway, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, host = gateway
    (tmp_path / "Dockerfile").write_text("FROM busybox\n")
    code, out, _ = cli(host, "build", "-q", str(tmp_path))
    assert (code, out) == (0, IMG + "\n")
    code, _, err = cli(host, "build", str(tmp_path / "missing"))
    assert code == 1 and "not found" in err


def test_build_leaves_out_what_dockerignore_ignores(gateway, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """As the docker CLI: ignored files are not sent; exceptions are; the Dockerfile and
    .dockerignore always are; an ignored directory is sent only for an exception below it."""
    fake, host = gateway
    ctx = tmp_path / "ctx"
    for rel in ("Dockerfile", "app.txt", "secret.key", "keep.log", "drop.log", "logs/a.log",
                "node_modules/m/index.js", "docs/keep.md", "docs/drop.txt",
                "deep/x/y/z.tmp", "deep/x/y/ok.txt"):
        (ctx / rel).parent.mkdir(parents=True, exist_ok=True)
        (ctx / rel).write_text(rel)
    (ctx / ".dockerignore").write_text("# comment\nsecret.key\n*.log\n!keep.log\nlogs\n"
                                       "node_modules\ndocs\n!docs/keep.md\n**/*.tmp\n"
                                       "Dockerfile\n.dockerignore\n")
    code, _, err = cli(host, "build", str(ctx))
    assert (code, err) == (0, "")
    options, data = fake.calls[-1][1]
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = sorted(n for n in tar.getnames() if n != ".")
    assert names == [".dockerignore", "Dockerfile", "app.txt", "deep", "deep/x", "deep/x/y",
                     "deep/x/y/ok.txt", "docs/keep.md", "keep.log"]


def test_build_sends_mtimes_in_whole_seconds(gateway, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """As the docker CLI (its archive truncates them): the COPY'd files' mtimes, and a
    plain header per file (no PAX block for a fraction of a second)."""
    fake, host = gateway
    (tmp_path / "Dockerfile").write_text("FROM busybox\n")
    (tmp_path / "a.txt").write_text("a")
    os.utime(tmp_path / "a.txt", (1_700_000_000.75, 1_700_000_000.75))
    code, _, err = cli(host, "build", "-q", str(tmp_path))
    assert (code, err) == (0, "")
    _, data = fake.calls[-1][1]
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: m for m in tar}
    assert members["a.txt"].mtime == 1_700_000_000
    assert all(m.pax_headers == {} for m in members.values())


def test_builder_prune_prints_what_docker_prints(gateway) -> None:  # type: ignore[no-untyped-def]
    fake, host = gateway
    code, out, err = cli(host, "builder", "prune", "-a", "-f")
    assert (code, err) == (0, "")
    assert out == f"Deleted build cache objects:\n{IMG}\n\nTotal reclaimed space: 1.5MB\n"
    assert fake.calls[-1][0] == "PruneBuildCache" and fake.calls[-1][1].all
