"""Flag parsing for exec -d, --sig-proxy and commit -p/--pause (docker's boolean flags:
bare is true, a value only after '=')."""

from __future__ import annotations

import pytest

from clients.cli.boolflags import parse_bool
from clients.cli.parser import build
from clients.cli.units import UsageError


def test_exec_detach() -> None:
    args = build().parse_args(["exec", "-d", "web", "sleep", "5"])
    assert args.detach and args.container == "web" and args.command == ["sleep", "5"]
    args = build().parse_args(["exec", "--detach", "-e", "A=1", "web", "sh", "-c", "x", "-d"])
    assert args.detach and args.env == ["A=1"] and args.command == ["sh", "-c", "x", "-d"]
    assert not build().parse_args(["exec", "web", "true"]).detach


def test_exec_detach_combined_with_other_short_flags() -> None:
    args = build().parse_args(["exec", "-dt", "web", "top"])
    assert args.detach and args.tty and not args.interactive


@pytest.mark.parametrize(("argv", "want"), [
    ([], True), (["--sig-proxy"], True), (["--sig-proxy=false"], False),
    (["--sig-proxy=true"], True), (["--sig-proxy=0"], False), (["--sig-proxy=FALSE"], False),
    (["-d", "--sig-proxy=f"], False),
])
def test_run_sig_proxy(argv: list[str], want: bool) -> None:
    args = build().parse_args(["run", *argv, "img", "sh"])
    assert args.sig_proxy is want and args.image == "img" and args.command == ["sh"]


def test_bare_sig_proxy_does_not_take_the_image_as_its_value() -> None:
    args = build().parse_args(["run", "-e", "X=1", "--sig-proxy", "-it", "img", "true"])
    assert args.sig_proxy is True and args.image == "img" and args.tty and args.interactive
    # after the image it is the container's command, untouched
    args = build().parse_args(["run", "img", "prog", "--sig-proxy", "-p"])
    assert args.command == ["prog", "--sig-proxy", "-p"]
    # like docker: `--sig-proxy false` is the flag, then the image "false"
    args = build().parse_args(["run", "--sig-proxy", "false"])
    assert args.sig_proxy is True and args.image == "false"


def test_attach_sig_proxy() -> None:
    assert build().parse_args(["attach", "web"]).sig_proxy is True
    assert build().parse_args(["attach", "--sig-proxy", "web"]).sig_proxy is True
    args = build().parse_args(["attach", "--no-stdin", "--sig-proxy=false", "web"])
    assert args.sig_proxy is False and args.no_stdin and args.container == "web"


@pytest.mark.parametrize(("argv", "want"), [
    ([], True), (["-p"], True), (["--pause"], True), (["-p=false"], False),
    (["--pause=false"], False), (["-pfalse"], False), (["--pause=1"], True),
    (["-a", "me", "-p", "-m", "msg"], True), (["-m", "msg", "--pause=false"], False),
])
def test_commit_pause(argv: list[str], want: bool) -> None:
    args = build().parse_args(["commit", *argv, "web", "demo/x:1"])
    assert args.pause is want and args.container == "web" and args.reference == "demo/x:1"


def test_a_value_word_is_not_read_as_the_flag() -> None:
    args = build().parse_args(["commit", "--message=--pause", "-p", "web"])
    assert args.message == "--pause" and args.pause is True and args.container == "web"
    args = build().parse_args(["commit", "-ma", "-p", "web"])
    assert args.message == "a" and args.pause is True


@pytest.mark.parametrize("argv", [["run", "--sig-proxy=maybe", "img"],
                                  ["attach", "--sig-proxy=", "web"],
                                  ["commit", "--pause=perhaps", "web"],
                                  ["commit", "-p=2", "web"]])
def test_bad_boolean_values(argv: list[str]) -> None:
    with pytest.raises(UsageError, match="invalid boolean value"):
        build().parse_args(argv)


def test_parse_bool() -> None:
    assert [parse_bool(t) for t in ("true", "1", "t", "TRUE", "True")] == [True] * 5
    assert [parse_bool(t) for t in ("false", "0", "f", "FALSE", "False")] == [False] * 5
    with pytest.raises(UsageError):
        parse_bool("")
