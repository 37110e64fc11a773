"""Paths as strings, written as pathlib writes them, for the runtime's create path: pathlib
imports re, fnmatch, urllib.parse and ipaddress (~8 ms of every ``muelle-runtime create``,
a fresh process per container). The paths in messages read as they always did."""

from __future__ import annotations

import os


def clean(path: str | os.PathLike[str]) -> str:
    """``path`` as pathlib writes it (no "//", "." component or trailing slash; ".." kept),
    so the paths in messages read as they always did."""
    text = os.fspath(path)
    head = "//" if text.startswith("//") and not text.startswith("///") \
        else "/" if text.startswith("/") else ""
    return head + "/".join(p for p in text.split("/") if p and p != ".") or "."


def join(base: str, name: str) -> str:
    """``Path(base) / name`` for a clean ``base`` and a plain ``name``."""
    if base == ".":
        return name
    return base + name if base.endswith("/") else f"{base}/{name}"


def absolute(path: str) -> str:
    """``Path(path).absolute()``: the cwd joined to a relative path, nothing resolved."""
    text = clean(path)
    if text.startswith("/"):
        return text
    return os.getcwd() if text == "." else join(os.getcwd(), text)


def under(base: str, path: str) -> str:
    """``Path(base) / path``: ``path`` itself when absolute."""
    text = clean(path)
    if text.startswith("/"):
        return text
    return base if text == "." else join(base, text)
