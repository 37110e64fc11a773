"""Variable substitution and word splitting as Docker's classic builder does it
(moby/buildkit ``frontend/dockerfile/shell/lex.go``), for the instructions that expand
variables (ADD COPY ENV EXPOSE FROM LABEL STOPSIGNAL USER VOLUME WORKDIR ...).

* ``'...'`` is literal; ``"..."`` expands ``$`` and lets the escape character quote
  ``"``, ``$`` and itself (before anything else the escape is kept);
* outside quotes the escape character makes the next character literal;
* ``$NAME``, ``${NAME}``, ``${NAME:-word}``, ``${NAME-word}``, ``${NAME:+word}``,
  ``${NAME+word}``; an unset variable expands to nothing; ``$`` before anything that is
  not a name is literal.

RUN, CMD and ENTRYPOINT are never expanded here: their shell does it.
"""

from __future__ import annotations

from collections.abc import Mapping

from vocab.errors import InvalidArgument


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        ch = self.peek()
        if ch:
            self.pos += 1
        return ch


class Lexer:
    def __init__(self, escape: str = "\\") -> None:
        self.escape = escape

    def word(self, text: str, env: Mapping[str, str]) -> str:
        """One word: quotes removed, variables expanded (whitespace kept)."""
        return "".join(w for w, _ in self._run(text, env, split=False)) if text else ""

    def words(self, text: str, env: Mapping[str, str]) -> list[str]:
        """Words split on unquoted whitespace, each processed like ``word``."""
        return [w for w, _ in self._run(text, env, split=True)]

    def _run(self, text: str, env: Mapping[str, str], split: bool) -> list[tuple[str, bool]]:
        sc = _Scanner(text)
        words: list[tuple[str, bool]] = []
        cur: list[str] = []
        started = False
        while True:
            ch = sc.peek()
            if not ch:
                break
            if split and ch in " \t\r\n":
                sc.next()
                if started:
                    words.append(("".join(cur), True))
                    cur, started = [], False
                continue
            started = True
            if ch == "'":
                sc.next()
                cur.append(self._single(sc))
            elif ch == '"':
                sc.next()
                cur.append(self._double(sc, env))
            elif ch == "$":
                sc.next()
                cur.append(self._dollar(sc, env))
            elif ch == self.escape:
                sc.next()
                cur.append(sc.next())
            else:
                cur.append(sc.next())
        if started or not split:
            words.append(("".join(cur), True))
        return words

    def _single(self, sc: _Scanner) -> str:
        out: list[str] = []
        while True:
            ch = sc.next()
            if not ch:
                raise InvalidArgument("unexpected end of statement while looking for "
                                      "matching single-quote")
            if ch == "'":
                return "".join(out)
            out.append(ch)

    def _double(self, sc: _Scanner, env: Mapping[str, str]) -> str:
        out: list[str] = []
        while True:
            ch = sc.peek()
            if not ch:
                raise InvalidArgument("unexpected end of statement while looking for "
                                      "matching double-quote")
            if ch == '"':
                sc.next()
                return "".join(out)
            if ch == "$":
                sc.next()
                out.append(self._dollar(sc, env))
                continue
            sc.next()
            if ch == self.escape and sc.peek() in ('"', "$", self.escape) and sc.peek():
                ch = sc.next()
            out.append(ch)

    def _dollar(self, sc: _Scanner, env: Mapping[str, str]) -> str:
        if sc.peek() != "{":
            name = self._name(sc)
            if not name:
                return "$"
            return env.get(name, "")
        sc.next()
        name = self._name(sc)
        if not name:
            raise InvalidArgument(f"bad substitution: missing name in {sc.text!r}")
        ch = sc.next()
        if ch == "}":
            return env.get(name, "")
        colon = ch == ":"
        if colon:
            ch = sc.next()
        if ch not in ("-", "+", "?"):
            raise InvalidArgument(f"unsupported modifier ({ch}) in substitution: {sc.text!r}")
        word = self._until_brace(sc, env)
        value = env.get(name)
        unset = value is None or (colon and value == "")
        if ch == "-":
            return word if unset else str(value)
        if ch == "+":
            return "" if unset else word
        if unset:
            raise InvalidArgument(f"{name}: {word or 'is not allowed to be unset'}")
        return str(value)

    def _until_brace(self, sc: _Scanner, env: Mapping[str, str]) -> str:
        out: list[str] = []
        while True:
            ch = sc.peek()
            if not ch:
                raise InvalidArgument(f"syntax error: missing '}}' in {sc.text!r}")
            if ch == "}":
                sc.next()
                return "".join(out)
            if ch == "'":
                sc.next()
                out.append(self._single(sc))
            elif ch == '"':
                sc.next()
                out.append(self._double(sc, env))
            elif ch == "$":
                sc.next()
                out.append(self._dollar(sc, env))
            elif ch == self.escape:
                sc.next()
                out.append(sc.next())
            else:
                out.append(sc.next())

    @staticmethod
    def _name(sc: _Scanner) -> str:
        ch = sc.peek()
        if ch.isdigit() and ch.isascii():
            return sc.next()  # $1 is one digit, as in the shell
        out: list[str] = []
        while (ch := sc.peek()) and ch.isascii() and (ch.isalnum() or ch == "_"):
            out.append(sc.next())
        return "".join(out)
