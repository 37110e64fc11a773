"""logs.py: json-file writing, tail, since, stream filter and follow."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from services.core.errors import InvalidArgument
from services.shim.logs import LogWriter, follow_log, parse_time, rfc3339_nano


def write(path: Path, *items: tuple[str, bytes]) -> None:
    w = LogWriter(str(path))
    for stream, data in items:
        w.write(stream, data)
    w.close()


def test_docker_json_file_format(tmp_path: Path) -> None:
    log = tmp_path / "c.log"
    write(log, ("stdout", b"a\nb"), ("stderr", b"x\n"), ("stdout", b"c\n"))
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(x["stream"], x["log"]) for x in lines] == [
        ("stdout", "a\n"), ("stderr", "x\n"), ("stdout", "bc\n")]
    assert lines[0]["time"].endswith("Z") and len(lines[0]["time"].split(".")[1]) == 10


def test_non_utf8_round_trips(tmp_path: Path) -> None:
    log = tmp_path / "c.log"
    write(log, ("stdout", b"\xff\xfe ok\n"))
    assert [e.data for e in follow_log(str(log))] == [b"\xff\xfe ok\n"]


def test_tail_and_streams(tmp_path: Path) -> None:
    log = tmp_path / "c.log"
    write(log, *[("stdout" if i % 2 else "stderr", f"{i}\n".encode()) for i in range(6)])
    assert [e.data for e in follow_log(str(log), tail=2)] == [b"4\n", b"5\n"]
    assert [e.data for e in follow_log(str(log), streams={"stdout"})] == [b"1\n", b"3\n", b"5\n"]
    assert [e.data for e in follow_log(str(log), tail=1, streams={"stderr"})] == [b"4\n"]


def test_since(tmp_path: Path) -> None:
    log = tmp_path / "c.log"
    write(log, ("stdout", b"old\n"))
    time.sleep(0.01)
    cut = time.time_ns()
    write(log, ("stdout", b"new\n"))
    assert [e.data for e in follow_log(str(log), since=rfc3339_nano(cut))] == [b"new\n"]
    assert [e.data for e in follow_log(str(log), since=f"{cut / 1e9:.6f}")] == [b"new\n"]
    assert len(list(follow_log(str(log), since="2000-01-01T00:00:00+02:00"))) == 2


@pytest.mark.parametrize("bad", ["yesterday", "2024-13-01T00:00:00Z", "1e9"])
def test_bad_since(bad: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_time(bad)


def test_parse_time() -> None:
    assert parse_time("1970-01-01T00:00:01.5Z") == 1_500_000_000
    assert parse_time("2") == 2_000_000_000


def test_follow_until_stopped_and_drained(tmp_path: Path) -> None:
    log = tmp_path / "c.log"
    stopped = threading.Event()

    def produce() -> None:
        w = LogWriter(str(log))
        for i in range(3):
            w.write("stdout", f"{i}\n".encode())
            time.sleep(0.02)
        w.write("stdout", b"last\n")
        w.close()
        stopped.set()

    t = threading.Thread(target=produce)
    t.start()
    got = [e.data for e in follow_log(str(log), follow=True, stopped=stopped.is_set,
                                      poll=0.005)]
    t.join()
    assert got == [b"0\n", b"1\n", b"2\n", b"last\n"]


def test_follow_cancel(tmp_path: Path) -> None:
    log = tmp_path / "c.log"
    write(log, ("stdout", b"a\n"))
    calls = iter([False, True])
    got = list(follow_log(str(log), follow=True, stopped=lambda: False,
                          cancelled=lambda: next(calls, True), poll=0.001))
    assert [e.data for e in got] == [b"a\n"]


def test_missing_log_is_empty(tmp_path: Path) -> None:
    assert list(follow_log(str(tmp_path / "none.log"))) == []
