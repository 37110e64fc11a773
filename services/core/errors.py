"""One error taxonomy for every muelle service.

Core code raises these; the gRPC edge (``server.py``) turns them into status codes and
clients (``client.py``) turn status codes back into the same classes, so callers test the
kind of an error, never its message.
"""

from __future__ import annotations

import grpc


class MuelleError(Exception):
    """Base class: an expected failure with a message meant for people."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidArgument(MuelleError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(MuelleError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(MuelleError):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(MuelleError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Unavailable(MuelleError):
    code = grpc.StatusCode.UNAVAILABLE


class PermissionDenied(MuelleError):
    code = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(MuelleError):
    code = grpc.StatusCode.UNAUTHENTICATED


class DataLoss(MuelleError):
    """Content did not match its digest or size, or arrived truncated."""

    code = grpc.StatusCode.DATA_LOSS


class DeadlineExceeded(MuelleError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Unimplemented(MuelleError):
    code = grpc.StatusCode.UNIMPLEMENTED


class Internal(MuelleError):
    code = grpc.StatusCode.INTERNAL


_BY_CODE: dict[grpc.StatusCode, type[MuelleError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        NotFound,
        AlreadyExists,
        FailedPrecondition,
        Unavailable,
        PermissionDenied,
        Unauthenticated,
        DataLoss,
        DeadlineExceeded,
        Unimplemented,
        Internal,
    )
}


def from_rpc_error(err: grpc.RpcError, service: str = "") -> MuelleError:
    """Turn a failed call's status back into the typed error it was raised as."""
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    details = err.details() if hasattr(err, "details") else str(err)
    if code == grpc.StatusCode.UNAVAILABLE and service:
        details = f"{service} unavailable: {details}"
    cls = _BY_CODE.get(code, MuelleError)
    error = cls(details or code.name.lower())
    error.code = code
    return error
