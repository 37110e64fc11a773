"""main.quick parses plain create/run/exec command lines without argparse: on every line it
answers, it must answer what argparse answers, and it must leave every line argparse
refuses to argparse (None), so the error and exit code stay argparse's."""

from __future__ import annotations

import contextlib
import io
import random

import pytest

from services.runtime import main

WORDS = ["--root", "/r", "--root=/r2", "--log", "/l.json", "--log=/l2", "--log-format",
         "json", "--log-format=text", "--log-format=xml", "--debug", "--systemd-cgroup",
         "--debug=1", "--ro", "-v", "--help", "create", "run", "exec", "state", "--bundle",
         "-b", "/b", "--bundle=/b2", "-b/b3", "--pid-file", "/p", "--pid-file=", "--console-socket",
         "/s", "--no-pivot", "--process", "-p", "/proc.json", "--tty", "-t", "--detach", "-d",
         "id1", "id2", "--", "-", "", "-x", "--bund", "-1"]
PLAIN = [
    ["--root", "/run/x", "--log", "/b/log.json", "--log-format", "json", "create", "--bundle",
     "/b", "--pid-file", "/b/pid", "cid"],
    ["--root", "/r", "--log", "/l", "--log-format", "json", "--systemd-cgroup", "create",
     "--bundle", "/b", "--pid-file", "/p", "--console-socket", "/s", "cid"],
    ["--root", "/r", "run", "--bundle", "/b", "cid"],
    ["run", "-b", "/b", "cid", "--no-pivot"],
    ["--root", "/r", "--log", "/l", "--log-format", "json", "exec", "--process", "/p.json",
     "--detach", "--pid-file", "/pid", "--console-socket", "/s", "--tty", "cid"],
    ["--debug", "exec", "-p", "/p.json", "-d", "-t", "cid"],
]


def _argparse(words: list[str]) -> dict[str, object] | None:
    try:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(
                io.StringIO()):
            return vars(main.parser().parse_args(words))
    except SystemExit:
        return None


@pytest.mark.parametrize("words", PLAIN)
def test_plain_lines_parse_quickly_as_argparse(words: list[str]) -> None:
    args = main.quick(words)
    assert args is not None
    assert vars(args) == _argparse(words)


def test_random_lines_agree_with_argparse() -> None:
    rng = random.Random(21)
    answered = 0
    for _ in range(4000):
        words = [rng.choice(WORDS) for _ in range(rng.randint(0, 9))]
        if rng.random() < 0.5:  # mostly plausible: a verb and an id somewhere
            words.insert(rng.randint(0, len(words)), rng.choice(["create", "run", "exec"]))
            words.append("cid")
        quick = main.quick(words)
        if quick is None:
            continue
        answered += 1
        assert vars(quick) == _argparse(words), words
    assert answered > 50  # the comparison was not vacuous
