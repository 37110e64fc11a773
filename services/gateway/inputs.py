"""Checks every request of the public API gets, whatever its verb: no NUL byte in a string,
a console size a terminal can have.

They run at the gateway so that any gRPC client, not only the CLI, gets one clear
INVALID_ARGUMENT instead of a ValueError deep in the shim or the runtime (a NUL byte ends
a C string: Python refuses it in a path or argv, the kernel would silently cut it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from google.protobuf.message import Message

from vocab.errors import InvalidArgument

# struct winsize holds unsigned shorts (TIOCSWINSZ).
MAX_CONSOLE = 65535


def no_nul(msg: Message, where: str = "") -> None:
    """InvalidArgument naming the first string field of ``msg`` (nested messages, lists and
    maps included) that holds a NUL byte."""
    for field, value in msg.ListFields():
        _check_value(value, f"{where}{field.name}")


def _check_value(value: Any, name: str) -> None:
    if isinstance(value, Message):
        no_nul(value, f"{name}.")
    elif isinstance(value, str):
        if "\x00" in value:
            raise InvalidArgument(f"invalid {name}: {value!r} contains a NUL byte")
    elif isinstance(value, Mapping):  # a map field
        for key, item in value.items():
            _check_value(key, f"{name} key")
            _check_value(item, f"{name}[{key!r}]")
    elif isinstance(value, Iterable) and not isinstance(value, bytes):  # a repeated field
        for item in value:
            _check_value(item, name)


def console_size(rows: int, cols: int) -> None:
    if rows > MAX_CONSOLE or cols > MAX_CONSOLE:
        raise InvalidArgument(f"invalid console size {rows}x{cols}: rows and columns are "
                              f"at most {MAX_CONSOLE}")


def fits_console(rows: int, cols: int) -> bool:
    return rows <= MAX_CONSOLE and cols <= MAX_CONSOLE
