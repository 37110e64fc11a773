"""process.json for exec, docker's exit codes for a process that cannot start, and the
stdin socket's frames (no root, no runtime)."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

from services.shim import stdin
from services.shim.exec import ExecRequest, build_process, failure_code, merge_env
from vocab.errors import InvalidArgument

CONTAINER = {"args": ["sleep", "9"], "env": ["PATH=/bin", "HOME=/root", "A=1"], "cwd": "/",
             "user": {"uid": 0, "gid": 0}, "terminal": False, "noNewPrivileges": True,
             "capabilities": {"bounding": ["CAP_CHOWN"]}}


def test_exec_keeps_the_container_settings_and_overrides_args_env_cwd(tmp_path: Path) -> None:
    proc = build_process(CONTAINER, ExecRequest(args=["sh"], env=["A=2", "B=3"], cwd="/tmp",
                                                tty=True, rows=3, cols=4), str(tmp_path))
    assert proc["args"] == ["sh"] and proc["cwd"] == "/tmp"
    assert proc["env"] == ["PATH=/bin", "HOME=/root", "A=2", "B=3"]
    assert proc["capabilities"] == CONTAINER["capabilities"] and proc["noNewPrivileges"]
    assert proc["terminal"] and proc["consoleSize"] == {"height": 3, "width": 4}
    assert CONTAINER["args"] == ["sleep", "9"]  # not modified


def test_exec_user_is_resolved_in_the_rootfs(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("app:x:1000:1001::/home/app:/bin/sh\n")
    (tmp_path / "etc" / "group").write_text("app:x:1001:\nextra:x:7:app\n")
    proc = build_process(CONTAINER, ExecRequest(args=["id"], user="app"), str(tmp_path))
    assert proc["user"] == {"uid": 1000, "gid": 1001, "additionalGids": [1001, 7]}
    assert "HOME=/home/app" in proc["env"]
    with pytest.raises(InvalidArgument):
        build_process(CONTAINER, ExecRequest(args=["id"], user="nosuch"), str(tmp_path))


@pytest.mark.parametrize("req", [ExecRequest(args=[]), ExecRequest(args=[""]),
                                 ExecRequest(args=["x"], cwd="rel"),
                                 ExecRequest(args=["x"], env=["=v"]),
                                 ExecRequest(args=["x"], env=["NOEQ"])])
def test_bad_exec_requests(tmp_path: Path, req: ExecRequest) -> None:
    with pytest.raises(InvalidArgument):
        build_process(CONTAINER, req, str(tmp_path))


def test_failure_codes_like_docker() -> None:
    assert failure_code('exec: "x": executable file not found in $PATH') == 127
    assert failure_code("stat /nope: no such file or directory") == 127
    assert failure_code('exec: "/etc/passwd": permission denied') == 126
    assert failure_code("something else") == 126
    assert merge_env(["A=1"], ["A=2", "B="]) == ["A=2", "B="]


def test_stdin_frames_eof_detach_and_resize(tmp_path: Path) -> None:
    path = str(tmp_path / "io" / "c.sock")
    relay = stdin.StdinRelay(path, stdin_once=True)
    relay.start()
    got = bytearray()

    def read() -> None:
        while data := os.read(relay.read_fd, 100):
            got.extend(data)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        stdin.send(path, [b"a", (3, 4)], eof=lambda: False)  # detach: stdin stays open
        stdin.send(path, [b"b", b""], eof=lambda: True)  # EOF: closed (stdin_once)
        reader.join(10)
        assert not reader.is_alive() and bytes(got) == b"ab"
    finally:
        relay.close()
        os.close(relay.read_fd)
    assert not os.path.exists(path)
    with pytest.raises(OSError), socket.socket(socket.AF_UNIX) as s:
        s.connect(path)
