"""The part of Go's text/template that docker's `--format` users write.

    {{.Field.Sub}}  {{.}}  {{$}}  {{json .X}}  {{join .X ", "}}  {{index .X "key"}}
    {{range .X}}..{{else}}..{{end}}  {{range $k, $v := .X}}  {{if .X}}..{{else}}..{{end}}
    {{with .X}}  pipelines {{.X | json}}, ( ... ), {{- trims -}}, string/number literals
    functions: json split join title lower upper pad truncate println print printf len
    index eq ne lt le gt ge not and or

Data is what the JSON of `inspect` is (dicts, lists, str, int, float, bool, None) or, for
`ps` and `images`, a Fields dict: a missing key there is an error, as a Go struct's field,
while a missing map key prints "<no value>". Values print as Go's fmt %v does.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

NO_VALUE = "<no value>"


class TemplateError(Exception):
    """A template that does not parse or cannot run; the message says where."""


class Fields(dict):  # type: ignore[type-arg]
    """A Go struct's fields: asking for one it lacks is an error."""


def _to_text(value: Any) -> str:
    """Go's fmt %v of a JSON-decoded or Fields value."""
    if value is None:
        return NO_VALUE
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, list | tuple):
        return "[" + " ".join(_to_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_to_text(value[k])}" for k in sorted(value)) + "]"
    return str(value)


def _go_float(value: float) -> str:
    """Go's %v of a float64: the shortest digits, in e-notation from 1e+06 or below 1e-04
    (1e+06, 1.5, 6.7108864e+07)."""
    from decimal import Decimal

    if value != value or value in (float("inf"), float("-inf")):
        return {"nan": "NaN", "inf": "+Inf", "-inf": "-Inf"}[repr(value)]
    if value == 0:
        return "0"
    d = Decimal(repr(value))
    sign, digits, _ = d.as_tuple()
    text = "".join(map(str, digits)).rstrip("0") or "0"
    exp = d.adjusted()
    prefix = "-" if sign else ""
    if exp < -4 or exp >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{prefix}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if exp < 0:
        return f"{prefix}0.{'0' * (-exp - 1)}{text}"
    whole, frac = text[:exp + 1].ljust(exp + 1, "0"), text[exp + 1:]
    return prefix + whole + ("." + frac if frac else "")


def _truth(value: Any) -> bool:
    return bool(value) if value is not None else False


def _json(value: Any) -> str:
    if isinstance(value, Fields):  # its values, not its methods (.Label)
        value = {k: v for k, v in value.items() if not callable(v)}
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _pad(value: Any, left: int, right: int) -> str:
    return " " * int(left) + _to_text(value) + " " * int(right)


def _truncate(value: Any, length: int) -> str:
    return _to_text(value)[:int(length)]


def _index(value: Any, *keys: Any) -> Any:
    for key in keys:
        try:
            value = value[key]
        except (KeyError, IndexError, TypeError):
            if isinstance(value, dict):
                return None
            raise TemplateError(f"error calling index: cannot index {key!r}") from None
    return value


def _printf(fmt: str, *args: Any) -> str:
    """Go's printf for the verbs people use in formats: %s %v %d %q %%."""
    import re

    values = iter(args)

    def verb(match: re.Match[str]) -> str:
        if match.group(0) == "%%":
            return "%"
        try:
            value = next(values)
        except StopIteration:
            return f"%!{match.group(0)[-1]}(MISSING)"
        return json.dumps(value) if match.group(0)[-1] == "q" else _to_text(value)
    return re.sub(r"%%|%[-+# 0-9.]*[svdqt]", verb, fmt)


def _compare(op: Callable[[Any, Any], bool]) -> Callable[..., bool]:
    def call(a: Any, *others: Any) -> bool:
        try:
            return all(op(a, b) for b in others)
        except TypeError:
            raise TemplateError("incompatible types for comparison") from None
    return call


