"""Domain errors. The serving layer maps each onto an RFC 9457 problem-details response."""

from __future__ import annotations


class DomainError(Exception):
    status = 400
    title = "Bad request"

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field


class NotFound(DomainError):
    status = 404
    title = "Not found"


class Forbidden(DomainError):
    """The caller may reach the route but not do this to this object (a 403 naming what is missing)."""

    status = 403
    title = "Forbidden"


class InvalidValue(DomainError):
    status = 422
    title = "Invalid value"


class Conflict(DomainError):
    status = 409
    title = "Conflict"


class IllegalTransition(Conflict):
    title = "Illegal status transition"


class PreconditionFailed(DomainError):
    status = 412
    title = "Precondition failed"
