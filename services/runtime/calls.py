"""The warm paths' calls as values: what the shim hands a monitor for muelle's own runtime
(``api.Create``, ``api.Delete``), which crosses into it as JSON (``api.encode``/``decode``).

Apart from api.py, so that the CLI's create, which never builds one, does not import
typing (tests/unit/runtime/test_lean.py).
"""

from __future__ import annotations

from typing import NamedTuple


class Create(NamedTuple):
    """``create`` as a value: what the shim hands a monitor for muelle's own runtime."""

    root: str
    id: str
    bundle: str
    pid_file: str = ""
    console_socket: str = ""


class Delete(NamedTuple):
    root: str
    id: str
    force: bool = False


Call = Create | Delete
VERBS: dict[str, type[Create] | type[Delete]] = {"create": Create, "delete": Delete}
