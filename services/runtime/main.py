"""``muelle-runtime``: the runc-compatible command line of muelle's OCI runtime.

Errors are one line on stderr (a JSON log line with --log-format json) and exit 1;
never a traceback.

Each call is a fresh process (three per container), so this module imports only what
the verb needs, and nothing outside the stdlib: no grpc, structlog or protobuf.
"""

from __future__ import annotations

import os
import sys

# Everything else is imported where it is used: each verb is a fresh process, and the
# verbs that enter a container re-execute themselves from a sealed copy (sealed.py)
# before they import anything, so the first of their two interpreters stays bare.
TYPE_CHECKING = False  # mypy treats TYPE_CHECKING as true wherever it is defined
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence
    from typing import IO

# The verbs that go into a container: run from a sealed copy of the interpreter only.
SEALED_VERBS = ("create", "run", "exec")
# Global options that take a value (runc's): the verb is the first other word.
_VALUED = ("--root", "--log", "--log-format", "--criu", "--rootless")


_PARSERS: dict[str | None, argparse.ArgumentParser] = {}


def parser(verb: str | None = None) -> argparse.ArgumentParser:
    """The command line's parser, built once per process; the shim's fork server builds it
    before forking, so a warm runtime command does not pay argparse's ~165 gettext lookups
    (5-15 ms in a child). With ``verb``, only that verb's subcommand is added: a cold
    ``state`` or ``start`` does not build the nine others."""
    if verb not in _PARSERS:
        _PARSERS[verb] = _build(verb)
    return _PARSERS[verb]


