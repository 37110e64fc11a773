"""The real docker CLI against muelle's Docker API: pull, run, logs, exec, ps, inspect."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
import uuid
from collections.abc import Callable
from pathlib import Path

from tests.compat.conftest import DockerCli
from tests.support.engine import Engine
from tests.support.images import push_layout
from tests.support.registry import LocalRegistry


def _tar_names(data: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.getnames()


def _wait_for(check: Callable[[], bool], what: str, tries: int = 200) -> None:
    """Retry ``check()`` (a docker command each time) until it holds; bounded."""
    for _ in range(tries):
        if check():
            return
    raise AssertionError(f"never happened: {what}")


def test_version_and_info_name_the_engine(docker: DockerCli) -> None:
    out = docker("version", "--format", "{{.Server.APIVersion}} {{.Server.Os}}").stdout
    assert out.split() == ["1.41", "linux"]
    assert docker("info", "--format", "{{.OSType}}").stdout.strip() == "linux"


def test_pull_shows_progress_then_images_lists_it(docker: DockerCli, docker_engine: Engine,
                                                  registry: LocalRegistry,
                                                  busybox_layout: Path) -> None:
    ref = f"{registry.host}/compat/pull-{uuid.uuid4().hex[:6]}:1"
    push_layout(busybox_layout, ref, tag="1")
    out = docker("pull", ref).stdout
    # The layer is new to the engine, or already there from the other CLI's run.
    assert "Pull complete" in out or "Already exists" in out
    assert "Digest: sha256:" in out
    assert out.count("Status: ") == 1
    assert out.strip().endswith(ref)
    repo, tag = ref.rsplit(":", 1)
    listed = docker("images", "--format", "{{.Repository}} {{.Tag}}").stdout.splitlines()
    assert f"{repo} {tag}" in listed
    again = docker("pull", ref).stdout
    assert "Image is up to date" in again or "Downloaded newer image" not in again


def test_run_rm_prints_output_and_leaves_nothing(docker: DockerCli, pulled: str) -> None:
    before = set(docker("ps", "-aq").stdout.split())
    proc = docker("run", "--rm", pulled, "echo", "hi")
    assert proc.stdout == "hi\n"
    # wait?condition=removed answered: the container is gone when the CLI returns.
    assert set(docker("ps", "-aq").stdout.split()) == before


def test_run_passes_exit_code_and_both_streams(docker: DockerCli, pulled: str) -> None:
    proc = docker("run", "--rm", pulled, "sh", "-c", "echo out; echo err >&2; exit 3",
                  check=False)
    assert (proc.returncode, proc.stdout, proc.stderr) == (3, "out\n", "err\n")


def test_run_i_feeds_stdin_and_ends_at_its_eof(docker: DockerCli, pulled: str) -> None:
    proc = docker("run", "--rm", "-i", pulled, "sh", "-c", "cat; echo done",
                  input="line one\nline two\n")
    assert proc.stdout == "line one\nline two\ndone\n"


def test_run_e_and_workdir_and_user(docker: DockerCli, pulled: str) -> None:
    proc = docker("run", "--rm", "-e", "GREETING=hola", "-w", "/tmp", "-u", "1000:1000",
                  pulled, "sh", "-c", 'echo "$GREETING $(pwd) $(id -u)"')
    assert proc.stdout == "hola /tmp 1000\n"


def test_run_missing_image_pulls_it_first(docker: DockerCli, registry: LocalRegistry,
                                          busybox_layout: Path) -> None:
    ref = f"{registry.host}/compat/auto-{uuid.uuid4().hex[:6]}:1"
    push_layout(busybox_layout, ref, tag="1")
    proc = docker("run", "--rm", ref, "echo", "pulled")
    assert proc.stdout == "pulled\n"
    assert "Unable to find image" in proc.stderr


def test_detached_logs_exec_stop_rm(docker: DockerCli, pulled: str) -> None:
    name = f"web-{uuid.uuid4().hex[:6]}"
    cid = docker("run", "-d", "--name", name, pulled, "sh", "-c",
                 "echo started; trap 'exit 0' TERM; while true; do sleep 0.1; done"
                 ).stdout.strip()
    assert len(cid) == 64
    _wait_for(lambda: "started" in docker("logs", name).stdout, "the first log line")
    ps = docker("ps", "--format", "{{.Names}} {{.Status}}").stdout
    assert any(line.startswith(f"{name} Up") for line in ps.splitlines())
    stamped = docker("logs", "-t", "--tail", "1", name).stdout
    assert stamped.endswith(" started\n") and stamped[:4].isdigit()
    ex = docker("exec", name, "sh", "-c", "echo in-exec; echo oops >&2; exit 5", check=False)
    assert (ex.returncode, ex.stdout, ex.stderr) == (5, "in-exec\n", "oops\n")
    assert docker("exec", "-i", name, "cat", input="piped\n").stdout == "piped\n"
    assert docker("exec", "-w", "/tmp", "-u", "1000", name, "sh", "-c",
                  'echo "$(pwd) $(id -u)"').stdout == "/tmp 1000\n"
    docker("stop", name)
    ps_all = docker("ps", "-a", "--filter", f"name={name}", "--format", "{{.Status}}").stdout
    assert ps_all.startswith("Exited (0)")
    assert name not in docker("ps", "--format", "{{.Names}}").stdout
    docker("rm", name)
    assert name not in docker("ps", "-a", "--format", "{{.Names}}").stdout


def test_inspect_shows_what_clients_read(docker: DockerCli, pulled: str) -> None:
    name = f"insp-{uuid.uuid4().hex[:6]}"
    docker("create", "--name", name, "-e", "A=1", "--label", "k=v", "-p", "127.0.0.1::80",
           pulled, "sleep", "5")
    try:
        doc = json.loads(docker("inspect", name).stdout)[0]
        assert doc["Name"] == f"/{name}"
        assert doc["State"]["Status"] == "created"
        assert doc["Config"]["Tty"] is False
        assert "A=1" in doc["Config"]["Env"]
        assert doc["Config"]["Labels"]["k"] == "v"
        assert doc["Config"]["Cmd"] == ["sleep", "5"]
        assert doc["HostConfig"]["PortBindings"] == {"80/tcp": [{"HostIp": "127.0.0.1",
                                                                 "HostPort": ""}]}
        assert doc["Path"] == "sleep" and doc["Args"] == ["5"]
        fmt = docker("inspect", "-f", "{{.State.Running}} {{.HostConfig.NetworkMode}}",
                     name).stdout
        assert fmt.split() == ["false", "default"]
    finally:
        docker("rm", "-f", name)


def test_unknown_container_is_a_docker_error(docker: DockerCli) -> None:
    proc = docker("rm", "no-such-container", check=False)
    assert proc.returncode == 1
    assert "No such container: no-such-container" in proc.stderr
    proc = docker("run", "--rm", "--blkio-weight", "300", "busybox", "true", check=False)
    assert proc.returncode == 125
    assert "HostConfig.BlkioWeight is not supported by muelle yet" in proc.stderr


def test_pause_restart_kill_top_stats_exec_d_logs_f(docker: DockerCli, pulled: str) -> None:
    name = f"life-{uuid.uuid4().hex[:6]}"
    docker("run", "-d", "--name", name, pulled, "sh", "-c",
           "echo up; trap 'exit 0' TERM; while true; do sleep 0.1; done")
    try:
        assert "sleep" in docker("top", name).stdout or "sh" in docker("top", name).stdout
        row = docker("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", name).stdout
        assert row.split()[0] == name and int(row.split()[1]) >= 1
        docker("pause", name)
        assert "(Paused)" in docker("ps", "--filter", f"name={name}", "--format",
                                    "{{.Status}}").stdout
        docker("unpause", name)
        docker("exec", "-d", name, "sh", "-c", "echo bg > /tmp/bg")
        _wait_for(lambda: docker("exec", name, "cat", "/tmp/bg", check=False).stdout == "bg\n",
                  "the detached exec's file")
        docker("restart", "-t", "1", name)
        assert docker("inspect", "-f", "{{.State.Running}}", name).stdout.strip() == "true"
        docker("kill", name)
        assert docker("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip() == "137"
        # Follow ends when the container has exited; both runs' output is there.
        assert docker("logs", "-f", name, timeout=30).stdout == "up\nup\n"
    finally:
        docker("rm", "-f", name)


def test_tag_rmi_and_a_pull_that_fails(docker: DockerCli, pulled: str) -> None:
    tag = f"compat/t{uuid.uuid4().hex[:6]}:1"
    docker("tag", pulled, tag)
    assert tag in docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    assert f"Untagged: {tag}" in docker("rmi", tag).stdout
    missing = pulled.rsplit("/", 1)[0] + "/no-such-image:1"
    proc = docker("pull", missing, check=False)
    assert proc.returncode == 1
    assert "not found" in proc.stderr


def test_run_options_memory_init_read_only_tmpfs_bind(docker: DockerCli, pulled: str,
                                                      tmp_path: Path) -> None:
    (tmp_path / "f").write_text("from host\n")
    proc = docker("run", "--rm", "-m", "64m", "--init", "--read-only", "--tmpfs", "/scratch",
                  "-v", f"{tmp_path}:/b:ro", pulled, "sh", "-c",
                  "cat /proc/1/comm; touch /x 2>/dev/null || echo ro; "
                  "touch /scratch/y && echo tmpfs; cat /b/f")
    assert proc.stdout == "docker-init\nro\ntmpfs\nfrom host\n"


def test_restart_policy_restarts_then_gives_up(docker: DockerCli, pulled: str) -> None:
    name = f"rs-{uuid.uuid4().hex[:6]}"
    docker("run", "-d", "--name", name, "--restart", "on-failure:2", pulled, "sh", "-c",
           "exit 1")
    try:
        fmt = "{{.RestartCount}} {{.State.Status}} {{.HostConfig.RestartPolicy.Name}}"
        _wait_for(lambda: docker("inspect", "-f", fmt, name).stdout.split() ==
                  ["2", "exited", "on-failure"], "two restarts, then exited", tries=2000)
    finally:
        docker("rm", "-f", name)


def test_export_commit_save_push_df_prune(docker: DockerCli, pulled: str) -> None:
    name = f"arc-{uuid.uuid4().hex[:6]}"
    image = f"compat/committed-{uuid.uuid4().hex[:6]}:1"
    docker("run", "--name", name, pulled, "sh", "-c", "echo made > /made")
    try:
        exported = subprocess.run([docker.binary, "export", name], env=docker.env,
                                  capture_output=True, timeout=60)
        assert exported.returncode == 0
        names = _tar_names(exported.stdout)
        assert "made" in names and "bin/busybox" in names
        docker("commit", "-m", "by compat", name, image)
        assert docker("run", "--rm", image, "cat", "/made").stdout == "made\n"
        saved = subprocess.run([docker.binary, "save", image], env=docker.env,
                               capture_output=True, timeout=60)
        assert saved.returncode == 0
        assert "index.json" in _tar_names(saved.stdout)
        target = pulled.rsplit("/", 1)[0] + f"/pushed-{uuid.uuid4().hex[:6]}:1"
        docker("tag", image, target)
        pushed = docker("push", target).stdout
        assert "digest: sha256:" in pushed and "Pushed" in pushed
        df = docker("system", "df", "--format", "{{.Type}} {{.TotalCount}}").stdout
        assert "Images" in df and "Containers" in df
    finally:
        docker("rm", "-f", name, check=False)
    assert name not in docker("ps", "-a", "--format", "{{.Names}}").stdout
    docker("rmi", image, target)
    docker("create", "--name", name, pulled, "true")
    docker("container", "prune", "-f")
    assert name not in docker("ps", "-a", "--format", "{{.Names}}").stdout


def test_tty_output_is_raw_with_the_ptys_crlf(docker: DockerCli, pulled: str) -> None:
    def raw(*args: str) -> bytes:  # bytes: text mode would turn \r\n into \n
        return subprocess.run([docker.binary, *args], env=docker.env, capture_output=True,
                              timeout=60, check=True).stdout

    assert raw("run", "--rm", "-t", pulled, "echo", "hi") == b"hi\r\n"
    name = f"tty-{uuid.uuid4().hex[:6]}"
    docker("run", "-d", "-t", "--name", name, pulled, "echo", "logged")
    try:
        _wait_for(lambda: raw("logs", name) == b"logged\r\n", "the tty's log")
    finally:
        docker("rm", "-f", name)


def test_start_attached_of_an_exited_container_shows_each_run(docker: DockerCli,
                                                              pulled: str) -> None:
    """`start -a`: attach (which waits for the next run), wait for the next exit, start.
    A run shorter than the engine's poll hung the wait, and the attach saw no output."""
    name = f"sta-{uuid.uuid4().hex[:6]}"
    docker("run", "--name", name, pulled, "sh", "-c", "echo run; exit 3", check=False)
    try:
        for _ in range(3):
            proc = docker("start", "-a", name, check=False, timeout=30)
            assert (proc.returncode, proc.stdout) == (3, "run\n")
    finally:
        docker("rm", "-f", name)


def test_attach_with_stdin_to_a_running_container(docker: DockerCli, pulled: str) -> None:
    name = f"att-{uuid.uuid4().hex[:6]}"
    docker("run", "-d", "-i", "--name", name, pulled, "sh")
    try:
        proc = docker("attach", name, input="echo attached-$((1+1))\nexit 3\n", check=False)
        assert (proc.returncode, proc.stdout) == (3, "attached-2\n")
    finally:
        docker("rm", "-f", name)
