"""``.dockerignore`` with Docker's pattern rules (moby/patternmatcher).

One pattern a line; ``#`` starts a comment line; blank lines are skipped; patterns are
cleaned like paths (``./a//b/`` → ``a/b``, a leading ``/`` is dropped). ``*`` and ``?``
match within one path element, ``[...]`` is a character class, ``**`` matches any number
of elements (also none). A pattern also excludes everything under a directory it
matches. ``!pattern`` re-includes what it matches; the last pattern that matches a path
decides.
"""

from __future__ import annotations

import posixpath
import re
from typing import NamedTuple


# Not a dataclass: `muelle build` imports this module, and dataclasses (with inspect)
# would cost each run ~5 ms of start-up.
class _Pattern(NamedTuple):
    regex: re.Pattern[str]
    exclusion: bool
    text: str


def _clean(pattern: str) -> str:
    cleaned = posixpath.normpath(pattern.strip())
    cleaned = cleaned.lstrip("/")
    return "" if cleaned == "." else cleaned


def _regex(pattern: str) -> re.Pattern[str]:
    out = ["^"]
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            if pattern[i:i + 2] == "**":
                i += 2
                if pattern[i:i + 1] == "/":
                    out.append("(?:.*/)?")  # "**/" : any leading dirs, or none
                    i += 1
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                out.append(re.escape(ch))
            else:
                body = pattern[i + 1:end]
                if body.startswith("!") or body.startswith("^"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = end
        elif ch == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(ch))
        i += 1
    out.append("$")
    return re.compile("".join(out))


class Ignore:
    def __init__(self, text: str = "") -> None:
        self.patterns: list[_Pattern] = []
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            exclusion = line.startswith("!")
            if exclusion:
                line = line[1:].strip()
            cleaned = _clean(line)
            if not cleaned:
                continue
            self.patterns.append(_Pattern(_regex(cleaned), exclusion, cleaned))

    @property
    def has_exceptions(self) -> bool:
        return any(p.exclusion for p in self.patterns)

    def ignored(self, rel: str) -> bool:
        """Is ``rel`` (a path relative to the context root, "/"-separated) left out?"""
        rel = _clean(rel)
        prefixes = []
        parts = rel.split("/")
        for n in range(1, len(parts) + 1):
            prefixes.append("/".join(parts[:n]))
        matched = False
        for p in self.patterns:
            if any(p.regex.match(x) for x in prefixes):
                matched = not p.exclusion
        return matched

    def may_include_under(self, rel_dir: str) -> bool:
        """Could an exception re-include something below the ignored ``rel_dir``? (Then
        the walk must go in.)"""
        rel_dir = _clean(rel_dir)
        for p in self.patterns:
            if p.exclusion and (p.text.startswith(rel_dir + "/") or "*" in p.text
                                or "?" in p.text or "[" in p.text):
                return True
        return False
