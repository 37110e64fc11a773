"""Attached stdin for `run -i` and `muelle attach`: stdin chunks, detach keys.

The detach sequence (docker's ctrl-p ctrl-q by default) ends the attach without closing
the container's stdin; the container keeps running.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import selectors
import threading
from collections.abc import Callable, Iterator
from typing import Any

from clients.cli.context import Context
from clients.cli.units import UsageError

DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"
DETACH_GRACE = 5.0  # seconds the engine has to end the stream after a detach


def parse_detach_keys(text: str) -> bytes:
    """docker's --detach-keys: "ctrl-p,ctrl-q", "a,ctrl-@", ... -> the bytes."""
    out = bytearray()
    for part in text.split(","):
        key = part.strip()
        if len(key) == 1:
            out.append(ord(key))
        elif key.lower().startswith("ctrl-") and len(key) == 6:
            char = key[5].lower()
            if not (char.isalpha() or char in "@[\\]^_"):
                raise UsageError(f"invalid detach keys: {text!r}")
            out.append(ord(char.upper()) & 0x1F)  # ctrl-a = 1 ... ctrl-_ = 31
        else:
            raise UsageError(f"invalid detach keys: {text!r}")
    if not out:
        raise UsageError(f"invalid detach keys: {text!r}")
    return bytes(out)


class Stdin:
    """Our stdin as chunks for the SDK: None at EOF; ends without None when the detach
    keys are read (``detached`` is then set and ``on_detach`` called). With ``winch_fd``
    (terminal.Winch) it also yields our terminal's (rows, cols), first and on resize;
    with ``read=False`` only those (-t without -i)."""

    def __init__(self, keys: bytes, on_detach: Callable[[], None] = lambda: None,
                 fd: int = 0, read: bool = True, winch_fd: int = -1) -> None:
        self.keys = keys
        self.fd = fd
        self.read = read
        self.winch_fd = winch_fd
        self.on_detach = on_detach
        self.detached = threading.Event()

    def __iter__(self) -> Iterator[bytes | tuple[int, int] | None]:
        from clients.cli import terminal

        sel = selectors.DefaultSelector()
        if self.read:
            sel.register(self.fd, selectors.EVENT_READ)
        if self.winch_fd >= 0:
            sel.register(self.winch_fd, selectors.EVENT_READ)
            first = terminal.size()
            if first:
                yield first
        if not sel.get_map():
            return
        held = b""  # a prefix of the keys, not yet known to be one
        while True:
            ready = {key.fd for key, _ in sel.select()}
            if self.winch_fd in ready:
                with contextlib.suppress(OSError):
                    os.read(self.winch_fd, 512)
                now = terminal.size()
                if now:
                    yield now
            if self.fd not in ready or not self.read:
                continue
            try:
                data = os.read(self.fd, 65536)
            except OSError:
                data = b""
            if not data:
                if held:
                    yield held
                yield None
                return
            data = held + data
            held = b""
            at = data.find(self.keys) if self.keys else -1
            if at >= 0:
                if at:
                    yield data[:at]
                self.detached.set()
                self.on_detach()
                return
            for n in range(min(len(self.keys) - 1, len(data)), 0, -1):
                if self.keys.startswith(data[-n:]):
                    data, held = data[:-n], data[-n:]
                    break
            if data:
                yield data


def exit_status(ctx: Context, ex: object) -> int:
    """The exit code of an AttachEvent's exit (as attach_output reports it)."""
    from clients.cli.errors import run_exit_code

    error = str(getattr(ex, "error", ""))
    code = int(getattr(ex, "exit_code", 0))
    if error:
        ctx.error(f"muelle: {error}")
        return code or run_exit_code(error)
    return code


def attached(ctx: Context, container: str, start: bool, keys: bytes, tty: bool = False,
             interactive: bool = True) -> int:
    """Stream output until the container stops (its exit code) or a detach (0).
    With ``tty``: our terminal in raw mode (when we send stdin) and its size followed."""
    from clients.cli import terminal

    with contextlib.ExitStack() as stack:
        winch = stack.enter_context(terminal.Winch()) if tty else None
        if tty and interactive:
            stack.enter_context(terminal.raw(0))
        return _attached(ctx, container, start, Stdin(
            keys, read=interactive, winch_fd=winch.fd if winch else -1))


def _attached(ctx: Context, container: str, start: bool, stdin: Stdin) -> int:
    from clients.cli.errors import engine_call, engine_iter

    holder: list[Any] = []

    def detach() -> None:
        # Our input ends without an EOF: the gateway delivers what we typed, then ends
        # the output stream; the container keeps running. Cancel if it does not.
        timer = threading.Timer(DETACH_GRACE, lambda: holder and holder[0].cancel())
        timer.daemon = True
        timer.start()

    stdin.on_detach = detach
    stream = engine_call(lambda: ctx.client().attach_stream(container, iter(stdin),
                                                             start=start))
    holder.append(stream)
    # run: engine refusals exit 125/126/127 (as attach in containers.py); attach: 1
    events = engine_iter(stream) if start else stream
    try:
        for event in events:
            if event.HasField("exit"):
                return exit_status(ctx, event.exit)
            ctx.write_bytes(event.output.stream, event.output.data)
    finally:
        stream.cancel()
    if stdin.detached.is_set():
        return 0
    from clients.cli.errors import ENGINE_ERROR, RunFailed

    raise RunFailed("the engine ended the attach stream without an exit status",
                    ENGINE_ERROR)


def attach(ctx: Context, args: argparse.Namespace) -> int:
    """`muelle attach [--no-stdin] [--detach-keys K] CONTAINER`."""
    keys = parse_detach_keys(args.detach_keys or DEFAULT_DETACH_KEYS)
    from clients.cli.sigproxy import proxied

    detail = ctx.client().inspect(args.container)
    config = detail.config
    # As the docker CLI: the engine's attach to a stopped container waits for its next run
    # (what `start -a` needs), which `attach` alone would never see.
    if detail.state.status == "paused":
        ctx.error("You cannot attach to a paused container, unpause it first")
        return 1
    if not detail.state.running:
        ctx.error("You cannot attach to a stopped container, start it first")
        return 1
    with proxied(ctx.host, args.container, enabled=args.sig_proxy and not config.tty):
        if args.no_stdin:
            from clients.cli.output import attach_output

            return attach_output(ctx, args.container, start=False)
        return attached(ctx, args.container, start=False, keys=keys, tty=config.tty,
                        interactive=config.open_stdin)
