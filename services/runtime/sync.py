"""The sync pipe between ``create`` and the processes it forks: JSON lines.

    {"userns": true}  the intermediate: unshared CLONE_NEWUSER; create writes the id maps
                      and answers "1" on the ack pipe
    {"pid": N}        the intermediate: the init's pid in the host pid namespace
    {"warn": "..."}   the init: something skipped, for create's log
    {"ready": true}   the init: set up, now blocked on the exec fifo
    {"error": "..."}  either: setup failed; create fails with this message
"""

from __future__ import annotations

import os

from services.runtime import cjson

TYPE_CHECKING = False  # mypy treats TYPE_CHECKING as true wherever it is defined
if TYPE_CHECKING:
    from typing import Any


def send(fd: int, **msg: Any) -> None:
    # One write per line, well under PIPE_BUF, so lines from two writers never interleave.
    data = (cjson.dumps(msg) + "\n").encode()[:4000]
    os.write(fd, data)


class Reader:
    def __init__(self, fd: int) -> None:
        self.file = os.fdopen(fd, "rb")

    def next(self) -> dict[str, Any] | None:
        """The next message, or None at EOF (every writer exited or exec'd)."""
        line = self.file.readline()
        if not line:
            return None
        try:
            msg = cjson.loads(line)
        except ValueError:
            return {"error": f"garbled sync message {line[:100]!r}"}
        return msg if isinstance(msg, dict) else {"error": "garbled sync message"}

    def close(self) -> None:
        self.file.close()
