"""CLI parsing: sizes, env, the command after the image, --host resolution, requests."""

from __future__ import annotations

import os

import pytest

from clients.cli.containers import build_request
from clients.cli.parser import build
from clients.cli.units import (
    UsageError,
    ago,
    human_size,
    parse_bytes,
    parse_cpus,
    parse_env,
    parse_labels,
    table,
)
from clients.sdk.address import resolve_host
from vocab.timefmt import human_duration


@pytest.mark.parametrize(("text", "want"), [
    ("64m", 64 << 20), ("1g", 1 << 30), ("512k", 512 << 10), ("1048576", 1048576),
    ("64MB", 64 << 20), ("1.5g", 3 << 29), ("2MiB", 2 << 20), ("100b", 100),
])
def test_parse_bytes(text: str, want: int) -> None:
    assert parse_bytes(text) == want


@pytest.mark.parametrize("text", ["", "m", "64x", "-5", "1.2.3m"])
def test_parse_bytes_rejects(text: str) -> None:
    with pytest.raises(UsageError):
        parse_bytes(text)


def test_memory_swap_unlimited() -> None:
    assert parse_bytes("-1", allow_unlimited=True) == -1


def test_env_copies_from_cli_environment() -> None:
    env = {"HOME": "/root", "EMPTY": ""}
    assert parse_env(["A=1", "HOME", "EMPTY", "MISSING", "B=x=y"], env) == \
        ["A=1", "HOME=/root", "EMPTY=", "B=x=y"]
    with pytest.raises(UsageError):
        parse_env(["=x"], env)


def test_labels_and_cpus() -> None:
    assert parse_labels(["a=1", "b"]) == {"a": "1", "b": ""}
    assert parse_cpus("1.5") == 1_500_000_000
    with pytest.raises(UsageError):
        parse_cpus("lots")


def test_run_command_is_everything_after_the_image() -> None:
    args = build().parse_args(["run", "--rm", "-e", "A=1", "img", "sh", "-c", "echo -e x",
                               "--rm"])
    assert args.image == "img" and args.rm
    assert args.command == ["sh", "-c", "echo -e x", "--rm"]


def test_run_short_flags_and_hostname_h() -> None:
    args = build().parse_args(["run", "-d", "-h", "boxy", "-m", "64m", "-w", "/w", "-u",
                               "app", "-l", "k=v", "img"])
    assert args.detach and args.hostname == "boxy" and args.memory == "64m"
    assert args.command == []


def test_combined_short_flags() -> None:
    args = build().parse_args(["ps", "-aq"])
    assert args.all and args.quiet


def test_build_request_presence_of_cmd_and_entrypoint() -> None:
    parser = build()
    req = build_request(parser.parse_args(["create", "img"]), {})
    assert not req.HasField("cmd") and not req.HasField("entrypoint")
    req = build_request(parser.parse_args(["create", "--entrypoint", "", "img", "ls"]), {})
    assert list(req.entrypoint.values) == [""] and list(req.cmd.values) == ["ls"]
    req = build_request(parser.parse_args(
        ["create", "--entrypoint", "/bin/sh -x", "--stop-timeout", "3", "-m", "1g",
         "--memory-swap", "-1", "--cpus", "0.5", "--read-only", "--cap-add", "NET_ADMIN",
         "--security-opt", "no-new-privileges", "--network", "none", "img"]), {})
    assert list(req.entrypoint.values) == ["/bin/sh -x"]
    assert req.stop_timeout == 3 and req.HasField("stop_timeout")
    assert req.memory == 1 << 30 and req.memory_swap == -1
    assert req.nano_cpus == 500_000_000 and req.read_only
    assert list(req.cap_add) == ["NET_ADMIN"] and req.network_mode == "none"


def test_tty_requests() -> None:
    parser = build()
    if not os.isatty(0):
        with pytest.raises(UsageError, match="the input device is not a TTY"):
            build_request(parser.parse_args(["run", "-it", "img"]), {})
    req = build_request(parser.parse_args(["run", "-t", "img"]), {})
    assert req.tty and not req.open_stdin
    req = build_request(parser.parse_args(["run", "-d", "-it", "img"]), {})
    assert req.tty and req.open_stdin and not req.stdin_once


@pytest.mark.parametrize("spec, want", [
    ("80", (80, "tcp", "", 0)),
    ("8080:80", (80, "tcp", "", 8080)),
    ("127.0.0.1:8080:80/udp", (80, "udp", "127.0.0.1", 8080)),
    ("127.0.0.1::53/udp", (53, "udp", "127.0.0.1", 0)),
])
def test_publish_specs(spec: str, want: tuple[int, str, str, int]) -> None:
    req = build_request(build().parse_args(
        ["run", "-p", spec, "-P", "--network", "app", "--network-alias", "db", "img"]), {})
    p = req.ports[0]
    assert (p.container_port, p.protocol, p.host_ip, p.host_port) == want
    assert req.publish_all and req.network_mode == "app" and list(req.network_aliases) == ["db"]


