"""Registry verbs: tag, push, login, logout."""

from __future__ import annotations

import argparse
import sys

from clients.cli.context import Context
from clients.cli.progress import PushPrinter
from clients.cli.units import UsageError


def tag(ctx: Context, args: argparse.Namespace) -> int:
    ctx.client().tag(args.source, args.target)
    return 0


def push(ctx: Context, args: argparse.Namespace) -> int:
    printer = PushPrinter(ctx.out, ctx.isatty())
    for event in ctx.client().push(args.reference):
        printer.feed(event)
    return 0


def _stdin_tty() -> bool:
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def login(ctx: Context, args: argparse.Namespace) -> int:
    username, password = args.username, args.password
    if args.password_stdin:
        if password is not None:
            raise UsageError("--password and --password-stdin are mutually exclusive")
        if not username:
            raise UsageError("must provide --username with --password-stdin")
        password = sys.stdin.read().removesuffix("\n").removesuffix("\r")
    elif password is not None:
        ctx.error("WARNING! Using --password via the CLI is insecure. "
                  "Use --password-stdin.")
    if not username:
        if not _stdin_tty():
            raise UsageError("a username is required (-u)")
        username = input("Username: ").strip()
    if password is None:
        if not _stdin_tty():
            raise UsageError("a password is required (-p or --password-stdin)")
        import getpass

        password = getpass.getpass("Password: ")
    reply = ctx.client().login(args.server, username, password)
    ctx.line(reply.status)
    return 0


def logout(ctx: Context, args: argparse.Namespace) -> int:
    reply = ctx.client().logout(args.server)
    ctx.line(f"Removing login credentials for {reply.server}")
    return 0
