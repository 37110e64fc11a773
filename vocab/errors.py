"""One error taxonomy for every muelle service.

Core code raises these; the gRPC edge (``server.py``) turns them into status codes and
clients (``client.py``) turn status codes back into the same classes, so callers test the
kind of an error, never its message.
"""

from __future__ import annotations

# typing costs the CLI ~3 ms to import; mypy treats TYPE_CHECKING as true wherever it is defined
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    import grpc


class _StatusCode:
    """``grpc.StatusCode[name]``, looked up on first use: the OCI runtime and the container
    monitor raise these errors too, and importing grpc costs them ~60 ms per process."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: Any = None) -> grpc.StatusCode:
        import grpc

        return grpc.StatusCode[self.name]


class MuelleError(Exception):
    """Base class: an expected failure with a message meant for people."""

    code = _StatusCode("UNKNOWN")

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidArgument(MuelleError):
    code = _StatusCode("INVALID_ARGUMENT")


class NotFound(MuelleError):
    code = _StatusCode("NOT_FOUND")


class AlreadyExists(MuelleError):
    code = _StatusCode("ALREADY_EXISTS")


class FailedPrecondition(MuelleError):
    code = _StatusCode("FAILED_PRECONDITION")


class Unavailable(MuelleError):
    code = _StatusCode("UNAVAILABLE")


class PermissionDenied(MuelleError):
    code = _StatusCode("PERMISSION_DENIED")


class Unauthenticated(MuelleError):
    code = _StatusCode("UNAUTHENTICATED")


class DataLoss(MuelleError):
    """Content did not match its digest or size, or arrived truncated."""

    code = _StatusCode("DATA_LOSS")


class ResourceExhausted(MuelleError):
    """A limit was reached: disk space above all (ENOSPC, EDQUOT, SQLite's "database or
    disk is full"; the message says what could not be written), a configured size cap, a
    minimum throughput."""

    code = _StatusCode("RESOURCE_EXHAUSTED")


class Cancelled(MuelleError):
    """The caller went away; the work stopped."""

    code = _StatusCode("CANCELLED")


class DeadlineExceeded(MuelleError):
    code = _StatusCode("DEADLINE_EXCEEDED")


class Unimplemented(MuelleError):
    code = _StatusCode("UNIMPLEMENTED")


class Internal(MuelleError):
    code = _StatusCode("INTERNAL")


# Keyed by the code's name, read off the descriptor so that grpc is not imported here.
_BY_CODE: dict[str, type[MuelleError]] = {
    vars(cls)["code"].name: cls
    for cls in (
        InvalidArgument,
        NotFound,
        AlreadyExists,
        FailedPrecondition,
        Unavailable,
        PermissionDenied,
        Unauthenticated,
        DataLoss,
        ResourceExhausted,
        Cancelled,
        DeadlineExceeded,
        Unimplemented,
        Internal,
    )
}


_NO_SPACE = (28, 122)  # ENOSPC, EDQUOT (errno numbers; errno costs an import here)


def is_no_space(exc: BaseException) -> bool:
    """Whether ``exc`` is a full disk or quota: an OSError with ENOSPC/EDQUOT, or SQLite
    reporting "database or disk is full" (SQLITE_FULL)."""
    if isinstance(exc, OSError):
        return exc.errno in _NO_SPACE
    return type(exc).__name__ == "OperationalError" and "disk is full" in str(exc)


def no_space(what: str, exc: BaseException | None = None) -> ResourceExhausted:
    """The typed error for a write that found the disk full: "no space left on device:
    could not write <what>"."""
    text = f"no space left on device: could not write {what}"
    if isinstance(exc, OSError) and exc.errno == _NO_SPACE[1]:
        text = f"disk quota exceeded: could not write {what}"
    return ResourceExhausted(text)


# Trailing metadata key the server edge sets on a status a service's own code raised.
ANSWERED = "muelle-error"


def _answered(err: Any) -> bool:
    try:
        return any(key == ANSWERED for key, _ in err.trailing_metadata() or ())
    except Exception:  # noqa: BLE001 - no metadata (a channel error): not answered
        return False


def from_rpc_error(err: grpc.RpcError, service: str = "") -> MuelleError:
    """Turn a failed call's status back into the typed error it was raised as.
    ``service``: whom we called; an UNAVAILABLE that is not its own answer (it is down,
    unreachable) reads "<service> unavailable: ...". One it raised itself (e.g. "cannot
    reach registry X") keeps its words: the service is fine, something past it is not."""
    import grpc

    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    details = err.details() if hasattr(err, "details") else str(err)
    if code == grpc.StatusCode.UNAVAILABLE and service and not _answered(err):
        details = f"{service} unavailable: {details}"
    cls = _BY_CODE.get(code.name, MuelleError)
    error = cls(details or code.name.lower())
    error.code = code
    return error


# gRPC's numeric status codes (grpc/doc/statuscodes.md), for clients that read the
# grpc-status trailer themselves (clients/sdk/wire.py) and do not import grpc.
_CODE_NAMES = ("OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
               "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
               "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL",
               "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED")


def from_status(code: int, details: str, service: str = "") -> MuelleError:
    """The typed error for a numeric gRPC status and its message."""
    name = _CODE_NAMES[code] if 0 <= code < len(_CODE_NAMES) else "UNKNOWN"
    if name == "UNAVAILABLE" and service:
        details = f"{service} unavailable: {details}"
    cls = _BY_CODE.get(name, MuelleError)
    return cls(details or name.lower())
