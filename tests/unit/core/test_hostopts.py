"""vocab/hostopts.py: docker's --ulimit, --device, --add-host and --oom-score-adj forms."""

from __future__ import annotations

import pytest

from vocab import hostopts


@pytest.mark.parametrize(("text", "want"), [
    ("nofile=1024", ("nofile", 1024, 1024)),
    ("nofile=1024:2048", ("nofile", 1024, 2048)),
    ("core=-1", ("core", -1, -1)),
    ("memlock=0:-1", ("memlock", 0, -1)),
    ("nproc=100:100", ("nproc", 100, 100)),
])
def test_parse_ulimit(text: str, want: tuple[str, int, int]) -> None:
    assert hostopts.parse_ulimit(text) == want


@pytest.mark.parametrize(("text", "message"), [
    ("nofile", "invalid ulimit argument: nofile"),
    ("bogus=1", "invalid ulimit type: bogus"),
    ("nofile=20:10", "soft limit must be less than or equal to hard limit: 20 > 10"),
    ("nofile=-1:10", "-1 > 10"),
    ("nofile=1:2:3", "too many limit value arguments - 1:2:3"),
    ("nofile=x", 'parsing "x": invalid syntax'),
    ("nofile=99999999999999999999", "value out of range"),
    ("nofile=-2", "at least -1"),
])
def test_parse_ulimit_refuses(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        hostopts.parse_ulimit(text)


@pytest.mark.parametrize(("text", "want"), [
    ("/dev/null", ("/dev/null", "/dev/null", "rwm")),
    ("/dev/null:/dev/mynull", ("/dev/null", "/dev/mynull", "rwm")),
    ("/dev/null:r", ("/dev/null", "/dev/null", "r")),
    ("/dev/null:/dev/x:rw", ("/dev/null", "/dev/x", "rw")),
    ("/dev/sda:/dev/xvdc:m", ("/dev/sda", "/dev/xvdc", "m")),
])
def test_parse_device(text: str, want: tuple[str, str, str]) -> None:
    assert hostopts.parse_device(text) == want


@pytest.mark.parametrize(("text", "message"), [
    ("", "bad format for path: "),
    (":/dev/x", "bad format for path"),
    ("/dev/null:/dev/x:rwx", "bad mode specified: rwx"),
    ("/dev/null:/dev/x:rr", "bad mode specified: rr"),
    ("/dev/null:relative", "relative is not an absolute path"),
    ("null", "null is not an absolute path"),
    ("/a:/b:r:w", "bad format for path"),
])
def test_parse_device_refuses(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        hostopts.parse_device(text)


@pytest.mark.parametrize(("text", "want"), [
    ("db:10.1.2.3", ("db", "10.1.2.3")),
    ("v6:fd00::1", ("v6", "fd00::1")),
    ("gw:host-gateway", ("gw", "host-gateway")),
    ("a.example.com: 1.2.3.4", ("a.example.com", "1.2.3.4")),
])
def test_parse_extra_host(text: str, want: tuple[str, str]) -> None:
    assert hostopts.parse_extra_host(text) == want


@pytest.mark.parametrize(("text", "message"), [
    ("db", 'bad format for add-host: "db"'),
    (":1.2.3.4", "bad format for add-host"),
    ("db:not-an-ip", 'invalid IP address in add-host: "not-an-ip"'),
    ("db:", "invalid IP address in add-host"),
    ("a b:1.2.3.4", "bad format for add-host"),
])
def test_parse_extra_host_refuses(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        hostopts.parse_extra_host(text)


def test_oom_score_adj_range() -> None:
    for value in (-1000, 0, 1000):
        hostopts.check_oom_score_adj(value)
    with pytest.raises(ValueError, match=r"Invalid value 1001, range for oom score adj is "
                                         r"\[-1000, 1000\]"):
        hostopts.check_oom_score_adj(1001)
