"""`muelle`: the command line client of the muelle engine (docker's verbs and output).

Import time matters: a plain `run` or `pull` is parsed without argparse (quick.py), the rest with
argparse alone; grpc and the generated modules are imported when a command talks to the
gateway.
"""

from __future__ import annotations

import os
import sys

from clients.cli import quick
from clients.cli.context import Context
from clients.cli.errors import ENGINE_ERROR, RunFailed, cannot_connect, daemon_message
from clients.cli.units import UsageError
from clients.sdk.address import resolve_host

# typing costs the CLI ~3 ms to import; mypy treats TYPE_CHECKING as true wherever it is defined
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Mapping, Sequence
    from typing import IO, Any, TypeAlias

    Command: TypeAlias = Callable[[Context, Any], int]

# verb -> "module.function" in clients/cli: a command's module is imported when it runs,
# so every start does not pay for all of them.
COMMANDS: dict[str, str | Command] = {
    "pull": "images.pull",
    "images": "images.images",
    "rmi": "images.rmi",
    "run": "containers.run",
    "create": "containers.create",
    "start": "containers.start",
    "ps": "containers.ps",
    "logs": "containers.logs",
    "stop": "containers.stop",
    "kill": "containers.kill",
    "pause": "containers.pause",
    "unpause": "containers.unpause",
    "restart": "containers.restart",
    "stats": "stats.stats",
    "top": "stats.top",
    "rm": "containers.rm",
    "wait": "containers.wait",
    "inspect": "inspect.inspect",
    "image": "system.image",
    "system": "system.system",
    "save": "archive.save",
    "load": "archive.load",
    "tag": "registry.tag",
    "push": "registry.push",
    "login": "registry.login",
    "logout": "registry.logout",
    "info": "system.info",
    "volume": "volumes.volume",
    "port": "network.port",
    "network": "network.network",
    "exec": "exec.exec_",
    "attach": "attach.attach",
    "export": "build.export",
    "import": "build.import_",
    "commit": "build.commit",
    "build": "build.build",
    "builder": "build.builder",
}
ENGINE_VERBS = ("run", "create")  # their failures exit 125, like docker's


def version(ctx: Context, args: argparse.Namespace) -> int:
    from vocab.version import API_VERSION, VERSION

    ctx.line("Client:")
    ctx.line(f" Version:      {VERSION}")
    ctx.line(f" API version:  {API_VERSION}")
    reply = ctx.client().version()
    ctx.line("")
    ctx.line("Server:")
    ctx.line(f" Version:      {reply.version}")
    ctx.line(f" API version:  {reply.api_version}")
    ctx.line(f" OS/Arch:      {reply.os}/{reply.arch}")
    ctx.line(f" Kernel:       {reply.kernel_version}")
    ctx.line(" Components:")
    for name in sorted(reply.components):
        ctx.line(f"  {name + ':':<12} {reply.components[name]}")
    return 0


COMMANDS["version"] = version


def run(argv: Sequence[str] | None = None, out: IO[str] | None = None,
        err: IO[str] | None = None, environ: Mapping[str, str] | None = None,
        close: bool = True) -> int:
    """Run the CLI; returns the exit status (never raises, never prints a traceback).
    ``close=False`` leaves the gRPC channel open, for a process about to exit."""
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    environ = os.environ if environ is None else environ
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args: Any = quick.parse(argv)  # a plain run or pull: no argparse to import
        if args is None:
            from clients.cli.parser import build

            verb = quick.verb_of(argv)
            args = build(verb if verb in COMMANDS else None).parse_args(argv)
    except UsageError as exc:
        err.write(f"muelle: {exc}\nSee 'muelle --help'.\n")
        return ENGINE_ERROR
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    environ = _tls_flags(args, environ)
    ctx = Context(host=resolve_host(args.host, environ), out=out, err=err, environ=environ)
    try:
        return _dispatch(ctx, args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    finally:
        if close:
            ctx.close()


def _tls_flags(args: Any, environ: Mapping[str, str]) -> Mapping[str, str]:
    """--tlsverify/--tlscacert/--tlscert/--tlskey as the variables they stand for."""
    given = {"MUELLE_TLS_VERIFY": "1" if getattr(args, "tlsverify", None) else "",
             "MUELLE_TLS_CACERT": getattr(args, "tlscacert", None) or "",
             "MUELLE_TLS_CERT": getattr(args, "tlscert", None) or "",
             "MUELLE_TLS_KEY": getattr(args, "tlskey", None) or ""}
    given = {k: v for k, v in given.items() if v}
    return {**environ, **given} if given else environ


def command(verb: str) -> Command:
    """The function of ``verb``, importing its module now."""
    target = COMMANDS[verb]
    if callable(target):
        return target
    module, _, name = target.partition(".")
    fn: Command = getattr(__import__(f"clients.cli.{module}", fromlist=[name]), name)
    return fn


def _dispatch(ctx: Context, args: argparse.Namespace) -> int:
    from_engine = args.verb in ENGINE_VERBS
    try:
        return command(args.verb)(ctx, args)
    except UsageError as exc:
        ctx.error(f"muelle: {exc}")
        return ENGINE_ERROR if from_engine else 1
    except RunFailed as exc:
        ctx.error(daemon_message(str(exc)))
        return exc.code
    except Exception as exc:  # noqa: BLE001 - the edge: one line, no traceback
        from vocab.errors import MuelleError, Unavailable

        if isinstance(exc, Unavailable) and not ctx.client().reachable():
            # Over TCP the reason matters: a refused certificate is not a stopped engine.
            ctx.error(cannot_connect(ctx.host) if ctx.host.startswith("unix:")
                      else f"Cannot connect to the muelle engine at {ctx.host}: {exc}")
            return 1
        if isinstance(exc, MuelleError):
            ctx.error(daemon_message(str(exc)))
        else:
            ctx.error(f"muelle: unexpected error: {type(exc).__name__}: {exc}")
        return ENGINE_ERROR if from_engine else 1


def main() -> None:
    code = run(close=False)
    # Exit without grpc's orderly shutdown (channel close, thread joins: ~20 ms); the
    # kernel closes the socket. Output is flushed first.
    for stream in (sys.stdout, sys.stderr):
        try:  # noqa: SIM105 - contextlib costs every start ~4 ms to import
            stream.flush()
        except (BrokenPipeError, ValueError):
            pass
    os._exit(code)


if __name__ == "__main__":
    main()
