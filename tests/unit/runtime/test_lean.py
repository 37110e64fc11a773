"""muelle-runtime is a fresh process three times per container: it imports no grpc,
structlog or protobuf, and its log lines need none of them."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest

from services.runtime import log, main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__)))))

HEAVY = ("grpc", "structlog", "google.protobuf")


def _imported_after(code: str) -> list[str]:
    probe = f"import sys; {code}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout.split()
    return [m for m in HEAVY if m in out]


def test_runtime_verbs_import_no_grpc_structlog_protobuf() -> None:
    code = ("import services.runtime.main, services.runtime.create, services.runtime.run, "
            "services.runtime.start, services.runtime.delete, services.runtime.kill, "
            "services.runtime.state")
    assert _imported_after(code) == []


def test_errors_need_grpc_only_for_the_status_code() -> None:
    assert _imported_after("import vocab.errors") == []
    assert _imported_after(
        "from vocab.errors import NotFound; NotFound('x').code") == ["grpc"]


def test_log_lines_logfmt_and_json() -> None:
    out = io.StringIO()
    try:
        log.configure("info", "text", out)
        log.get_logger(container="c1").info("created", pid=42, bundle="/a b")
        log.get_logger().debug("hidden")
        log.configure("warning", "json", out)
        log.get_logger(cgroup="/x").info("hidden too")
        log.get_logger(cgroup="/x").warning("limit skipped", file="pids.max")
    finally:
        log.configure()
    text, js = out.getvalue().splitlines()
    assert text.startswith('level=info event=created container=c1 pid=42 bundle="/a b" time=')
    record = json.loads(js)
    assert record["level"] == "warning" and record["event"] == "limit skipped"
    assert record["cgroup"] == "/x" and record["file"] == "pids.max"


def test_main_imports_nothing_before_the_sealed_reexec() -> None:
    """create/run/exec re-execute from a sealed copy first: the interpreter that is about
    to be replaced must not have paid for argparse, json or pathlib."""
    probe = ("import sys; import services.runtime.main; "
             "print(' '.join(m for m in ('argparse', 'json', 'pathlib', 'typing', 're') "
             "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-S", "-c", probe], capture_output=True, text=True,
                         check=True, env={"PYTHONPATH": ROOT}).stdout.split()
    assert out == []


@pytest.mark.parametrize(("argv", "verb"), [
    (["--root", "/r", "--log", "/l", "--log-format", "json", "create", "-b", "b", "x"], "create"),
    (["--root=/r", "--systemd-cgroup", "delete", "--force", "x"], "delete"),
    (["state", "x"], "state"), (["--help"], None), (["--root", "state"], None),
    (["bogus", "x"], None), ([], None)])
def test_verb_of(argv: list[str], verb: str | None) -> None:
    assert main.verb_of(argv) == verb


def test_create_imports_only_what_it_uses() -> None:
    """A plain create or run (the front starts it sealed) parses without argparse, and
    imports neither typing, re, enum, pathlib, json, contextlib, collections, threading,
    signal, platform, nor datetime, socket, hashlib's OpenSSL, ctypes.util or tempfile:
    ~30 ms of every container's create between them on a small VM, where runc's whole
    `run` takes ~20 (issue 21). tests/integration/runtime/test_lean_run.py checks a real run."""
    heavy = ("argparse", "datetime", "hashlib", "tempfile", "subprocess", "shutil",
             "ctypes.util", "socket", "typing", "re", "enum", "pathlib", "json", "contextlib",
             "collections", "functools", "threading", "signal", "platform", "urllib",
             "ipaddress", "fnmatch", "runpy", "importlib.util", "dataclasses", "inspect")
    probe = ("import sys; import services.runtime.main as m; "
             "assert m.quick(['--root', '/r', 'create', '--bundle', '/b', 'x']); "
             "import services.runtime.api, services.runtime.create, services.runtime.run, "
             "services.runtime.start, services.runtime.delete, services.runtime.log; "
             "from services.runtime.cgroups import v1, v2; "
             f"print(' '.join(m for m in {heavy!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-S", "-c", probe], capture_output=True, text=True,
                         check=True, env={"PYTHONPATH": ROOT}).stdout.split()
    assert out == []
