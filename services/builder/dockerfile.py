"""Dockerfile parsing, as Docker's classic builder reads one.

Parser directives (``# escape=`` and ``# syntax=``) count only at the very top; comment
lines are dropped, also inside a continued instruction; a line ending in the escape
character (trailing blanks allowed) continues on the next; blank lines inside a
continuation are skipped. Arguments in JSON array form (``["a", "b"]``) are the exec
form, anything else the shell form. Flags (``--from=x``) are read off the front of
instructions that take them. Variables are not expanded here: that needs the build
state (see build.py), and RUN/CMD/ENTRYPOINT are never expanded by the builder.

BuildKit-only syntax (heredocs, ``RUN --mount``, ``COPY --link``) is refused clearly.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from vocab.errors import InvalidArgument

INSTRUCTIONS = ("FROM", "RUN", "CMD", "LABEL", "MAINTAINER", "EXPOSE", "ENV", "ADD", "COPY",
                "ENTRYPOINT", "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL",
                "HEALTHCHECK", "SHELL")
# Flags each instruction accepts (the classic builder's set).
FLAGS = {
    "FROM": {"platform"},
    "RUN": set(),
    "COPY": {"from", "chown", "chmod"},
    "ADD": {"chown", "chmod"},
    "HEALTHCHECK": {"interval", "timeout", "start-period", "start-interval", "retries"},
}
_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")


@dataclass
class Instruction:
    cmd: str  # upper case: "RUN"
    line: int  # 1-based line where it starts
    original: str  # the instruction as written, continuations joined
    rest: str  # the text after the keyword and flags
    flags: dict[str, str] = field(default_factory=dict)
    exec_form: list[str] | None = None  # the JSON form's words
    sub: Instruction | None = None  # ONBUILD's instruction

    def error(self, message: str) -> InstructionError:
        return InstructionError(self.line, message)


class InstructionError(InvalidArgument):
    """An instruction refused: the builder's message names its line; ``reason`` is the
    message alone (dockerd's words for a `commit --change`, which has no lines)."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"Dockerfile parse error line {line}: {reason}")
        self.reason = reason


@dataclass
class Dockerfile:
    instructions: list[Instruction]
    escape: str = "\\"
    directives: dict[str, str] = field(default_factory=dict)


def parse(text: str) -> Dockerfile:
    lines = text.replace("\r\n", "\n").split("\n")
    escape = "\\"
    directives: dict[str, str] = {}
    i = 0
    # Directives: consecutive "# key=value" lines at the top; anything else ends them.
    while i < len(lines):
        m = _DIRECTIVE.match(lines[i])
        if not m:
            break
        key, value = m.group(1).lower(), m.group(2)
        if key in directives:
            raise InvalidArgument(f"only one {key} parser directive can be used")
        directives[key] = value
        i += 1
    if "escape" in directives:
        escape = directives["escape"]
        if escape not in ("\\", "`"):
            raise InvalidArgument(f"invalid escape token '{escape}' does not match ` or \\")
    cont = re.compile(re.escape(escape) + r"[ \t]*$")
    out: list[Instruction] = []
    while i < len(lines):
        raw = lines[i]
        start = i + 1
        i += 1
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        parts: list[str] = []
        text_line = raw.lstrip()
        while True:
            m = cont.search(text_line)
            if not m:
                parts.append(text_line)
                break
            parts.append(text_line[:m.start()])
            # Continue past comment and blank lines, as Docker does.
            while i < len(lines) and (not lines[i].strip() or lines[i].lstrip().startswith("#")):
                i += 1
            if i >= len(lines):
                break
            text_line = lines[i]
            i += 1
        joined = "".join(parts).strip()
        out.append(_instruction(joined, start, escape))
    return Dockerfile(out, escape, directives)


def _instruction(text: str, line: int, escape: str, nested: bool = False) -> Instruction:
    keyword, _, rest = text.partition(" ") if " " in text else (text, "", "")
    if "\t" in keyword:
        keyword, _, more = keyword.partition("\t")
        rest = (more + " " + rest).strip()
    cmd = keyword.upper()
    rest = rest.strip()
    ins = Instruction(cmd=cmd, line=line, original=text, rest=rest)
    if cmd not in INSTRUCTIONS:
        raise ins.error(f"unknown instruction: {keyword}")
    if "<<" in rest and cmd in ("RUN", "COPY", "ADD") and re.search(r"<<-?[\"']?[A-Za-z_]", rest):
        raise ins.error("heredocs need BuildKit; the classic builder does not support them")
    if cmd == "ONBUILD":
        if nested:
            raise ins.error("ONBUILD cannot be nested (ONBUILD ONBUILD)")
        if not rest:
            raise ins.error("ONBUILD requires at least one argument")
        sub = _instruction(rest, line, escape, nested=True)
        if sub.cmd in ("FROM", "MAINTAINER"):
            raise ins.error(f"{sub.cmd} isn't allowed as an ONBUILD trigger")
        ins.sub = sub
        return ins
    ins.flags, ins.rest = _flags(ins, rest)
    if cmd in ("RUN", "CMD", "ENTRYPOINT", "SHELL", "VOLUME", "COPY", "ADD", "HEALTHCHECK"):
        ins.exec_form = _json_form(ins.rest)
    if cmd == "SHELL" and ins.exec_form is None:
        raise ins.error("SHELL requires the arguments to be in JSON form")
    if cmd in ("FROM", "USER", "WORKDIR", "STOPSIGNAL", "ARG", "ENV", "LABEL", "COPY", "ADD",
               "EXPOSE", "MAINTAINER") and not ins.rest:
        raise ins.error(f"{cmd} requires at least one argument")
    return ins


def _flags(ins: Instruction, rest: str) -> tuple[dict[str, str], str]:
    flags: dict[str, str] = {}
    allowed = FLAGS.get(ins.cmd, set())
    while rest.startswith("--"):
        word, _, after = rest.partition(" ")
        if word == "--":
            rest = after.strip()
            break
        name, eq, value = word[2:].partition("=")
        if ins.cmd == "RUN" and name in ("mount", "network", "security"):
            raise ins.error(f"RUN --{name} needs BuildKit; the classic builder does not "
                            "support it")
        if name not in allowed:
            raise ins.error(f"unknown flag: --{name}")
        if not eq:
            raise ins.error(f"missing a value on flag: --{name}")
        if name in flags:
            raise ins.error(f"duplicate flag specified: --{name}")
        flags[name] = value
        rest = after.strip()
    return flags, rest


def _json_form(rest: str) -> list[str] | None:
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(rest)
    except ValueError:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return None
    return value


def split_words(text: str, escape: str = "\\") -> list[str]:
    """Words separated by unquoted blanks, quotes and escapes kept (Docker's parseWords):
    ``a="b c" d`` → ['a="b c"', 'd']. Expansion later removes the quotes."""
    words: list[str] = []
    cur: list[str] = []
    quote = ""
    k = 0
    while k < len(text):
        ch = text[k]
        if not quote and ch in " \t":
            if cur:
                words.append("".join(cur))
                cur = []
            k += 1
            continue
        if ch == escape and k + 1 < len(text):
            cur.append(ch + text[k + 1])
            k += 2
            continue
        if quote and ch == quote:
            quote = ""
        elif not quote and ch in ("'", '"'):
            quote = ch
        cur.append(ch)
        k += 1
    if cur:
        words.append("".join(cur))
    return words


def name_values(ins: Instruction, escape: str = "\\") -> list[tuple[str, str]]:
    """ENV/LABEL arguments as (name, unexpanded value) pairs; ``ENV k v w`` (the legacy
    form, one pair, the value the rest of the line) too."""
    words = split_words(ins.rest, escape)
    if not words:
        raise ins.error(f"{ins.cmd} requires at least one argument")
    if "=" not in words[0]:
        if len(words) < 2:
            raise ins.error(f"{ins.cmd} must have two arguments")
        name = words[0]
        value = ins.rest[len(name):].strip()
        return [(name, value)]
    pairs = []
    for w in words:
        name, eq, value = w.partition("=")
        if not eq:
            raise ins.error(f"Syntax error - can't find = in \"{w}\". Must be of the "
                            "form: name=value")
        if not name:
            raise ins.error(f"{ins.cmd} names can not be blank")
        pairs.append((name, value))
    return pairs