def _build(only: str | None) -> argparse.ArgumentParser:
    import argparse

    from services.runtime.store import DEFAULT_ROOT

    p = argparse.ArgumentParser(prog="muelle-runtime", description="muelle's OCI runtime")
    p.add_argument("--root", default=DEFAULT_ROOT, help="state directory")
    p.add_argument("--log", help="log file (default: stderr, warnings only)")
    p.add_argument("--log-format", choices=["text", "json"], default="text")
    p.add_argument("--debug", action="store_true")
    p.add_argument("--systemd-cgroup", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--version", "-v", action="store_true")
    sub = p.add_subparsers(dest="verb")

    def wanted(verb: str) -> bool:
        return only is None or only == verb

    for verb in ("create", "run"):
        if wanted(verb):
            c = sub.add_parser(verb)
            c.add_argument("--bundle", "-b", default=".")
            c.add_argument("--pid-file")
            c.add_argument("--console-socket")
            c.add_argument("--no-pivot", action="store_true")
            c.add_argument("id")
    for verb in ("start", "pause", "resume", "state"):
        if wanted(verb):
            sub.add_parser(verb).add_argument("id")
    if wanted("kill"):
        k = sub.add_parser("kill")
        k.add_argument("--all", "-a", action="store_true")
        k.add_argument("id")
        k.add_argument("signal", nargs="?", default="TERM")
    if wanted("delete"):
        d = sub.add_parser("delete")
        d.add_argument("--force", "-f", action="store_true")
        d.add_argument("id")
    if wanted("exec"):
        e = sub.add_parser("exec")
        e.add_argument("--process", "-p", required=True,
                       help="process.json (runtime-spec process)")
        e.add_argument("--pid-file")
        e.add_argument("--console-socket")
        e.add_argument("--tty", "-t", action="store_true", help="process.terminal wins (runc's)")
        e.add_argument("--detach", "-d", action="store_true")
        e.add_argument("id")
    if wanted("list"):
        ls = sub.add_parser("list")
        ls.add_argument("--format", "-f", choices=["table", "json"], default="table")
        ls.add_argument("--quiet", "-q", action="store_true")
    return p


VERBS = ("create", "run", "start", "pause", "resume", "state", "kill", "delete", "exec",
         "list")


def verb_of(argv: Sequence[str]) -> str | None:
    """The verb of a command line, found without argparse: the first word after the
    global options, when it is a known verb (None otherwise, e.g. ``--help``: the whole
    parser then answers). Only a guess for what to load; the parser decides."""
    words = iter(argv)
    for word in words:
        if word in _VALUED:
            next(words, None)
        elif not word.startswith("-"):
            return word if word in VERBS else None
    return None


# The options of quick(): name -> (attribute, takes a value); short forms alike.
_GLOBAL = {"--root": ("root", True), "--log": ("log", True), "--log-format": ("log_format", True),
           "--debug": ("debug", False), "--systemd-cgroup": ("systemd_cgroup", False)}
_OWN = {
    "create": {"--bundle": ("bundle", True), "-b": ("bundle", True),
               "--pid-file": ("pid_file", True), "--console-socket": ("console_socket", True),
               "--no-pivot": ("no_pivot", False)},
    "exec": {"--process": ("process", True), "-p": ("process", True),
             "--pid-file": ("pid_file", True), "--console-socket": ("console_socket", True),
             "--tty": ("tty", False), "-t": ("tty", False), "--detach": ("detach", False),
             "-d": ("detach", False)},
}
_OWN["run"] = _OWN["create"]
_DEFAULTS: dict[str, dict[str, object]] = {
    "create": {"bundle": ".", "pid_file": None, "console_socket": None, "no_pivot": False},
    "exec": {"process": None, "pid_file": None, "console_socket": None, "tty": False,
             "detach": False},
}
_DEFAULTS["run"] = _DEFAULTS["create"]


def quick(words: Sequence[str]) -> argparse.Namespace | None:
    """What argparse makes of a plain create, run or exec command line (as containerd-shim,
    conmon and muelle's shim write them), without argparse: its import and parser cost
    every create ~9 ms (gettext, shutil...). None for anything else (an abbreviation, a
    short option with its value attached, a value that looks like an option, --help...):
    the parser then decides (tests/unit/runtime/test_quick_args.py compares both)."""
    from services.runtime.store import DEFAULT_ROOT

    found: dict[str, object] = {"root": DEFAULT_ROOT, "log": None, "log_format": "text",
                                "debug": False, "systemd_cgroup": False, "version": False}
    options, verb, ids = _GLOBAL, None, []
    at = 0
    while at < len(words):
        word, value = words[at], None
        name, eq, attached = word.partition("=")
        if word.startswith("-") and name in options:
            attr, valued = options[name]
            if valued and not eq:
                at += 1
                if at == len(words) or words[at].startswith("-"):
                    return None
                value = words[at]
            elif valued:
                value = attached
            elif eq:
                return None
            found[attr] = value if valued else True
        elif word.startswith("-") or word == "":
            return None
        elif verb is None:
            if word not in _OWN:
                return None
            verb, options = word, _OWN[word]
            found.update(_DEFAULTS[word])
            found["verb"] = word
        else:
            ids.append(word)
        at += 1
    if verb is None or len(ids) != 1 or found["log_format"] not in ("text", "json") \
            or (verb == "exec" and found["process"] is None):
        return None
    found["id"] = ids[0]
    from types import SimpleNamespace

    return SimpleNamespace(**found)  # type: ignore[return-value]  # argparse's attributes


_LOG_FILES: list[IO[str]] = []  # flushed by _exit


def _configure_logging(args: argparse.Namespace) -> None:
    from services.runtime import log

    level = "debug" if args.debug else "info" if args.log else "warning"
    out = open(args.log, "a", buffering=1) if args.log else None  # noqa: SIM115
    if out is not None:
        _LOG_FILES.append(out)
    log.configure(level, args.log_format, out)


def _error(args: argparse.Namespace, message: str) -> None:
    import json
    import time

    if args.log_format == "json":
        line = json.dumps({"level": "error", "msg": message,
                           "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    else:
        line = message
    sys.stderr.write(line + "\n")
    if args.log:
        try:
            with open(args.log, "a") as f:
                f.write(json.dumps({"level": "error", "msg": message}) + "\n")
        except OSError:
            pass


def dispatch(args: argparse.Namespace) -> int:
    """One verb through the library face (api.py), which imports per verb: `start` and
    `state` need neither the init nor seccomp nor ctypes."""
    from services.runtime import api

    rt = api.Runtime(args.root)
    if args.verb == "create":
        rt.create(args.id, args.bundle, args.pid_file, args.console_socket)
    elif args.verb == "run":
        return rt.run(args.id, args.bundle, args.pid_file, args.console_socket)
    elif args.verb == "start":
        rt.start(args.id)
    elif args.verb == "pause":
        rt.pause(args.id)
    elif args.verb == "resume":
        rt.resume(args.id)
    elif args.verb == "state":
        from services.runtime import state

        print(state.render_state(rt.state(args.id)))
    elif args.verb == "kill":
        rt.kill(args.id, api.parse_signal(args.signal), args.all)
    elif args.verb == "delete":
        rt.delete(args.id, args.force)
    elif args.verb == "exec":
        return rt.exec(args.id, args.process, args.pid_file, args.detach, args.console_socket)
    elif args.verb == "list":
        from services.runtime import state

        items = rt.list()
        if args.quiet:
            print("\n".join(i["id"] for i in items))
        else:
            print(state.render_list(items, args.format))
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    own = argv is None  # a process of its own, not a warm fork calling us in-process
    words = sys.argv[1:] if argv is None else list(argv)
    verb = verb_of(words)
    if own and verb in SEALED_VERBS:
        _sealed_early(words)
        _prime_migration()
    # A warm fork (in-process) has the whole parser from its fork server already.
    args = quick(words) if own and verb in SEALED_VERBS else None
    if args is None:
        args = parser(verb if own else None).parse_args(words)
    if args.version:
        from services.runtime.store import OCI_VERSION
        from vocab.version import VERSION

        print(f"muelle-runtime version {VERSION}\nspec: {OCI_VERSION}")
        sys.exit(0)
    if not args.verb:
        parser().print_usage(sys.stderr)
        sys.exit(2)

    try:
        _configure_logging(args)
        if args.verb in SEALED_VERBS:
            from services.runtime import sealed

            # These verbs go into a container: from a sealed copy of the interpreter only.
            # A process of its own re-executes itself so; one that calls us in-process
            # (a warm fork of the shim's fork server, already sealed) must never be replaced.
            sealed.ensure(["services.runtime.main", *sys.argv[1:]], reexec=own)
        code = dispatch(args)
    except KeyboardInterrupt:
        code = 130
    except Exception as exc:  # noqa: BLE001 - one line, never a traceback
        from services.runtime import api

        _error(args, api.describe(exc))
        code = 1
    if not own:
        sys.stdout.flush()
        sys.exit(code)
    _exit(code)


def _sealed_early(words: Sequence[str]) -> None:
    """Re-execute from a sealed copy now, before the parser and the verb's modules are
    imported by an interpreter that is about to be replaced. A failure is not reported
    here: the check after parsing (main) makes it again and reports it as the CLI does."""
    from services.runtime import sealed

    try:
        sealed.ensure(["services.runtime.main", *words])
    except sealed.NotSealed:
        return


def _prime_migration() -> None:
    """create, run and exec move a process into a cgroup, and the first cgroup migration
    after a quiet spell waits for an RCU grace period (5-15 ms here; cgroups.
    prime_migration). Start that wait now, on a thread, so that it passes while this
    process imports its verb (~10 ms) instead of after, when the init waits for its join;
    the join within a grace period of it does not wait again."""
    from services.runtime.cgroups.files import prime_migration

    prime_migration()


def _exit(code: int) -> None:
    """Exit without the interpreter's teardown (freeing every module and object: ~5 ms
    per call, three calls per container). Nothing is lost: stdio and the log file are
    flushed here, files the verbs write are closed by then (``with``), and the only
    thread a verb may leave is create's daemon cgroup primer, whose write is moot."""
    from services.runtime.scoped import suppress  # not contextlib: ~3 ms of imports

    for stream in (sys.stdout, sys.stderr, *_LOG_FILES):
        with suppress(OSError, ValueError):  # a closed pipe loses nothing of ours
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
