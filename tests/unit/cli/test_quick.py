"""The quick `run`/`pull` parser gives argparse's result, or None (then argparse parses)."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest

from clients.cli import quick
from clients.cli.parser import build
from clients.cli.units import UsageError

# Words an option may be followed by, and single words, that users write before the image.
PAIRS = [
    ["--name", "web"], ["-e", "A=1"], ["--env", "B"], ["-w", "/srv"], ["-u", "1000:1000"],
    ["-h", "box"], ["--entrypoint", ""], ["--entrypoint", "sh"], ["-m", "64m"],
    ["--pids-limit", "20"], ["--pids-limit", "x"], ["-c", "512"], ["--cpus", "1.5"],
    ["--network", "none"], ["--net", "host"], ["-p", "8080:80"], ["-v", "/a:/b:ro"],
    ["--mount", "type=tmpfs,target=/t"], ["--tmpfs", "/run"], ["-l", "k=v"],
    ["--restart", "always"], ["--stop-timeout", "3"], ["--log-opt", "max-size=1m"],
    ["--security-opt", "no-new-privileges"], ["--cap-add", "NET_ADMIN"], ["--runtime", "runc"],
    ["--userns", "host"], ["--uidmap", "0:100000:65536"], ["-e", "-x"], ["--name", "--rm"],
    ["--stop-timeout", "-1"],
]
SINGLES = [
    "--rm", "-d", "--detach", "-i", "-t", "-it", "-dit", "-itd", "-ti", "--init",
    "--read-only", "--privileged", "-P", "--sig-proxy", "--sig-proxy=false",
    "--sig-proxy=true", "--sig-proxy=maybe", "--name=db", "--name=", "-eC=3", "-ie", "-p80",
    "--memory=1g", "--pids-limit=7", "--rm=true", "--help", "--", "-", "--nam", "-Z", "-e=D",
    "--net=bridge", "-itp8080:80", "--interactive", "--tty",
]
COMMANDS = [[], ["true"], ["sh", "-c", "echo hi"], ["--rm", "-it"], ["--", "x"], ["-"]]
GLOBALS = [[], ["-H", "unix:///tmp/g.sock"], ["--host=tcp://127.0.0.1:1"], ["-Hunix:///x"],
           ["--host", "-x"], ["--ho", "x"]]


def argparse_result(argv: list[str]) -> dict | str:
    try:
        return vars(build(quick.verb_of(argv)).parse_args(argv))
    except UsageError as exc:
        return f"UsageError: {exc}"
    except SystemExit as exc:
        return f"SystemExit: {exc.code}"


def check(argv: list[str]) -> bool:
    """True if the quick parser took ``argv``; asserts it agrees with argparse."""
    got = quick.parse(argv)
    if got is None:
        return False
    assert vars(got) == argparse_result(argv), argv
    return True


@pytest.mark.parametrize("verb", quick.VERBS)
def test_every_option_alone(verb: str) -> None:
    for words in [*PAIRS, *([w] for w in SINGLES)]:
        for command in COMMANDS:
            check([verb, *words, "img:1", *command])


def test_global_host_options() -> None:
    for head in GLOBALS:
        check([*head, "run", "--rm", "img", "true"])


def test_random_lines_agree() -> None:
    rng = random.Random(20261129)
    taken = 0
    for _ in range(3000):
        words: list[str] = []
        for _ in range(rng.randrange(0, 6)):
            words += rng.choice(PAIRS) if rng.random() < 0.5 else [rng.choice(SINGLES)]
        verb = rng.choice([*quick.VERBS, "start"])
        tail = [] if rng.random() < 0.05 else ["img", *rng.choice(COMMANDS)]
        taken += check([*rng.choice(GLOBALS), verb, *words, *tail])
    assert taken > 500  # the quick path is the common one, not a rarity


@pytest.mark.parametrize("argv", [
    ["run", "--rm", "busybox", "true"],
    ["run", "-it", "--name", "x", "-e", "A=1", "-p", "80:80", "img", "sh"],
    ["-H", "unix:///s", "create", "--pids-limit=5", "-v", "/a:/b", "img"],
    ["run", "-d", "--restart", "always", "--sig-proxy=false", "img", "sleep", "9"],
])
def test_plain_lines_take_the_quick_path(argv: list[str]) -> None:
    assert check(argv)


@pytest.mark.parametrize("argv", [
    ["run", "--help"], ["run", "--nam", "x", "img"], ["run", "--", "img"],
    ["run", "-e", "-x", "img"], ["run", "--rm=true", "img"], ["run", "img", "--", "x"],
    ["run", "--pids-limit", "x", "img"], ["run", "--rm"],
    ["run", "--sig-proxy=maybe", "img"], ["start", "c"], ["--ho", "x", "run", "img"],
])
def test_the_rest_is_left_to_argparse(argv: list[str]) -> None:
    assert quick.parse(argv) is None


PULL_WORDS = [["--platform", "linux/arm64"], ["--platform=linux/amd64"], ["--platform="],
              ["--platform", "-x"], ["--platform"], ["--plat", "x"], ["--help"], ["-h"],
              ["--"], ["-"], ["-q"], ["img:1"], ["other"], ["reg:5000/a/b@sha256:" + "a" * 64]]


def test_pull_lines_agree() -> None:
    rng = random.Random(20261206)
    taken = 0
    for words in PULL_WORDS:
        taken += check(["pull", *words])
        taken += check(["pull", *words, "img"])
        taken += check(["pull", "img", *words])
    for _ in range(1000):
        words = [w for _ in range(rng.randrange(0, 4)) for w in rng.choice(PULL_WORDS)]
        taken += check([*rng.choice(GLOBALS), "pull", *words])
    assert taken > 50  # the plain forms are taken


@pytest.mark.parametrize("argv", [
    ["pull", "busybox"], ["pull", "--platform", "linux/arm64", "reg:5000/x:1"],
    ["pull", "img", "--platform=linux/amd64"], ["-H", "unix:///s", "pull", "img"],
])
def test_plain_pulls_take_the_quick_path(argv: list[str]) -> None:
    assert check(argv)


@pytest.mark.parametrize("argv", [
    ["pull"], ["pull", "--help"], ["pull", "a", "b"], ["pull", "--plat", "x", "img"],
    ["pull", "--", "img"], ["pull", "--platform", "-x", "img"], ["--tlsverify", "pull", "a"],
])
def test_other_pulls_are_left_to_argparse(argv: list[str]) -> None:
    assert quick.parse(argv) is None


def test_a_plain_pull_imports_no_argparse() -> None:
    """`muelle pull REF` starts a cold pull: no argparse, re, enum, typing on its way to the
    call, nor vocab.reference (dataclasses, inspect, hashlib) on its way out."""
    code = """
import io, sys
from clients.cli import main, images, progress
from clients.sdk import client

class Event:  # a PullProgress as the printer reads it
    def __init__(self, kind, value):
        self.kind, self.status, self.result = kind, value, value
    def WhichOneof(self, _):
        return self.kind

class Result:
    reference, digest, up_to_date = "reg:5000/img:1", "sha256:x", False

main.quick.parse(["pull", "reg:5000/img:1"])
printer = progress.PullPrinter(io.StringIO(), False)
for event in [Event("status", "Digest: sha256:x"), Event("status", "Status: done"),
              Event("result", Result())]:
    printer.feed(event)
print(sorted({"argparse", "re", "enum", "typing", "contextlib", "collections", "inspect",
              "hashlib", "vocab.reference"} & set(sys.modules)))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_a_plain_run_imports_no_argparse() -> None:
    """The point of quick.py: none of argparse, re, enum (~10 ms) on the way to the call."""
    code = ("import sys; from clients.cli import main, containers, sigproxy; "
            "from clients.sdk import client; "
            "main.quick.parse(['run', '--rm', '-it', 'img', 'true']); "
            "print(sorted({'argparse', 're', 'enum', 'signal', 'typing', 'contextlib', "
            "'collections'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
