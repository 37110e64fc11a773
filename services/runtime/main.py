"""``muelle-runtime``: the runc-compatible command line of muelle's OCI runtime.

Errors are one line on stderr (a JSON log line with --log-format json) and exit 1;
never a traceback.

Each call is a fresh process (three per container), so this module imports only what
the verb needs, and nothing outside the stdlib: no grpc, structlog or protobuf.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from collections.abc import Sequence

from services.runtime import api, log
from services.runtime.store import DEFAULT_ROOT, OCI_VERSION
from vocab.version import VERSION


@functools.cache
def parser() -> argparse.ArgumentParser:
    """Built once per process; the shim's fork server builds it before forking, so a warm
    runtime command does not pay argparse's ~165 gettext lookups (5-15 ms in a child)."""
    p = argparse.ArgumentParser(prog="muelle-runtime", description="muelle's OCI runtime")
    p.add_argument("--root", default=DEFAULT_ROOT, help="state directory")
    p.add_argument("--log", help="log file (default: stderr, warnings only)")
    p.add_argument("--log-format", choices=["text", "json"], default="text")
    p.add_argument("--debug", action="store_true")
    p.add_argument("--systemd-cgroup", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--version", "-v", action="store_true")
    sub = p.add_subparsers(dest="verb")
    for verb in ("create", "run"):
        c = sub.add_parser(verb)
        c.add_argument("--bundle", "-b", default=".")
        c.add_argument("--pid-file")
        c.add_argument("--console-socket")
        c.add_argument("--no-pivot", action="store_true")
        c.add_argument("id")
    sub.add_parser("start").add_argument("id")
    sub.add_parser("pause").add_argument("id")
    sub.add_parser("resume").add_argument("id")
    sub.add_parser("state").add_argument("id")
    k = sub.add_parser("kill")
    k.add_argument("--all", "-a", action="store_true")
    k.add_argument("id")
    k.add_argument("signal", nargs="?", default="TERM")
    d = sub.add_parser("delete")
    d.add_argument("--force", "-f", action="store_true")
    d.add_argument("id")
    e = sub.add_parser("exec")
    e.add_argument("--process", "-p", required=True, help="process.json (runtime-spec process)")
    e.add_argument("--pid-file")
    e.add_argument("--console-socket")
    e.add_argument("--tty", "-t", action="store_true", help="process.terminal wins (runc's)")
    e.add_argument("--detach", "-d", action="store_true")
    e.add_argument("id")
    ls = sub.add_parser("list")
    ls.add_argument("--format", "-f", choices=["table", "json"], default="table")
    ls.add_argument("--quiet", "-q", action="store_true")
    return p


def _configure_logging(args: argparse.Namespace) -> None:
    level = "debug" if args.debug else "info" if args.log else "warning"
    out = open(args.log, "a", buffering=1) if args.log else None  # noqa: SIM115
    log.configure(level, args.log_format, out)


def _error(args: argparse.Namespace, message: str) -> None:
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
    args = parser().parse_args(argv)
    if args.version:
        print(f"muelle-runtime version {VERSION}\nspec: {OCI_VERSION}")
        sys.exit(0)
    if not args.verb:
        parser().print_usage(sys.stderr)
        sys.exit(2)
    try:
        _configure_logging(args)
        if args.verb in ("create", "run", "exec"):
            from services.runtime import sealed

            # These verbs go into a container: from a sealed copy of the interpreter only.
            # A process of its own re-executes itself so; one that calls us in-process
            # (a warm fork of the shim's fork server, already sealed) must never be replaced.
            sealed.ensure(["services.runtime.main", *sys.argv[1:]], reexec=argv is None)
        code = dispatch(args)
    except KeyboardInterrupt:
        code = 130
    except Exception as exc:  # noqa: BLE001 - one line, never a traceback
        _error(args, api.describe(exc))
        code = 1
    sys.stdout.flush()
    sys.exit(code)


if __name__ == "__main__":
    main()
