"""Admin authentication: a static Bearer token compared in constant time."""

from __future__ import annotations

import hmac
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from app.core.problems import Problem
from app.core.settings import Settings


async def require_admin(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard: 401 without a Bearer token, 403 with the wrong one."""
    settings: Settings = connection.app.state.services.settings
    header = connection.headers.get("authorization", "")
    scheme, _sep, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        problem = Problem(401, "unauthenticated", "admin endpoints need 'Authorization: Bearer <token>'")
        problem.headers = {"WWW-Authenticate": 'Bearer realm="catalog-admin"'}
        raise problem
    if not hmac.compare_digest(token.strip().encode(), settings.admin_token.encode()):
        raise Problem(403, "forbidden", "the admin token is not valid")