@pytest.mark.parametrize("spec", ["x", "0", "70000", "80/sctp", "1:2:3:4", "8000-8001:80"])
def test_bad_publish_specs(spec: str) -> None:
    with pytest.raises(UsageError):
        build_request(build().parse_args(["run", "-p", spec, "img"]), {})


def test_host_resolution() -> None:
    assert resolve_host("tcp://h:1", {"MUELLE_HOST": "unix:///x"}) == "tcp://h:1"
    assert resolve_host(None, {"MUELLE_HOST": "unix:///x"}) == "unix:///x"
    assert resolve_host(None, {"MUELLE_RUN": "/tmp/r/"}) == "unix:///tmp/r/gateway.sock"
    assert resolve_host(None, {}) == "unix:///run/muelle/gateway.sock"


def test_human_formats() -> None:
    assert human_size(4_260_000) == "4.26MB" and human_size(999) == "999B"
    assert human_size(1234) == "1.23kB"
    assert human_duration(0.5) == "Less than a second"
    assert human_duration(3) == "3 seconds"
    assert human_duration(90) == "About a minute"
    assert human_duration(3 * 3600) == "3 hours"
    assert ago("2024-01-01T00:00:03.123456789Z", now=1704067210.0) == "6 seconds ago"
    assert ago("") == ""


def test_table_pads_columns() -> None:
    # docker's tabwriter: 3 past the widest cell, 10 at least ("DRIVER    VOLUME NAME")
    assert table([["A", "BB"], ["ccc", "d"]]) == "A         BB\nccc       d\n"
    assert table([["CONTAINER ID", "X"], ["abc", "y"]]) == "CONTAINER ID   X\nabc            y\n"


@pytest.mark.parametrize("verb", ["run", "create"])
def test_every_run_and_create_option_has_help(verb: str) -> None:
    sub = next(a for a in build(verb)._actions if a.dest == "verb")
    parser = sub.choices[verb]  # type: ignore[index]
    missing = [a.option_strings or a.dest for a in parser._actions if not a.help]
    assert missing == []


def test_pull_and_platform_options() -> None:
    args = build("run").parse_args(["run", "--pull=never", "--platform", "linux/arm64", "bb"])
    assert (args.pull, args.platform, args.image) == ("never", "linux/arm64", "bb")
    assert build("create").parse_args(["create", "bb"]).pull == "missing"


def test_build_request_host_options_as_docker_reads_them() -> None:
    parser = build()
    req = build_request(parser.parse_args(
        ["create", "--add-host", "db:10.1.2.3", "--add-host", "gw:host-gateway",
         "--ulimit", "nofile=1024:2048", "--ulimit", "nproc=100", "--shm-size", "128m",
         "--device", "/dev/null:/dev/mynull:r", "--device", "/dev/zero",
         "--oom-score-adj", "-10", "img"]), {})
    assert list(req.extra_hosts) == ["db:10.1.2.3", "gw:host-gateway"]
    assert [(u.name, u.soft, u.hard) for u in req.ulimits] == [("nofile", 1024, 2048),
                                                               ("nproc", 100, 100)]
    assert req.shm_size == 128 << 20 and req.oom_score_adj == -10
    assert [(d.path_on_host, d.path_in_container, d.cgroup_permissions)
            for d in req.devices] == [("/dev/null", "/dev/mynull", "r"),
                                      ("/dev/zero", "/dev/zero", "rwm")]


@pytest.mark.parametrize(("flags", "message"), [
    (["--add-host", "db"], 'invalid argument "db" for "--add-host" flag: bad format for '
                           'add-host: "db"'),
    (["--ulimit", "bogus=1"], 'invalid argument "bogus=1" for "--ulimit" flag: invalid '
                              "ulimit type: bogus"),
    (["--shm-size", "-1"], 'invalid argument "-1" for "--shm-size" flag: invalid size'),
    (["--device", "/dev/null:/x:rwx"], "bad mode specified: rwx"),
    (["--oom-score-adj", "1001"], "range for oom score adj is [-1000, 1000]"),
])
def test_build_request_refuses_bad_host_options(flags: list[str], message: str) -> None:
    with pytest.raises(UsageError) as err:
        build_request(build().parse_args(["create", *flags, "img"]), {})
    assert message in str(err.value)
