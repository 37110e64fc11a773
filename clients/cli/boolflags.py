"""docker's boolean flags with a value (`--sig-proxy`, `commit -p/--pause`).


In docker (pflag) a bare `--sig-proxy` means true and a value is only read after '='
(`--sig-proxy=false`); `--sig-proxy false` is the flag followed by a positional. argparse
reads a flag's value from the next word, so `commit -p CONTAINER` would take CONTAINER as
the value: `explicit()` turns bare boolean flags before the first positional into
`FLAG=true` first.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

# typing costs the CLI ~3 ms to import; mypy treats TYPE_CHECKING as true wherever it is defined
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def parse_bool(text: str) -> bool:
    """docker's boolean flag values: --sig-proxy=false."""
    value = text.strip().lower()
    if value in ("true", "1", "t", "yes"):
        return True
    if value in ("false", "0", "f", "no"):
        return False
    from clients.cli.units import UsageError

    raise UsageError(f"invalid boolean value {text!r}")


class BoolFlag(argparse.Action):
    """A boolean flag, true when bare, else its `=VALUE` (see the module docstring)."""

    def __init__(self, option_strings: Sequence[str], dest: str, default: bool = True,
                 help: str | None = None) -> None:
        super().__init__(option_strings, dest, default=default, type=parse_bool,
                         metavar="true|false", help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        setattr(namespace, self.dest, values)


def explicit(options: dict[str, argparse.Action], args: list[str]) -> list[str]:
    """``args`` with each bare BoolFlag before the first positional (or ``--``) given
    ``=true``; ``options`` is the parser's option string → action map."""
    out = list(args)
    i = 0
    while i < len(out):
        arg = out[i]
        if arg == "--" or arg == "-" or not arg.startswith("-"):
            break  # the first positional: what follows may be a container's command
        action = options.get(arg)
        if isinstance(action, BoolFlag):
            out[i] = f"{arg}=true"
        elif action is not None:
            i += 1 if action.nargs != 0 else 0  # its value is the next word
        elif not arg.startswith("--"):
            i += _cluster_skip(options, arg)
        i += 1
    return out


def _cluster_skip(options: dict[str, argparse.Action], arg: str) -> int:
    """Short flags together (`-it`, `-eK=V`, `-ie K=V`): 1 when the next word is the value
    of the last one."""
    for j, char in enumerate(arg[1:], start=1):
        action = options.get(f"-{char}")
        if action is None:
            return 0
        if action.nargs != 0:  # takes a value: the rest of this word, or the next one
            return 1 if j == len(arg) - 1 else 0
    return 0


__all__ = ["BoolFlag", "explicit", "parse_bool"]