FUNCS: dict[str, Callable[..., Any]] = {
    "json": _json,
    "split": lambda s, sep: s.split(sep),
    "join": lambda items, sep: sep.join(_to_text(i) for i in items or []),
    "title": lambda s: s.title(),
    "lower": lambda s: s.lower(),
    "upper": lambda s: s.upper(),
    "pad": _pad,
    "truncate": _truncate,
    "println": lambda *a: " ".join(_to_text(x) for x in a) + "\n",
    "print": lambda *a: "".join(_to_text(x) for x in a),
    "printf": _printf,
    "len": lambda v: len(v) if v is not None else 0,
    "index": _index,
    "eq": _compare(lambda a, b: a == b),
    "ne": _compare(lambda a, b: a != b),
    "lt": _compare(lambda a, b: a < b),
    "le": _compare(lambda a, b: a <= b),
    "gt": _compare(lambda a, b: a > b),
    "ge": _compare(lambda a, b: a >= b),
    "not": lambda v: not _truth(v),
    "and": lambda *a: next((x for x in a if not _truth(x)), a[-1]),
    "or": lambda *a: next((x for x in a if _truth(x)), a[-1]),
}


# A table's header row: {{json .Labels}} titles the column LABELS, as docker's does.
HEADER_FUNCS: dict[str, Callable[..., Any]] = {
    **FUNCS,
    **{name: (lambda *a: a[0] if a else "") for name in
       ("json", "join", "title", "lower", "upper", "split", "truncate", "len")},
    "pad": lambda v, *_: v,
}


# ---------------------------------------------------------------------- lexing

def _split(text: str) -> list[tuple[str, str]]:
    """[("text", s) | ("action", s)], with {{- and -}} trimming applied."""
    parts: list[tuple[str, str]] = []
    pos = 0
    while True:
        start = text.find("{{", pos)
        if start < 0:
            parts.append(("text", text[pos:]))
            return parts
        chunk = text[pos:start]
        end = _action_end(text, start + 2)
        inner = text[start + 2:end]
        if inner.startswith("- ") or inner == "-":
            chunk = chunk.rstrip()
            inner = inner[1:]
        if inner.endswith(" -"):
            inner = inner[:-1]
            rest = end + 2
            while rest < len(text) and text[rest].isspace():
                rest += 1
            pos = rest
        else:
            pos = end + 2
        parts.append(("text", chunk))
        parts.append(("action", inner.strip()))


def _action_end(text: str, pos: int) -> int:
    quote = ""
    while pos < len(text):
        ch = text[pos]
        if quote:
            if ch == "\\" and quote == '"':
                pos += 1
            elif ch == quote:
                quote = ""
        elif ch in "\"`":
            quote = ch
        elif text.startswith("}}", pos):
            return pos
        pos += 1
    raise TemplateError("unclosed action")


def _tokens(action: str) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(action):
        ch = action[i]
        if ch.isspace():
            i += 1
        elif ch == ")" and action.startswith(").", i):  # (pipeline).Field
            j = i + 1
            while j < len(action) and not action[j].isspace() and action[j] not in "|(),":
                j += 1
            out.append(action[i:j])
            i = j
        elif ch in "|()":
            out.append(ch)
            i += 1
        elif ch in "\"`":
            j = i + 1
            while j < len(action) and action[j] != ch:
                j += 2 if action[j] == "\\" and ch == '"' else 1
            if j >= len(action):
                raise TemplateError(f"unterminated quoted string in {action!r}")
            out.append(action[i:j + 1])
            i = j + 1
        elif action.startswith(":=", i):
            out.append(":=")
            i += 2
        elif ch == ",":
            out.append(",")
            i += 1
        else:
            j = i
            while j < len(action) and not action[j].isspace() and action[j] not in "|(),":
                if action.startswith(":=", j):
                    break
                j += 1
            out.append(action[i:j])
            i = j
    return out


# ---------------------------------------------------------------------- parsing

class _Node:
    pass


class _Text(_Node):
    def __init__(self, text: str) -> None:
        self.text = text


