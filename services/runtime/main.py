"""``muelle-runtime``: the runc-compatible command line of muelle's OCI runtime.

Errors are one line on stderr (a JSON log line with --log-format json) and exit 1;
never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence

import structlog

from services.core.errors import MuelleError
from services.core.version import VERSION
from services.runtime import create, delete, kill, run, start, state
from services.runtime.store import DEFAULT_ROOT, OCI_VERSION, Store


def parser() -> argparse.ArgumentParser:
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
    sub.add_parser("state").add_argument("id")
    k = sub.add_parser("kill")
    k.add_argument("--all", "-a", action="store_true")
    k.add_argument("id")
    k.add_argument("signal", nargs="?", default="TERM")
    d = sub.add_parser("delete")
    d.add_argument("--force", "-f", action="store_true")
    d.add_argument("id")
    ls = sub.add_parser("list")
    ls.add_argument("--format", "-f", choices=["table", "json"], default="table")
    ls.add_argument("--quiet", "-q", action="store_true")
    return p


def _configure_logging(args: argparse.Namespace) -> None:
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if args.log_format == "json"
        else structlog.processors.LogfmtRenderer(key_order=["level", "event"]))
    level = logging.DEBUG if args.debug else logging.INFO if args.log else logging.WARNING
    out = open(args.log, "a", buffering=1) if args.log else sys.stderr  # noqa: SIM115
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars,
                    structlog.processors.add_log_level,
                    structlog.processors.TimeStamper(fmt="iso", key="time"), renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )


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
    store = Store(args.root)
    if args.verb == "create":
        create.create(store, args.id, args.bundle, args.pid_file)
    elif args.verb == "run":
        return run.run(store, args.id, args.bundle, args.pid_file)
    elif args.verb == "start":
        start.start(store, args.id)
    elif args.verb == "state":
        print(state.render_state(state.state(store, args.id)))
    elif args.verb == "kill":
        kill.kill(store, args.id, kill.parse_signal(args.signal), args.all)
    elif args.verb == "delete":
        delete.delete(store, args.id, args.force)
    elif args.verb == "list":
        items = state.listing(store)
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
        code = dispatch(args)
    except MuelleError as exc:
        _error(args, str(exc))
        code = 1
    except OSError as exc:
        _error(args, f"{exc.strerror or exc}{': ' + str(exc.filename) if exc.filename else ''}")
        code = 1
    except KeyboardInterrupt:
        code = 130
    except Exception as exc:  # noqa: BLE001 - one line, never a traceback
        _error(args, f"internal error: {type(exc).__name__}: {exc}")
        code = 1
    sys.stdout.flush()
    sys.exit(code)


if __name__ == "__main__":
    main()
