"""Request-scoped plumbing, as plain ASGI middleware: request ids and per-route request metrics.

Both run on every request, so both are written for it: the request id lives in one context
variable that the log processor reads only when something is logged (no per-request structlog
binding), and metric label children are resolved once per (method, route, status), not per request.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterable, MutableMapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from litestar.enums import ScopeType
from litestar.middleware import DefineMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from app.core.metrics import HTTP_ERRORS, HTTP_IN_PROGRESS, HTTP_REQUEST_SECONDS, HTTP_REQUESTS

_MAX_REQUEST_ID = 128
REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)


def add_request_id(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: the current request's id, when logging inside a request."""
    request_id = REQUEST_ID.get()
    if request_id is not None:
        event.setdefault("request_id", request_id)
    return event


class RequestIds:
    """Request ids: the caller's ``X-Request-ID`` (nginx sets one), or one made here.

    Made ids are a random per-process prefix and a counter: unique across instances and
    restarts without a system call per request.
    """

    def __init__(self) -> None:
        self._prefix = os.urandom(8).hex()
        self._counter = itertools.count(1)

    def make(self) -> bytes:
        return b"%s%08x" % (self._prefix.encode(), next(self._counter))

    @staticmethod
    def of(headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
        for name, value in headers:
            if name == b"x-request-id":
                return value[:_MAX_REQUEST_ID] or None
        return None


REQUEST_IDS = RequestIds()


@dataclass(frozen=True, slots=True)
class RouteMetrics:
    """The label children of one (method, route, status): counted and timed without a lookup."""

    requests: Any
    seconds: Any

    def observe(self, seconds: float) -> None:
        self.requests.inc()
        self.seconds.observe(seconds)


class HttpMetrics:
    """Request count, duration, in-progress and 5xx per (method, route template, status)."""

    def __init__(self, app_name: str) -> None:
        self.app_name = app_name
        self._routes: dict[tuple[str, str, int], RouteMetrics] = {}
        self._in_progress: dict[tuple[str, str], Any] = {}

    def route(self, method: str, template: str, status: int) -> RouteMetrics:
        key = (method, template, status)
        found = self._routes.get(key)
        if found is None:
            labels = (method, template, str(status), self.app_name)
            found = RouteMetrics(HTTP_REQUESTS.labels(*labels), HTTP_REQUEST_SECONDS.labels(*labels))
            self._routes[key] = found
        return found

    def in_progress(self, method: str, template: str) -> Any:
        key = (method, template)
        found = self._in_progress.get(key)
        if found is None:
            found = HTTP_IN_PROGRESS.labels(method, template, "200", self.app_name)
            self._in_progress[key] = found
        return found

    def error(self, method: str, template: str, status: int) -> None:
        HTTP_ERRORS.labels(method, template, str(status), self.app_name).inc()


def observe_requests(
    app: ASGIApp, metrics: HttpMetrics, instance_header: bytes | None, exclude: frozenset[str]
) -> ASGIApp:
    """Every routed request (app-level middleware: it runs after routing, per route):

    - its id: ``X-Request-ID`` from nginx, or one made here; the logs' request id while it runs,
      echoed in the response (with debug headers on, ``X-Instance`` says which instance answered);
    - its count, duration and status by route template, and how many are in progress.
    """
    extra_headers = [(b"x-instance", instance_header)] if instance_header is not None else []

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        raw_id = REQUEST_IDS.of(scope["headers"]) or REQUEST_IDS.make()
        timed = scope["path"] not in exclude
        method: str = scope["method"]
        template: str = scope.get("path_template", scope["path"])
        status = 200

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", raw_id), *extra_headers]
            await send(message)

        token = REQUEST_ID.set(raw_id.decode("latin-1"))
        gauge = metrics.in_progress(method, template) if timed else None
        if gauge is not None:
            gauge.inc()
        started = time.perf_counter()
        try:
            await app(scope, receive, send_observed)
        finally:
            REQUEST_ID.reset(token)
            if gauge is not None:
                gauge.dec()
                metrics.route(method, template, status).observe(time.perf_counter() - started)
                if status >= 500:
                    metrics.error(method, template, status)

    return middleware


def observe_requests_middleware(
    metrics: HttpMetrics, instance_name: str, *, debug_headers: bool, exclude: tuple[str, ...] = ()
) -> DefineMiddleware:
    return DefineMiddleware(
        observe_requests,
        metrics=metrics,
        instance_header=instance_name.encode() if debug_headers else None,
        exclude=frozenset(exclude),
    )