class _Action(_Node):
    def __init__(self, pipe: list[list[Any]]) -> None:
        self.pipe = pipe


class _Block(_Node):
    def __init__(self, kind: str, pipe: list[list[Any]], names: list[str]) -> None:
        self.kind = kind  # range, if, with
        self.pipe = pipe
        self.names = names  # range $k, $v := ...
        self.body: list[_Node] = []
        self.other: list[_Node] = []


def _pipeline(tokens: list[str]) -> list[list[Any]]:
    """Commands separated by |; each a list of args; ( ... ) nests a pipeline."""
    commands: list[list[Any]] = [[]]
    stack: list[list[list[Any]]] = []
    for tok in tokens:
        if tok == "|":
            commands.append([])
        elif tok == "(":
            stack.append(commands)
            commands = [[]]
        elif tok.startswith(")"):
            if not stack:
                raise TemplateError("unexpected )")
            inner = commands
            commands = stack.pop()
            commands[-1].append(("pipe", inner, tok[2:]))  # tok[2:]: a field chain after
        else:
            commands[-1].append(tok)
    if stack:
        raise TemplateError("unclosed (")
    if any(not c for c in commands):
        raise TemplateError("missing command in pipeline")
    return commands


def parse(text: str) -> list[_Node]:
    root: list[_Node] = []
    # (block, in its else branch, opened by {{else if}}: closed by its parent's {{end}})
    stack: list[tuple[_Block, bool, bool]] = []

    def target() -> list[_Node]:
        if not stack:
            return root
        block, in_else, _ = stack[-1]
        return block.other if in_else else block.body

    for kind, part in _split(text):
        if kind == "text":
            if part:
                target().append(_Text(part))
            continue
        if part.startswith("/*"):
            continue  # a comment
        tokens = _tokens(part)
        if not tokens:
            raise TemplateError("missing value for command")
        word = tokens[0]
        if word == "end":
            if not stack:
                raise TemplateError("unexpected {{end}}")
            while stack.pop()[2]:
                pass
        elif word == "else":
            if not stack or stack[-1][1]:
                raise TemplateError("unexpected {{else}}")
            block, _, chained = stack.pop()
            stack.append((block, True, chained))
            if len(tokens) > 1 and tokens[1] == "if":
                nested = _Block("if", _pipeline(tokens[2:]), [])
                block.other.append(nested)
                stack.append((nested, False, True))
        elif word in ("range", "if", "with"):
            rest, names = tokens[1:], []
            if ":=" in rest:
                at = rest.index(":=")
                names = [t for t in rest[:at] if t != ","]
                rest = rest[at + 1:]
            new_block = _Block(word, _pipeline(rest), names)
            target().append(new_block)
            stack.append((new_block, False, False))
        else:
            target().append(_Action(_pipeline(tokens)))
    if stack:
        raise TemplateError(f"unexpected EOF: {{{{{stack[-1][0].kind}}}}} without {{{{end}}}}")
    return root


# ---------------------------------------------------------------------- running

class _Scope:
    def __init__(self, dot: Any, root: Any, variables: dict[str, Any],
                 funcs: dict[str, Callable[..., Any]]) -> None:
        self.dot = dot
        self.root = root
        self.vars = variables
        self.funcs = funcs

    def enter(self, dot: Any, variables: dict[str, Any] | None = None) -> _Scope:
        return _Scope(dot, self.root, self.vars if variables is None else variables,
                      self.funcs)


def _field(value: Any, path: list[str]) -> Any:
    for name in path:
        if not name:
            continue
        if isinstance(value, Fields):
            if name not in value:
                raise TemplateError(f"can't evaluate field {name}")
            value = value[name]
        elif isinstance(value, dict):
            value = value.get(name)
        elif value is None:
            return None
        else:
            raise TemplateError(f"can't evaluate field {name} in type {type(value).__name__}")
    return value


