"""Docker-shaped errors: ``{"message": ...}`` with the status code dockerd would use.

Handlers raise ``ApiError`` (or let a typed ``MuelleError`` from the gateway through);
``status_of`` maps the taxonomy of vocab/errors.py to HTTP in this one place.
"""

from __future__ import annotations

from vocab import errors


class ApiError(Exception):
    """An answer other than success: an HTTP status and a message for people."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def not_found(message: str) -> ApiError:
    return ApiError(404, message)


def not_modified() -> ApiError:
    """Docker's 304 (start of a running container, stop of a stopped one): no body."""
    return ApiError(304, "")


# Docker answers FAILED_PRECONDITION-like refusals ("is not running", "name in use",
# "container is running: stop it first") with 409 Conflict.
_STATUS: dict[type[errors.MuelleError], int] = {
    errors.InvalidArgument: 400,
    errors.Unauthenticated: 401,
    errors.PermissionDenied: 403,
    errors.NotFound: 404,
    errors.AlreadyExists: 409,
    errors.FailedPrecondition: 409,
    errors.Unimplemented: 501,
    errors.Unavailable: 503,
}


def status_of(exc: errors.MuelleError) -> int:
    for cls in type(exc).__mro__:
        if cls in _STATUS:
            return _STATUS[cls]
    return 500


def from_muelle(exc: errors.MuelleError) -> ApiError:
    return ApiError(status_of(exc), exc.message)
