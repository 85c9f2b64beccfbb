"""Admin authentication: a static Bearer token compared in constant time."""

from __future__ import annotations

import hmac
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.types import Guard

from app.core.problems import Problem


def admin_guard(admin_token: str) -> Guard:
    """An app-level guard: routes whose handler ``opt`` says ``admin`` need the token.

    401 without a Bearer token, 403 with the wrong one.
    """
    expected = admin_token.encode()

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
        if not hmac.compare_digest(token.strip().encode(), expected):
            raise Problem(403, "forbidden", "the admin token is not valid")

    return require_admin
