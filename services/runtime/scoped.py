"""Two ``with`` helpers of contextlib's, for the runtime's create path: contextlib imports
collections and functools (~3 ms of every ``muelle-runtime create``; a fresh process per
container), for ``suppress`` and a ``contextmanager`` that closes an fd."""

from __future__ import annotations

import os

TYPE_CHECKING = False  # mypy treats TYPE_CHECKING as true wherever it is defined
if TYPE_CHECKING:
    from types import TracebackType


class suppress:  # contextlib.suppress's name, which it stands in for
    """``contextlib.suppress``: the given exceptions end the block silently."""

    def __init__(self, *kinds: type[BaseException]) -> None:
        self.kinds = kinds

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        return kind is not None and issubclass(kind, self.kinds)


class closing_fd:  # lower case: reads as the function it replaces
    """``with closing_fd(fd) as fd:``: the fd is closed when the block ends, however."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __enter__(self) -> int:
        return self.fd

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        os.close(self.fd)
