"""RFC 9457 problem details for every error response.

Bad input is a 4xx with the offending field named; an unexpected error is a logged 500 with no
internals leaked.
"""

from __future__ import annotations

import re
from typing import Any

import asyncpg
import msgspec
import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from app.core.db import DatabaseUnavailable

PROBLEM_JSON = "application/problem+json"
log = structlog.get_logger("catalog.http")


class Problem(HTTPException):
    """An HTTP error with a machine-readable ``code`` and optional extension members."""

    def __init__(self, status_code: int, code: str, detail: str, **extensions: Any) -> None:
        super().__init__(status_code=status_code, detail=detail)
        self.code = code
        self.extensions = extensions


_MSGSPEC_PATH = re.compile(r" - at `\$\.?([^`]*)`$")


def _field_errors(exc: ValidationException) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = []
    extra = exc.extra if isinstance(exc.extra, list) else []
    for item in extra:
        if not isinstance(item, dict):
            continue
        message = str(item.get("message", ""))
        field = item.get("key")
        match = _MSGSPEC_PATH.search(message)
        if match:
            field = field or match.group(1) or None
            message = message[: match.start()]
        named = re.search(r"(?:unknown|missing required) field `([^`]+)`", message)
        if named:
            field = named.group(1)
        elif field == "data":  # Litestar's name for the whole body
            field = None
        errors.append({"field": field, "source": item.get("source"), "message": message})
    return errors


def _problem_response(request: Request[Any, Any, Any], status: int, body: dict[str, Any]) -> Response[bytes]:
    body.setdefault("type", "about:blank")
    body["status"] = status
    body.setdefault("instance", request.url.path)
    headers = {"Cache-Control": "no-store"}
    return Response(content=msgspec.json.encode(body), status_code=status, media_type=PROBLEM_JSON, headers=headers)


def http_exception_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    """Map every HTTPException (ours, validation, routing) to problem+json."""
    status = exc.status_code
    body: dict[str, Any] = {"title": _title(status), "detail": exc.detail}
    if isinstance(exc, Problem):
        body["type"] = f"/problems/{exc.code.replace('_', '-')}"
        body["code"] = exc.code
        body.update(exc.extensions)
    elif isinstance(exc, ValidationException):
        errors = _field_errors(exc)
        body["code"] = "validation_error"
        body["errors"] = errors
        fields = [e["field"] for e in errors if e["field"]]
        if fields:
            body["detail"] = f"invalid {', '.join(sorted(set(fields)))}: {errors[0]['message']}"
    else:
        body["code"] = _title(status).lower().replace(" ", "_")
    response = _problem_response(request, status, body)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


def unavailable_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    """A dependency the request needs is down or out of time: 503 with ``Retry-After``, never a 500."""
    if isinstance(exc, DatabaseUnavailable):
        server, retry_after, detail = exc.server, exc.retry_after_s, f"the {exc.server} database is unavailable"
    else:  # a statement ran past its deadline
        server, retry_after, detail = "database", 1, "the database did not answer in time"
    log.warning("http.unavailable", path=request.url.path, server=server, error=str(exc))
    body = {"title": "Service Unavailable", "detail": detail, "code": "unavailable", "dependency": server}
    response = _problem_response(request, 503, {"type": "/problems/unavailable", **body})
    response.headers["Retry-After"] = str(retry_after)
    return response


def internal_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    """A bug, not bad input: log it with the request id and answer a generic 500."""
    log.exception("http.unhandled_error", path=request.url.path, error=type(exc).__name__)
    return _problem_response(
        request, 500, {"title": "Internal Server Error", "detail": "unexpected error", "code": "internal_error"}
    )


def _title(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


EXCEPTION_HANDLERS = {
    HTTPException: http_exception_handler,
    DatabaseUnavailable: unavailable_handler,
    asyncpg.QueryCanceledError: unavailable_handler,
    Exception: internal_error_handler,
}
