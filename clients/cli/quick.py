"""A plain `run`/`create`/`pull` command line parsed without argparse.

argparse costs every start ~10 ms to import (it needs `re`, which needs `enum`), more than
parsing itself: `muelle run --rm IMAGE true` is the command that matters most for speed,
and `muelle pull REF` starts a cold pull (with a cold page cache argparse's ~20 modules
take ~15 ms to read). `pull` takes `[--platform P] REF`, the option before or after.
For run/create, this parser reads the options that run_options.py declares and handles
the usual forms: `--opt VALUE`, `--opt=VALUE`, `-o VALUE`, `-oVALUE`, clustered flags
(`-it`, `-dit`), then the image and its command, word for word. Anything else
(abbreviations, `--help`, `--`, a value that starts with "-", a bad number, an unknown
option...) returns None, and argparse parses the whole line, errors included.
tests/unit/cli/test_quick.py checks that both give the same result.
"""

from __future__ import annotations

from clients.cli.run_options import REMAINDER, container_options

# typing costs the CLI ~3 ms to import; mypy treats TYPE_CHECKING as true wherever it is defined
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

VERBS = ("run", "create")
PULL = "pull"
BOOL_FLAG = "bool-flag"  # run_options' BoolFlag, as recorded here
_TRUE = ("true", "1", "t", "yes")  # boolflags.parse_bool's spellings
_FALSE = ("false", "0", "f", "no")


class Args:
    """What argparse.Namespace would hold (attributes only)."""

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)

    def __repr__(self) -> str:
        return f"Args({self.__dict__!r})"


class _Option:
    __slots__ = ("dest", "kind", "default", "convert")

    def __init__(self, dest: str, kind: str, default: Any, convert: Any) -> None:
        self.dest = dest
        self.kind = kind  # "flag", "value", "append", "bool" or "help"
        self.default = default
        self.convert = convert


class _Recorder:
    """Takes run_options' add_argument calls, as argparse would, and keeps the options."""

    def __init__(self) -> None:
        self.options: dict[str, _Option] = {}
        self.positionals: list[tuple[str, Any]] = []

    def add_argument(self, *names: str, action: Any = None, default: Any = None,
                     type: Any = None, nargs: Any = None, dest: str | None = None,
                     help: str | None = None) -> None:
        if not names[0].startswith("-"):
            self.positionals.append((names[0], nargs))
            return
        longs = [n for n in names if n.startswith("--")]
        dest = dest or (longs[0] if longs else names[0])[2 if longs else 1:].replace("-", "_")
        if action == "store_true":
            option = _Option(dest, "flag", False, None)
        elif action == "append":
            option = _Option(dest, "append", default, type)
        elif action == BOOL_FLAG:
            option = _Option(dest, "bool", True, None)
        elif action == "help":
            option = _Option(dest, "help", None, None)
        elif action is None:
            option = _Option(dest, "value", default, type)
        else:
            raise ValueError(f"quick.py cannot parse action {action!r} of {names}")
        for name in names:
            self.options[name] = option


def _recorded(verb: str) -> _Recorder:
    recorder = _Recorder()
    container_options(recorder, verb, BOOL_FLAG)
    if recorder.positionals != [("image", None), ("command", REMAINDER)]:
        raise ValueError("quick.py expects IMAGE then COMMAND... as the positionals")
    return recorder


