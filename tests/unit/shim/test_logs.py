"""logs.py: json-file writing, tail, since, stream filter and follow."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from services.shim.logs import LogWriter, follow_log, parse_time, rfc3339_nano
from vocab.errors import InvalidArgument


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


def test_rotation_keeps_max_files_and_readers_see_every_kept_entry(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from services.shim.logs import LogWriter, follow_log, rotated

    path = str(tmp_path / "container.log")
    writer = LogWriter(path, max_size=1000, max_files=3)
    for i in range(100):
        writer.write("stdout", f"line {i:03d}\n".encode())
    writer.close()
    assert [p.rsplit(".", 1)[1] for p in rotated(path)] == ["2", "1"]
    assert all(os.path.getsize(p) <= 1000 for p in (path, *rotated(path)))
    lines = [e.data.decode() for e in follow_log(path)]
    # The newest entries, in order, ending with the last one written; the oldest dropped.
    numbers = [int(line.split()[1]) for line in lines]
    assert numbers == list(range(numbers[0], 100)) and 0 < numbers[0] < 90
    assert [e.data for e in follow_log(path, tail=2)] == [b"line 098\n", b"line 099\n"]


def test_single_file_rotation_truncates(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from services.shim.logs import LogWriter, rotated

    path = str(tmp_path / "container.log")
    writer = LogWriter(path, max_size=500, max_files=1)
    for i in range(50):
        writer.write("stderr", f"{i}\n".encode())
    writer.close()
    assert rotated(path) == [] and os.path.getsize(path) <= 500


def test_follow_goes_on_across_a_rotation(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import threading

    from services.shim.logs import LogWriter, follow_log

    path = str(tmp_path / "container.log")
    writer = LogWriter(path, max_size=300, max_files=5)
    writer.write("stdout", b"first\n")
    done = threading.Event()
    got: list[bytes] = []

    def follow() -> None:
        for entry in follow_log(path, follow=True, stopped=done.is_set, poll=0.01):
            got.append(entry.data)

    reader = threading.Thread(target=follow)
    reader.start()
    for i in range(30):  # ~80 bytes an entry: several rotations while following
        writer.write("stdout", f"n{i}\n".encode())
        time.sleep(0.005)
    writer.close()
    done.set()
    reader.join(10)
    assert got == [b"first\n", *[f"n{i}\n".encode() for i in range(30)]]


def test_a_full_disk_drops_whole_entries_never_tears_a_line(tmp_path: Path) -> None:
    """A write that runs out of room (here RLIMIT_FSIZE: a short write, then EFBIG, as a
    full disk gives a short write, then ENOSPC) is cut back to the last whole line; the
    writer goes on, and what fits later is written after it."""
    import resource
    import signal

    log = tmp_path / "c.log"
    w = LogWriter(str(log))
    w.write("stdout", b"first\n")
    limit = log.stat().st_size + 150
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    old_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, old_limit[1]))
    try:
        w.write("stdout", b"x" * 100 + b"\n" + b"y" * 100 + b"\n")  # the first part fits
        assert w.dropped == 2 and w.error is not None
        assert log.stat().st_size < limit
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
        signal.signal(signal.SIGXFSZ, old_handler)
    w.write("stdout", b"after\n")
    w.close()
    assert [e.data for e in follow_log(str(log))] == [b"first\n", b"after\n"]
    assert all(json.loads(line) for line in log.read_text().splitlines())
