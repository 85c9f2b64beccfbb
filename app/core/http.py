"""Request-scoped plumbing: request ids and the instance header."""

from __future__ import annotations

import uuid

import structlog
from litestar.enums import ScopeType
from litestar.middleware import DefineMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

_MAX_REQUEST_ID = 128


def request_context(app: ASGIApp, instance_header: bytes | None) -> ASGIApp:
    """Take ``X-Request-ID`` from nginx (or make one), bind it to logs, echo it back.

    With debug headers on, also say which instance answered (``X-Instance``).
    """

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        request_id = ""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                request_id = value.decode("latin-1")[:_MAX_REQUEST_ID]
                break
        if not request_id:
            request_id = uuid.uuid4().hex
        structlog.contextvars.bind_contextvars(request_id=request_id)
        raw_id = request_id.encode("latin-1")

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = [(b"x-request-id", raw_id)]
                if instance_header is not None:
                    extra.append((b"x-instance", instance_header))
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        try:
            await app(scope, receive, send_with_id)
        finally:
            structlog.contextvars.unbind_contextvars("request_id")

    return middleware


def request_context_middleware(instance_name: str, *, debug_headers: bool) -> DefineMiddleware:
    return DefineMiddleware(request_context, instance_header=instance_name.encode() if debug_headers else None)
