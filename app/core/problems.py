"""RFC 9457 problem details for every error response, in one shape.

Every problem has ``type`` (``/problems/<code>``), ``title``, ``status``, ``detail``, ``code`` and
``instance``; a validation problem adds ``errors: [{field, message, source}]`` with fields written
as paths (``items[0].quantity``). Bad input is a 4xx with the offending field named; a dependency
that is down is a 503 with ``Retry-After``; an unexpected error is a logged 500 with no internals
leaked.
"""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Any

import asyncpg
import msgspec
import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from app.core.db import DatabaseUnavailable
from app.core.validation import BAD_INPUT_ERRORS, field_error

PROBLEM_JSON = "application/problem+json"
log = structlog.get_logger("catalog.http")


class Problem(HTTPException):
    """An HTTP error with a machine-readable ``code`` and optional extension members."""

    def __init__(self, status_code: int, code: str, detail: str, **extensions: Any) -> None:
        super().__init__(status_code=status_code, detail=detail)
        self.code = code
        self.extensions = extensions


class ProblemBody(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The members every problem has (the OpenAPI document shows this for every error response)."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    instance: str
    errors: list[dict[str, Any]] | None = None


def problem_response(
    request: Request[Any, Any, Any], status: int, code: str, detail: str, **extensions: Any
) -> Response[bytes]:
    """The one way a problem is written."""
    body: dict[str, Any] = {
        "type": f"/problems/{code.replace('_', '-')}",
        "title": _title(status),
        "status": status,
        "detail": detail,
        "code": code,
        "instance": request.url.path,
        **extensions,
    }
    return Response(
        content=msgspec.json.encode(body),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers={"Cache-Control": "no-store"},
    )


_MISSING = re.compile(r"^Missing required (\w+) parameter '([^']+)'")


def _validation_errors(exc: ValidationException) -> list[dict[str, Any]]:
    missing = _MISSING.match(str(exc.detail))
    if missing:  # Litestar says so in prose only
        return [{"field": missing.group(2), "message": "required", "source": missing.group(1)}]
    errors: list[dict[str, Any]] = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if not isinstance(item, dict):
            continue
        if {"field", "message"} <= item.keys():  # already ours (core/validation.py)
            errors.append(item)
            continue
        # Litestar's: {"key", "message", "source"}; "data" is its name for the whole body.
        source = item.get("source") or "body"
        error = field_error(str(item.get("message", "")), str(getattr(source, "value", source)))
        key = item.get("key")
        if error["field"] is None and key not in (None, "data"):
            error["field"] = key
        errors.append(error)
    return errors


def http_exception_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    """Map every HTTPException (ours, validation, routing) to problem+json."""
    status = exc.status_code
    if isinstance(exc, Problem):
        response = problem_response(request, status, exc.code, exc.detail, **exc.extensions)
    elif isinstance(exc, ValidationException):
        errors = _validation_errors(exc)
        fields = sorted({e["field"] for e in errors if e["field"]})
        detail = f"invalid {', '.join(fields)}: {errors[0]['message']}" if fields else exc.detail
        response = problem_response(request, status, "validation_error", detail, errors=errors)
    else:
        response = problem_response(request, status, _title(status).lower().replace(" ", "_"), exc.detail)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


def bad_input_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    """A value the database cannot take reached it: still the client's input, so a 400."""
    log.warning("http.bad_input_reached_database", path=request.url.path, error=type(exc).__name__)
    return problem_response(request, 400, "invalid_input", "a value in the request cannot be stored or searched")


def unavailable_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    """A dependency the request needs is down or out of time: 503 with ``Retry-After``, never a 500."""
    if isinstance(exc, DatabaseUnavailable):
        server, retry_after, detail = exc.server, exc.retry_after_s, f"the {exc.server} database is unavailable"
    else:  # a statement ran past its deadline
        server, retry_after, detail = "database", 1, "the database did not answer in time"
    log.warning("http.unavailable", path=request.url.path, server=server, error=str(exc))
    response = problem_response(request, 503, "unavailable", detail, dependency=server)
    response.headers["Retry-After"] = str(retry_after)
    return response


def internal_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    """A bug, not bad input: log it with the request id and answer a generic 500."""
    log.exception("http.unhandled_error", path=request.url.path, error=type(exc).__name__)
    return problem_response(request, 500, "internal_error", "unexpected error")


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


EXCEPTION_HANDLERS: dict[type[Exception], Any] = {
    HTTPException: http_exception_handler,
    DatabaseUnavailable: unavailable_handler,
    asyncpg.QueryCanceledError: unavailable_handler,
    **dict.fromkeys(BAD_INPUT_ERRORS, bad_input_handler),
    Exception: internal_error_handler,
}