def verb_of(argv: Sequence[str]) -> str | None:
    """The first word after the global options (-H/--host), or None if it takes argparse
    to tell (an abbreviated option, --help)."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-H", "--host"):
            i += 2
        elif arg.startswith("--host=") or (arg.startswith("-H") and len(arg) > 2):
            i += 1
        elif arg.startswith("-"):
            return None
        else:
            return arg
    return None


def parse(argv: Sequence[str]) -> Args | None:
    """The Namespace argparse would make of ``argv`` (`[-H HOST] run|create ...`), or
    None when this parser does not handle the line."""
    host, i = _global(argv)
    if i is None or i >= len(argv):
        return None
    verb = argv[i]
    # The global TLS flags (parser.py) are never on a line this parser takes.
    values: dict[str, Any] = {"host": host, "verb": verb, "tlsverify": None,
                              "tlscacert": None, "tlscert": None, "tlskey": None}
    if verb == PULL:
        return _pull(argv[i + 1:], values)
    if verb not in VERBS:
        return None
    spec = _recorded(verb)
    for option in spec.options.values():
        if option.kind != "help":
            values[option.dest] = list(option.default) if option.kind == "append" \
                else option.default
    i += 1
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("-") or arg == "-":
            command = list(argv[i + 1:])
            if arg == "-" or "--" in command:  # argparse drops a "--" of the command
                return None
            values["image"], values["command"] = arg, command
            return Args(**values)
        if arg.startswith("--"):
            used = _long(spec, arg, argv[i + 1] if i + 1 < len(argv) else None, values)
        else:
            used = _short(spec, arg, argv[i + 1] if i + 1 < len(argv) else None, values)
        if used is None:
            return None
        i += used
    return None  # no image: argparse says what is missing


def _pull(words: Sequence[str], values: dict[str, Any]) -> Args | None:
    """`pull [--platform P] REF` (the option before or after REF), as parser.py's pull."""
    values["platform"], reference = "", None
    i = 0
    while i < len(words):
        word = words[i]
        if word.startswith("--platform="):
            values["platform"] = word[len("--platform="):]
        elif word == "--platform":
            if i + 1 == len(words) or words[i + 1].startswith("-"):
                return None
            values["platform"] = words[i + 1]
            i += 1
        elif word.startswith("-") or reference is not None:
            return None  # --help, an abbreviation, a second reference: argparse words it
        else:
            reference = word
        i += 1
    if reference is None:
        return None
    values["reference"] = reference
    return Args(**values)


def _global(argv: Sequence[str]) -> tuple[str | None, int | None]:
    """The -H value and the index of the verb; None as the index when argparse must."""
    host, i = None, 0
    while i < len(argv) and argv[i].startswith("-"):
        arg = argv[i]
        if arg in ("-H", "--host") and i + 1 < len(argv) and not argv[i + 1].startswith("-"):
            host, i = argv[i + 1], i + 2
        elif arg.startswith("--host="):
            host, i = arg[7:], i + 1
        elif arg.startswith("-H") and len(arg) > 2 and "=" not in arg:
            host, i = arg[2:], i + 1
        else:
            return None, None
    return host, i


def _long(spec: _Recorder, arg: str, following: str | None,
          values: dict[str, Any]) -> int | None:
    """Apply `--name[=value]`; how many words it used, or None."""
    name, eq, inline = arg.partition("=")
    option = spec.options.get(name)
    if option is None or option.kind == "help":
        return None
    if option.kind == "flag":
        if eq:
            return None
        values[option.dest] = True
        return 1
    if option.kind == "bool":
        if not eq:
            values[option.dest] = True
            return 1
        return 1 if _set_bool(option, inline, values) else None
    if eq:
        return 1 if _set(option, inline, values) else None
    if following is None or following.startswith("-"):
        return None
    return 2 if _set(option, following, values) else None


def _short(spec: _Recorder, arg: str, following: str | None,
           values: dict[str, Any]) -> int | None:
    """Apply `-x`, `-xVALUE`, `-xyz` (flags, the last may take a value); words used."""
    if "=" in arg:
        return None
    rest = arg[1:]
    while rest:
        option = spec.options.get("-" + rest[0])
        if option is None or option.kind in ("help", "bool"):
            return None
        rest = rest[1:]
        if option.kind == "flag":
            values[option.dest] = True
            continue
        if rest:
            return 1 if _set(option, rest, values) else None
        if following is None or following.startswith("-"):
            return None
        return 2 if _set(option, following, values) else None
    return 1


def _set(option: _Option, text: str, values: dict[str, Any]) -> bool:
    try:
        value = option.convert(text) if option.convert is not None else text
    except ValueError:
        return False  # argparse words the error
    if option.kind == "append":
        values[option.dest].append(value)
    else:
        values[option.dest] = value
    return True


def _set_bool(option: _Option, text: str, values: dict[str, Any]) -> bool:
    word = text.strip().lower()
    if word not in _TRUE + _FALSE:
        return False
    values[option.dest] = word in _TRUE
    return True
