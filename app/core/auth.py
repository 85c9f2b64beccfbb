"""Admin authentication: Bearer tokens, kept only as SHA-256 digests, compared in constant time.

Several tokens may be accepted at once, so a token can be rotated without downtime: add the new
one, move clients to it, drop the old one (README, "Admin tokens").
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import DefineMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from app.core.problems import Problem

AdminGuard = Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], Awaitable[None]]


def token_digest(entry: str) -> bytes:
    """The SHA-256 of a token, or the digest a ``sha256:<hex>`` entry names."""
    if entry.startswith("sha256:"):
        return bytes.fromhex(entry.removeprefix("sha256:"))
    return hashlib.sha256(entry.encode()).digest()


def admin_guard(tokens: Iterable[str]) -> AdminGuard:
    """An app-level guard: routes whose handler ``opt`` says ``admin`` need one of ``tokens``.

    401 without a Bearer token, 403 with a wrong one.
    """
    digests = tuple(token_digest(t) for t in tokens if t)

    async def require_admin(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
        policy = handler.opt.get("policy")
        if policy is None or not policy.admin:
            return
        header = connection.headers.get("authorization", "")
        scheme, _sep, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            problem = Problem(401, "unauthenticated", "admin endpoints need 'Authorization: Bearer <token>'")
            problem.headers = {"WWW-Authenticate": 'Bearer realm="catalog-admin"'}
            raise problem
        presented = hashlib.sha256(token.strip().encode()).digest()
        # Compare with every accepted digest, never stopping early: the time says nothing.
        accepted = False
        for digest in digests:
            accepted |= hmac.compare_digest(presented, digest)
        if not accepted:
            raise Problem(403, "forbidden", "the admin token is not valid")

    return require_admin


def admin_auth(app: ASGIApp, guard: AdminGuard) -> ASGIApp:
    """Run ``guard`` for admin routes only, as plain ASGI middleware after routing.

    (As an app-level Litestar guard it would run on every route, and Litestar copies the route
    handler for each guard call: on a display route that cost more than the route's own code.)
    """

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        handler = scope.get("route_handler")
        policy = handler.opt.get("policy") if handler is not None else None
        if policy is not None and policy.admin:
            await guard(ASGIConnection(scope), handler)  # raises a Problem
        await app(scope, receive, send)

    return middleware


def admin_auth_middleware(tokens: Iterable[str]) -> DefineMiddleware:
    return DefineMiddleware(admin_auth, guard=admin_guard(tokens))
