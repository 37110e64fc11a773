"""`muelle exec` through the whole engine, under each runtime."""

from __future__ import annotations

import pytest

from tests.support.engine import Engine

pytestmark = pytest.mark.root

RUNTIMES = ["muelle", "runc", "crun"]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_exec_env_user_cwd_stdin_exit_codes(engine: Engine, image: str, runtime: str) -> None:
    name = f"ex-{runtime}"
    engine.cli("run", "-d", "--name", name, "--runtime", runtime, "-e", "A=box", image,
               "sleep", "1000")
    try:
        out = engine.cli("exec", "-e", "B=exec", "-u", "app", "-w", "/tmp", name,
                         "sh", "-c", "echo $A $B; id -u; pwd; "
                         "tr '\\0' ' ' </proc/1/cmdline").stdout
        assert out.splitlines() == ["box exec", "1000", "/tmp", "sleep 1000 "]
        proc = engine.cli("exec", "-i", name, "cat", input=b"hi\n")
        assert proc.stdout == "hi\n"
        proc = engine.cli("exec", name, "sh", "-c", "echo err >&2; exit 5", check=False)
        assert (proc.returncode, proc.stdout, proc.stderr) == (5, "", "err\n")
        proc = engine.cli("exec", name, "nosuchcmd", check=False)
        assert proc.returncode == 127
        assert proc.stderr.count("\n") == 1 and "nosuchcmd" in proc.stderr, proc.stderr
        proc = engine.cli("exec", name, "/etc/passwd", check=False)
        assert proc.returncode == 126 and proc.stderr.count("\n") == 1, proc.stderr
    finally:
        engine.cli("rm", "-f", name, check=False)


def test_exec_errors_are_one_line(engine: Engine, image: str) -> None:
    proc = engine.cli("exec", "nosuch", "true", check=False)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert "nosuch" in proc.stderr
    cid = engine.cli("create", image, "sleep", "1000").stdout.strip()
    proc = engine.cli("exec", cid, "true", check=False)
    assert proc.returncode == 1 and "not running" in proc.stderr, proc.stderr
    assert proc.stderr.count("\n") == 1
    proc = engine.cli("exec", cid, check=False)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    engine.cli("rm", "-f", cid)


def test_a_client_that_leaves_a_silent_exec_kills_it(engine: Engine, image: str) -> None:
    """The gateway used to notice a cancelled ExecContainer only at the process's next
    output: a silent `sleep` outlived its client (and a timed-out kubelet probe) for good."""
    import time

    import grpc
    from muelle.engine.v1 import engine_pb2, engine_pb2_grpc

    from vocab.channel import target
    cid = engine.cli("run", "-d", image, "sleep", "1000").stdout.strip()
    try:
        start = engine_pb2.ExecContainerStart(container=cid, cmd=["sleep", "4242"])
        with grpc.insecure_channel(target(engine.host)) as ch:
            call = engine_pb2_grpc.EngineStub(ch).ExecContainer(
                iter([engine_pb2.ExecContainerInput(start=start)]), timeout=1)
            with pytest.raises(grpc.RpcError) as info:
                list(call)
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED  # type: ignore[attr-defined]
        deadline = time.monotonic() + 20
        while "sleep 4242" in engine.cli("exec", cid, "ps", "-o", "args").stdout:
            assert time.monotonic() < deadline, "the exec'd process outlived its client"
            time.sleep(0.1)
    finally:
        engine.cli("rm", "-f", cid, check=False)
