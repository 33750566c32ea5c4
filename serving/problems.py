"""RFC 9457 problem details for every error the API returns."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from domain.errors import DomainError

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"
_TITLES = {
    400: "Bad request",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    412: "Precondition failed",
    413: "Content too large",
    415: "Unsupported media type",
    422: "Invalid value",
    428: "Precondition required",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}


def _phrase(status: int) -> str:
    """The status's own reason phrase ("Unauthorized", "Forbidden", ...), for any status without a
    title of ours."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def problem(
    request: Request,
    status: int,
    detail: str,
    *,
    title: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {
        "type": f"https://thmnayah.dev/problems/{status}",
        "title": title or _TITLES.get(status) or _phrase(status),
        "status": status,
        "detail": detail,
        "instance": request.url.path,
    }
    if errors:
        body["errors"] = errors
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _field_of(message: str, key: str | None) -> str | None:
    for says in ("unknown field `", "missing required field `"):
        if says in message:
            name = message.split(says, 1)[1].split("`", 1)[0]
            if "`$." in message:  # nested: "... - at `$.configuration`"
                name = f"{message.rsplit('`$.', 1)[1].rstrip('`')}.{name}"
            # A body member is named by itself, not by the handler's parameter ("data").
            return f"{key}.{name}" if key and key != "data" else name
    if key and key != "data":
        return key
    # msgspec messages end with "- at `$.title.en`"
    if "`$." in message:
        return message.rsplit("`$.", 1)[1].rstrip("`")
    return None


def validation_handler(request: Request, exc: ValidationException) -> Response:
    errors = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        message = str(item.get("message", "")) if isinstance(item, dict) else str(item)
        key = item.get("key") if isinstance(item, dict) else None
        errors.append(
            {
                "field": _field_of(message, key),
                "message": message,
                "source": item.get("source") if isinstance(item, dict) else None,
            }
        )
    detail = (
        exc.detail if not errors else "; ".join(f"{e['field'] or 'body'}: {e['message']}" for e in errors)
    )
    return problem(request, 400, detail, title="Invalid request", errors=errors)


def http_handler(request: Request, exc: HTTPException) -> Response:
    headers = dict(exc.headers or {})
    return problem(request, exc.status_code, exc.detail, headers=headers or None)


def domain_handler(request: Request, exc: DomainError) -> Response:
    errors = [{"field": exc.field, "message": exc.detail}] if exc.field else None
    return problem(request, exc.status, exc.detail, title=exc.title, errors=errors)


def integrity_handler(request: Request, exc: IntegrityError) -> Response:
    log.info("integrity error on %s: %s", request.url.path, exc.orig)
    return problem(request, 409, "the change conflicts with existing data (a unique value is already used)")


def stale_handler(request: Request, exc: StaleDataError) -> Response:
    return problem(
        request,
        412,
        "the item changed while your update was applied; fetch it again",
        title="Precondition failed",
    )


def internal_handler(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem(request, HTTP_500_INTERNAL_SERVER_ERROR, "an internal error occurred; it has been logged")


EXCEPTION_HANDLERS = {
    ValidationException: validation_handler,
    HTTPException: http_handler,
    DomainError: domain_handler,
    IntegrityError: integrity_handler,
    StaleDataError: stale_handler,
    Exception: internal_handler,
}

__all__ = ["EXCEPTION_HANDLERS", "problem"]
