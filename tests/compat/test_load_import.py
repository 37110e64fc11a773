"""`docker load` and `docker import` against muelle's Docker API and a private dockerd:
archives of Docker's `docker save` and muelle's both ways, the same output and exit codes,
the config `--change` makes on import and commit,
bodies larger than the API's JSON limit passed on as they arrive (also `docker cp` into a
container), bad archives refused in-band with nothing stored, a client that hangs up
mid-body leaves nothing behind."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import socket
import subprocess
import tarfile
import time
import uuid
from pathlib import Path

import docker as docker_py
import pytest

from tests.compat.conftest import DockerCli
from tests.compat.test_http import request
from tests.support.engine import Engine

BIG = 12 * 1024 * 1024  # more than the 8 MiB a JSON body may have


def _image_ids(engine: Engine) -> list[str]:
    _, _, body = request(engine, "GET", "/images/json?all=1")
    return sorted(image["Id"] for image in json.loads(body))


def _tags(cli: DockerCli, ref: str, *names: str) -> None:
    for name in names:
        cli("tag", ref, name)


def _saved_by_dockerd(dockerd_cli: DockerCli, ref: str, archive: Path, *names: str) -> Path:
    """``ref`` tagged ``names`` on dockerd, saved to ``archive``, the tags removed again."""
    _tags(dockerd_cli, ref, *names)
    dockerd_cli("save", "-o", str(archive), *names)
    dockerd_cli("rmi", *names)
    return archive


def test_load_of_dockerds_save_prints_what_dockerd_prints(
        muelle_cli: DockerCli, dockerd_cli: DockerCli, pulled: str, tmp_path: Path) -> None:
    repo = f"ld-{uuid.uuid4().hex[:6]}"
    names = (f"{repo}:one", f"{repo}:two")
    archive = _saved_by_dockerd(dockerd_cli, pulled, tmp_path / "saved.tar", *names)
    on_dockerd = dockerd_cli("load", "-i", str(archive))
    on_muelle = muelle_cli("load", "-i", str(archive))
    try:
        assert on_muelle.stdout == on_dockerd.stdout == (
            f"Loaded image: {names[0]}\nLoaded image: {names[1]}\n")
        assert muelle_cli("run", "--rm", names[1], "echo", "loaded").stdout == "loaded\n"
        assert (muelle_cli("inspect", "-f", "{{.Id}}", names[0]).stdout
                == dockerd_cli("inspect", "-f", "{{.Id}}", names[0]).stdout)
    finally:
        muelle_cli("rmi", *names, check=False)
        dockerd_cli("rmi", *names, check=False)


def test_dockerd_loads_what_muelle_saves_and_muelle_loads_it_back_from_stdin(
        muelle_cli: DockerCli, dockerd_cli: DockerCli, pulled: str, tmp_path: Path) -> None:
    name = f"ld-{uuid.uuid4().hex[:6]}:back"
    _tags(muelle_cli, pulled, name)
    archive = tmp_path / "muelle.tar"
    muelle_cli("save", "-o", str(archive), name)
    muelle_cli("rmi", name)
    try:
        assert dockerd_cli("load", "-i", str(archive)).stdout == f"Loaded image: {name}\n"
        with archive.open("rb") as stdin:  # `docker load < file`: the body from stdin
            proc = subprocess.run([muelle_cli.binary, "load"], env=muelle_cli.env,
                                  stdin=stdin, capture_output=True, text=True, timeout=60)
        assert (proc.returncode, proc.stdout) == (0, f"Loaded image: {name}\n")
    finally:
        muelle_cli("rmi", name, check=False)
        dockerd_cli("rmi", name, check=False)


def test_a_bad_archive_fails_as_on_dockerd_and_stores_nothing(
        muelle_cli: DockerCli, dockerd_cli: DockerCli, docker_engine: Engine,
        pulled: str) -> None:
    before = _image_ids(docker_engine)
    on_muelle = muelle_cli("load", input="this is not a tar\n", check=False)
    on_dockerd = dockerd_cli("load", input="this is not a tar\n", check=False)
    assert on_muelle.returncode == on_dockerd.returncode == 1
    assert on_muelle.stdout == on_dockerd.stdout == ""
    assert on_muelle.stderr.strip() and "Traceback" not in on_muelle.stderr
    assert _image_ids(docker_engine) == before


def _rootfs_tar(path: Path, big: bytes) -> None:
    """busybox as /bin/busybox, /bin/sh and sha256sum links, and a large random file."""
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("bin")
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(info)
        tar.add("/bin/busybox", "bin/busybox")
        for link in ("sh", "sha256sum", "cat"):
            info = tarfile.TarInfo(f"bin/{link}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(info)
        info = tarfile.TarInfo("big")
        info.size, info.mode = len(big), 0o644
        tar.addfile(info, io.BytesIO(big))


def test_import_of_a_large_rootfs_then_cp_of_a_large_file(
        muelle_cli: DockerCli, dockerd_cli: DockerCli, tmp_path: Path) -> None:
    big = os.urandom(BIG)
    digest = hashlib.sha256(big).hexdigest()
    rootfs = tmp_path / "rootfs.tar"
    _rootfs_tar(rootfs, big)
    name = f"imp-{uuid.uuid4().hex[:6]}:big"
    results = []
    for cli in (muelle_cli, dockerd_cli):
        with rootfs.open("rb") as stdin:
            proc = subprocess.run([cli.binary, "import", "-m", "from a test", "-", name],
                                  env=cli.env, stdin=stdin, capture_output=True, text=True,
                                  timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith("sha256:")
        container = f"cp-{uuid.uuid4().hex[:6]}"
        cli("run", "-d", "--name", container, name, "/bin/busybox", "sleep", "1000")
        try:
            cli("cp", str(tmp_path / "rootfs.tar"), f"{container}:/copied.tar")
            results.append((
                cli("exec", container, "sha256sum", "/big").stdout.split()[0],
                cli("exec", container, "sha256sum", "/copied.tar").stdout.split()[0],
                cli("history", "--format", "{{.CreatedBy}}|{{.Comment}}", name).stdout))
        finally:
            cli("rm", "-f", container)
            cli("rmi", name)
    tar_digest = hashlib.sha256(rootfs.read_bytes()).hexdigest()
    assert results[0][:2] == (digest, tar_digest)
    assert results[0] == results[1]


@pytest.mark.parametrize(("query", "text"), [
    ("fromSrc=http://127.0.0.1:9/rootfs.tar&repo=x", "import from a URL is not supported"),
    ("fromSrc=-&tag=1", "tag given without repo"),
])
def test_imports_muelle_cannot_do_are_refused_by_name(docker_engine: Engine, query: str,
                                                      text: str) -> None:
    before = _image_ids(docker_engine)
    status, _, body = request(docker_engine, "POST", f"/v1.41/images/create?{query}", b"")
    assert status == 400
    assert text in json.loads(body)["message"]
    assert _image_ids(docker_engine) == before


def test_docker_py_loads_and_sees_the_images(docker_engine: Engine, dockerd_cli: DockerCli,
                                             pulled: str, tmp_path: Path) -> None:
    name = f"ld-{uuid.uuid4().hex[:6]}:py"
    archive = _saved_by_dockerd(dockerd_cli, pulled, tmp_path / "py.tar", name)
    client = docker_py.DockerClient(base_url=docker_engine.docker_host)
    try:
        images = client.images.load(archive.read_bytes())
        assert [name in image.tags for image in images] == [True]
        with pytest.raises(docker_py.errors.ImageLoadError):
            client.images.load(b"not a tar")
    finally:
        client.images.remove(name)
        client.close()


def test_a_client_that_hangs_up_mid_archive_leaves_nothing(docker_engine: Engine,
                                                           dockerd_cli: DockerCli,
                                                           pulled: str, tmp_path: Path) -> None:
    name = f"ld-{uuid.uuid4().hex[:6]}:cut"
    archive = _saved_by_dockerd(dockerd_cli, pulled, tmp_path / "cut.tar", name)
    data = archive.read_bytes()
    before = _image_ids(docker_engine)
    for target in ("/v1.41/images/load?quiet=1", "/v1.41/images/create?fromSrc=-&repo=cut"):
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(docker_engine.docker_host.removeprefix("unix://"))
            sock.sendall(f"POST {target} HTTP/1.1\r\nHost: d\r\nContent-Type: "
                         f"application/x-tar\r\nContent-Length: {len(data)}\r\n\r\n".encode()
                         + data[:len(data) // 2])
    assert request(docker_engine, "GET", "/_ping")[0] == 200
    assert _image_ids(docker_engine) == before


def test_load_and_import_events_as_on_dockerd(muelle_cli: DockerCli, dockerd_cli: DockerCli,
                                              pulled: str, tmp_path: Path) -> None:
    name = f"ev-{uuid.uuid4().hex[:6]}"
    archive = _saved_by_dockerd(dockerd_cli, pulled, tmp_path / "ev.tar", f"{name}:loaded")
    rootfs = tmp_path / "rootfs.tar"
    _rootfs_tar(rootfs, b"small")
    seen = []
    for cli in (muelle_cli, dockerd_cli):
        since = str(time.time())  # not earlier: other tests here load images too
        cli("load", "-i", str(archive))
        cli("import", str(rootfs), f"{name}:imported")
        try:
            events = cli("events", "--since", since, "--until", str(time.time() + 1),
                         "--filter", "type=image", "--filter", "event=load", "--filter",
                         "event=tag", "--filter", "event=import", "--format",
                         "{{.Action}} {{.Actor.Attributes.name}}").stdout
        finally:
            cli("rmi", f"{name}:loaded", f"{name}:imported", check=False)
        seen.append(re.sub(r"sha256:[0-9a-f]{64}", "ID", events))
    assert seen[0] == seen[1] == f"load ID\ntag {name}:imported\nimport ID\n"


CONFIG_KEYS = ("Env", "Cmd", "Entrypoint", "Labels", "ExposedPorts", "Volumes", "WorkingDir",
               "User", "OnBuild", "Healthcheck", "StopSignal", "Shell")
CHANGES = ["ENV A=one", "ENV B=$A-two PATH=/x:$PATH", "LABEL com.example.k=v other=w",
           "EXPOSE 8080/tcp 53/udp 7000-7001", "VOLUME /data", "VOLUME [\"/more\"]",
           "WORKDIR sub", "WORKDIR $A", "USER nobody", "ONBUILD RUN echo hi",
           "HEALTHCHECK --interval=5s --retries=2 CMD [\"true\"]",
           "CMD [\"echo\", \"changed\"]", "ENTRYPOINT /bin/env -u X"]


def _config(cli: DockerCli, ref: str) -> dict[str, object]:
    config = json.loads(cli("inspect", "-f", "{{json .Config}}", ref).stdout)
    return {key: config.get(key) for key in CONFIG_KEYS}


@pytest.mark.parametrize(("changes", "options"), [
    (CHANGES, ["-e", "KEPT=1", "-w", "/tmp"]),
    (["ENTRYPOINT [\"/bin/echo\"]"], ["-e", "KEPT=1"]),
    ([], []),
    ([], ["-e", "PATH=/bin", "-l", "a=b", "--stop-signal", "SIGUSR1", "-u", "nobody"]),
    (["ENTRYPOINT []"], ["-e", "KEPT=1"]),
    (["HEALTHCHECK CMD false"], ["--health-interval", "5s", "--health-retries", "2"]),
    (["EXPOSE 90"], ["--expose", "81", "--expose", "7000-7001/udp", "-p", "127.0.0.1::82",
                     "-v", "/anonvol"]),
    ([], ["--entrypoint", "/bin/echo"]),
], ids=["many", "entrypoint-drops-cmd", "none", "none-with-options", "empty-entrypoint",
        "healthcheck-keeps-the-rest", "ports-and-volumes", "entrypoint"])
def test_commit_changes_make_the_config_dockerd_makes(muelle_cli: DockerCli,
                                                      dockerd_cli: DockerCli, pulled: str,
                                                      changes: list[str],
                                                      options: list[str]) -> None:
    name = f"chg-{uuid.uuid4().hex[:6]}"
    flags = [arg for change in changes for arg in ("--change", change)]
    configs = []
    for cli in (muelle_cli, dockerd_cli):
        cli("run", "--name", name, *options, pulled, "sh", "-c", "true")
        try:
            cli("commit", *flags, name, f"{name}:committed")
            configs.append(_config(cli, f"{name}:committed"))
        finally:
            cli("rm", "-f", name)
            cli("rmi", f"{name}:committed", check=False)
    assert configs[0] == configs[1]


def test_docker_py_commits_with_changes(docker_engine: Engine, pulled: str) -> None:
    client = docker_py.DockerClient(base_url=docker_engine.docker_host)
    container = client.containers.run(pulled, "true", detach=True)
    try:
        container.wait()
        image = container.commit("chg-py", "1", changes=["ENV BY=py", "CMD [\"env\"]"])
        assert "BY=py" in image.attrs["Config"]["Env"]
        assert client.containers.run("chg-py:1", remove=True).decode().count("BY=py") == 1
    finally:
        container.remove(force=True)
        client.images.remove("chg-py:1")
        client.close()


def test_import_changes_make_the_config_dockerd_makes(muelle_cli: DockerCli,
                                                      dockerd_cli: DockerCli,
                                                      tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs.tar"
    _rootfs_tar(rootfs, b"small")
    name = f"chg-{uuid.uuid4().hex[:6]}:imported"
    flags = [arg for change in CHANGES for arg in ("--change", change)]
    configs = []
    for cli in (muelle_cli, dockerd_cli):
        cli("import", *flags, str(rootfs), name)
        try:
            configs.append(_config(cli, name))
        finally:
            cli("rmi", name)
    assert configs[0] == configs[1]
    assert configs[0]["Cmd"] == ["echo", "changed"]


@pytest.mark.parametrize("change", ["RUN echo", "FROM scratch", "COPY a b", "SHELL [\"sh\"]",
                                    "EXPOSE notaport", "EXPOSE 80/xyz", "ENV",
                                    "HEALTHCHECK RUN true", "ENV A=$B\nRUN x"])
def test_a_bad_change_is_refused_as_dockerd_refuses_it_and_nothing_is_made(
        muelle_cli: DockerCli, dockerd_cli: DockerCli, docker_engine: Engine, pulled: str,
        tmp_path: Path, change: str) -> None:
    rootfs = tmp_path / "rootfs.tar"
    _rootfs_tar(rootfs, b"small")
    name = f"chg-{uuid.uuid4().hex[:6]}"
    before = _image_ids(docker_engine)
    results = []
    for cli in (muelle_cli, dockerd_cli):
        cli("create", "--name", name, pulled, "true")
        try:
            results.append([(p.returncode, p.stderr) for p in (
                cli("commit", "--change", change, name, f"{name}:c", check=False),
                cli("import", "--change", change, str(rootfs), f"{name}:i", check=False))])
        finally:
            cli("rm", "-f", name)
    assert results[0] == results[1]
    assert all(code == 1 for code, _ in results[0])
    assert _image_ids(docker_engine) == before


def test_a_commit_keeps_what_a_container_config_has_as_dockerd(
        muelle_cli: DockerCli, dockerd_cli: DockerCli, tmp_path: Path) -> None:
    """An image's ONBUILD is not a container's: dockerd's commit of a container from one
    leaves it out (its config is the container's)."""
    rootfs = tmp_path / "rootfs.tar"
    _rootfs_tar(rootfs, b"small")
    name = f"chg-{uuid.uuid4().hex[:6]}"
    configs = []
    for cli in (muelle_cli, dockerd_cli):
        cli("import", "--change", "ONBUILD RUN echo later", "--change", "CMD [\"sh\"]",
            str(rootfs), f"{name}:base")
        try:
            cli("run", "--name", name, f"{name}:base", "sh", "-c", ":")
            cli("commit", name, f"{name}:committed")
            configs.append((_config(cli, f"{name}:base"), _config(cli, f"{name}:committed")))
        finally:
            cli("rm", "-f", name, check=False)
            cli("rmi", f"{name}:committed", f"{name}:base", check=False)
    assert configs[0] == configs[1]
    assert configs[0][0]["OnBuild"] == ["RUN echo later"]