def _arg(token: Any, scope: _Scope) -> Any:
    if isinstance(token, tuple):
        value = _run_pipeline(token[1], scope)
        return _field(value, token[2].split(".")) if token[2] else value
    if token == ".":
        return scope.dot
    if token.startswith("."):
        return _field(scope.dot, token[1:].split("."))
    if token.startswith("$"):
        name, _, rest = token.partition(".")
        if name == "$":
            base = scope.root
        elif name in scope.vars:
            base = scope.vars[name]
        else:
            raise TemplateError(f"undefined variable: {name}")
        return _field(base, rest.split(".")) if rest else base
    if token[0] == '"':
        return json.loads(token)
    if token[0] == "`":
        return token[1:-1]
    if token in ("true", "false"):
        return token == "true"
    if token == "nil":
        return None
    try:
        return int(token)
    except ValueError:
        pass
    try:
        return float(token)
    except ValueError:
        raise TemplateError(f'function "{token}" not defined') from None


def _run_command(command: list[Any], scope: _Scope, piped: tuple[Any] | None) -> Any:
    head = command[0]
    funcs = scope.funcs
    if isinstance(head, str) and head in funcs:
        args = [_arg(t, scope) for t in command[1:]]
        if piped is not None:
            args.append(piped[0])
        try:
            return funcs[head](*args)
        except TemplateError:
            raise
        except (TypeError, AttributeError, ValueError) as exc:
            raise TemplateError(f"error calling {head}: {exc}") from None
    value = _arg(head, scope)
    if callable(value):  # a method of the data: {{.Label "com.example"}}
        args = [_arg(t, scope) for t in command[1:]] + ([piped[0]] if piped else [])
        try:
            return value(*args)
        except TypeError as exc:
            raise TemplateError(f"error calling {head}: {exc}") from None
    if len(command) > 1 or piped is not None:
        raise TemplateError(f"can't give argument to non-function {head}")
    return value


def _run_pipeline(pipe: list[list[Any]], scope: _Scope) -> Any:
    value: tuple[Any] | None = None
    for command in pipe:
        value = (_run_command(command, scope, value),)
    return value[0] if value else None


def _run(nodes: list[_Node], scope: _Scope, out: list[str]) -> None:
    for node in nodes:
        if isinstance(node, _Text):
            out.append(node.text)
        elif isinstance(node, _Action):
            out.append(_to_text(_run_pipeline(node.pipe, scope)))
        elif isinstance(node, _Block):
            value = _run_pipeline(node.pipe, scope)
            if node.kind == "if":
                _run(node.body if _truth(value) else node.other, scope, out)
            elif node.kind == "with":
                if _truth(value):
                    _run(node.body, scope.enter(value), out)
                else:
                    _run(node.other, scope, out)
            else:
                _range(node, value, scope, out)


def _range(node: _Block, value: Any, scope: _Scope, out: list[str]) -> None:
    if isinstance(value, dict):
        items = [(k, value[k]) for k in sorted(value)]
    elif isinstance(value, list | tuple):
        items = list(enumerate(value))
    elif value is None:
        items = []
    elif isinstance(value, int):
        items = [(i, i) for i in range(value)]
    else:
        raise TemplateError(f"range can't iterate over {_to_text(value)}")
    if not items:
        _run(node.other, scope, out)
        return
    for key, item in items:
        variables = dict(scope.vars)
        if len(node.names) == 1:
            variables[node.names[0]] = item
        elif len(node.names) == 2:
            variables[node.names[0]], variables[node.names[1]] = key, item
        _run(node.body, scope.enter(item, variables), out)


class Template:
    """``Template("{{.Name}}").render(data)``; TemplateError for bad text or data."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.nodes = parse(text)

    def render(self, data: Any, header: bool = False) -> str:
        """``header``: render a table's header row, ``data`` holding each field's title;
        functions then pass the title through (docker's HeaderFunctions)."""
        out: list[str] = []
        _run(self.nodes, _Scope(data, data, {}, HEADER_FUNCS if header else FUNCS), out)
        return "".join(out)
