"""Container names and IDs: docker's name rule, generated names, random IDs."""

from __future__ import annotations

import re
import secrets

from vocab.errors import InvalidArgument

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")

# Our own word lists (adjective_surname, like docker's generated names).
_ADJECTIVES = (
    "agile", "bold", "brave", "bright", "calm", "clever", "cosy", "crisp", "daring", "eager",
    "fancy", "fierce", "gentle", "happy", "hardy", "jolly", "keen", "kind", "lively", "lucid",
    "merry", "mighty", "nimble", "noble", "patient", "plucky", "proud", "quick", "quiet",
    "rapid", "serene", "sharp", "shiny", "silly", "sleepy", "smooth", "snappy", "steady",
    "sunny", "swift", "tender", "tidy", "upbeat", "vivid", "warm", "witty", "zealous", "zen",
)
_SURNAMES = (
    "agnesi", "babbage", "bohr", "boole", "cantor", "curie", "darwin", "dijkstra", "euclid",
    "euler", "faraday", "fermat", "feynman", "gauss", "germain", "goodall", "hamilton",
    "hopper", "hypatia", "kepler", "knuth", "lamarr", "leibniz", "lovelace", "maxwell",
    "meitner", "mendel", "newton", "noether", "pascal", "pasteur", "planck", "ramanujan",
    "riemann", "ritchie", "shannon", "somerville", "tesla", "thompson", "torvalds", "turing",
    "volta", "wozniak", "yalow",
)


def validate_name(name: str) -> str:
    """``name`` without a leading "/", or InvalidArgument (docker's rule)."""
    bare = name[1:] if name.startswith("/") else name
    if not NAME_RE.match(bare):
        raise InvalidArgument(
            f'Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed')
    return bare


def generate_name(retry: int = 0) -> str:
    """A random "adjective_surname"; a digit is appended on retries, as docker does."""
    name = f"{secrets.choice(_ADJECTIVES)}_{secrets.choice(_SURNAMES)}"
    return f"{name}{secrets.randbelow(10)}" if retry else name


def new_id() -> str:
    """64 hex chars whose 12-char short form is not all digits (it would read as a number)."""
    while True:
        cid = secrets.token_hex(32)
        if not cid[:12].isdigit():
            return cid
