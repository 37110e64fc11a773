"""The runtime's own error kinds, so its callers tell them apart by type, never by the
words of a message. Both are the core taxonomy's (vocab/errors.py), so the CLI
prints them and the shim maps them to status codes as before."""

from __future__ import annotations

from vocab.errors import FailedPrecondition, NotFound


class ContainerNotFound(NotFound):
    """The runtime has no state for this container id."""


class NotRunning(FailedPrecondition):
    """The container (or its init) is not running: a signal, pause or exec has no target."""
