"""Bad input gets one clear INVALID_ARGUMENT, over plain gRPC and through the CLI, and
creates nothing (issue 19, item 7: each of these once leaked an exception or failed only
at start)."""

from __future__ import annotations

from typing import Any

import pytest
from muelle.engine.v1 import engine_pb2
from muelle.types.v1 import types_pb2

from clients.sdk.client import Client
from tests.support.engine import Engine
from vocab.errors import InvalidArgument

MANY_PORTS = [types_pb2.NetworkPort(container_port=1 + i, host_port=20000 + i)
              for i in range(1025)]

# CreateContainerRequest fields a gRPC client may send, each wrong in its own way.
BAD_CREATES: dict[str, dict[str, Any]] = {
    "group-add past 32 bits": {"group_add": ["1099511627776"]},
    "group-add not ASCII digits": {"group_add": ["\u00b2"]},
    "NUL in tmpfs target": {"tmpfs": {"/a\x00b": ""}},
    "NUL in argv": {"entrypoint": types_pb2.StringList(values=["echo", "a\x00b"])},
    "NUL in hostname": {"hostname": "a\x00b"},
    "NUL in workdir": {"working_dir": "/a\x00b"},
    "NUL in env": {"env": ["A=\x00"]},
    "NUL in a label": {"labels": {"k": "v\x00"}},
    "console rows past 65535": {"tty": True, "console_size": engine_pb2.ConsoleSize(
        rows=70000, cols=80)},
    "bind onto /proc": {"binds": ["/proc:/proc"]},
    "bind onto /sys": {"binds": ["/sys:/sys"]},
    "bind under /proc": {"binds": ["/tmp:/proc/sys"]},
    "mount onto //proc/": {"mounts": [engine_pb2.VolumeMount(type="bind", source="/tmp",
                                                              target="//proc/")]},
    "tmpfs onto /proc": {"tmpfs": {"/proc": ""}},
    "uid map ending at 2**32": {"uid_maps": ["0:4294967295:1"]},
    "uid map of huge digits": {"uid_maps": ["0:" + "9" * 5000 + ":1"]},
    "too many ports": {"ports": MANY_PORTS},
    "workdir is a file": {"working_dir": "/etc/passwd"},
    "workdir under a file": {"working_dir": "/etc/passwd/x"},
    "log max-size too big": {"log_opts": {"max-size": "9" * 400 + "g"}},
    "stop signal in odd digits": {"stop_signal": "\u0663"},
}


@pytest.mark.parametrize("fields", BAD_CREATES.values(), ids=BAD_CREATES.keys())
def test_bad_create_over_grpc_is_invalid_argument(engine: Engine, image: str,
                                                  fields: dict[str, Any]) -> None:
    with Client(engine.host) as client:
        with pytest.raises(InvalidArgument) as err:
            client.create(image, **fields)
        assert "\n" not in err.value.message
        assert "internal error" not in err.value.message
        assert client.containers(all=True) == []


def test_bad_login_and_exec_over_grpc(engine: Engine, image: str) -> None:
    with Client(engine.host) as client:
        with pytest.raises(InvalidArgument, match="invalid registry host"):
            client.login("../../x", "a", "b")
        cid = client.create(image, ["sleep", "60"]).id
        try:
            client.start(cid)
            for kwargs in ({"cmd": ["echo", "a\x00"]},
                           {"cmd": ["true"], "working_dir": "/etc/passwd"},
                           {"cmd": ["true"], "tty": True, "console_size": (80, 70000)}):
                with pytest.raises(InvalidArgument):
                    list(client.exec(cid, **kwargs))
        finally:
            client.remove(cid, force=True)


BAD_RUNS: dict[str, list[str]] = {
    "group-add past 32 bits": ["--group-add", "1099511627776"],
    "cpus nan": ["--cpus", "nan"],
    "cpus inf": ["--cpus", "inf"],
    "cpus past int64": ["--cpus", "1e300"],
    "cpu-shares past int64": ["--cpu-shares", "99999999999999999999"],
    "pids-limit past int64": ["--pids-limit", "99999999999999999999"],
    "stop-timeout past int32": ["--stop-timeout", "99999999999"],
    "bind onto /proc": ["-v", "/proc:/proc"],
    "bind onto /sys": ["-v", "/sys:/sys"],
    "unknown bind-propagation": ["--mount", "type=bind,source=/tmp,target=/x,"
                                 "bind-propagation=bogus"],
    "uid map past 32 bits": ["--uidmap", "0:4294967295:1"],
    "tmpfs onto /proc": ["--tmpfs", "/proc"],
    "workdir is a file": ["-w", "/etc/passwd"],
}


@pytest.mark.parametrize("flags", BAD_RUNS.values(), ids=BAD_RUNS.keys())
def test_bad_run_through_the_cli_is_one_line(engine: Engine, image: str,
                                             flags: list[str]) -> None:
    proc = engine.cli("run", "--rm", *flags, image, "true", check=False)
    assert proc.returncode == 125, proc.stderr
    first = proc.stderr.splitlines()[0]
    assert first.startswith(("muelle: ", "Error response from daemon: ")), proc.stderr
    for leak in ("internal error", "unexpected error", "Traceback"):
        assert leak not in proc.stderr
    assert engine.cli("ps", "-aq").stdout == ""


def test_bad_login_through_the_cli(engine: Engine) -> None:
    proc = engine.cli("login", "-u", "a", "--password-stdin", "../../x", check=False,
                      input=b"b\n")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "Error response from daemon: invalid registry host '../../x'"]


def test_workdir_that_is_a_file_says_so(engine: Engine, image: str) -> None:
    proc = engine.cli("run", "--rm", "-w", "/bin/sh", image, "true", check=False)
    assert "is not a directory in the container" in proc.stderr
