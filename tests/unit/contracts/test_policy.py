"""The endpoint-policy table covers every route, and routes take their config from it."""

from __future__ import annotations

import hashlib

import pytest
from litestar.routes import HTTPRoute

from app.contracts.policy import FRAMEWORK_ROUTES, POLICIES, POLICY_BY_ROUTE, PathClass
from app.core.auth import admin_guard
from app.core.problems import Problem
from app.core.settings import load_settings
from app.main import create_app

# Handlers that Litestar's Prometheus and OpenAPI plugins build; their policy is in the table,
# but the decorator is not ours to pass it to.
_PLUGIN_HANDLERS = {("GET", "/metrics"), ("GET", "/schema/openapi.json")}


def _mounted() -> dict[tuple[str, str], object]:
    app = create_app(load_settings({}))
    mounted: dict[tuple[str, str], object] = {}
    for route in app.routes:
        assert isinstance(route, HTTPRoute)
        for method, (handler, _model) in route.route_handler_map.items():
            if method in ("OPTIONS", "HEAD"):
                continue
            mounted[(method, route.path)] = handler
    return mounted


def test_every_route_has_a_policy() -> None:
    missing = sorted(set(_mounted()) - set(POLICY_BY_ROUTE) - FRAMEWORK_ROUTES)
    assert missing == [], f"routes without an entry in app/contracts/policy.py: {missing}"


def test_every_policy_is_mounted() -> None:
    orphans = sorted(set(POLICY_BY_ROUTE) - set(_mounted()))
    assert orphans == [], f"policies for routes that do not exist: {orphans}"


def test_handlers_carry_their_policy() -> None:
    for key, handler in _mounted().items():
        if key in FRAMEWORK_ROUTES or key in _PLUGIN_HANDLERS:
            continue
        assert handler.opt.get("policy") is POLICY_BY_ROUTE[key], key  # type: ignore[attr-defined]


class _Connection:
    def __init__(self, authorization: str | None) -> None:
        self.headers = {} if authorization is None else {"authorization": authorization}


class _Handler:
    def __init__(self, key: tuple[str, str]) -> None:
        self.opt = {"policy": POLICY_BY_ROUTE[key]}


@pytest.mark.parametrize("key", sorted(POLICY_BY_ROUTE))
async def test_the_admin_guard_asks_exactly_the_admin_routes_for_the_token(key: tuple[str, str]) -> None:
    guard = admin_guard(["the-token"])
    admin = POLICY_BY_ROUTE[key].admin
    for authorization, status in ((None, 401), ("Bearer wrong", 403), ("Basic the-token", 401)):
        if admin:
            with pytest.raises(Problem) as refused:
                await guard(_Connection(authorization), _Handler(key))  # type: ignore[arg-type]
            assert refused.value.status_code == status
        else:
            await guard(_Connection(authorization), _Handler(key))  # type: ignore[arg-type]
    await guard(_Connection("Bearer the-token"), _Handler(key))  # type: ignore[arg-type]


def test_every_write_needs_the_admin_token_and_is_never_cached() -> None:
    for endpoint in POLICIES:
        if endpoint.path_class is PathClass.WRITE:
            assert endpoint.admin, endpoint.name
            assert endpoint.cache_control == "no-store", endpoint.name
            assert endpoint.cache_key is None, endpoint.name


def test_names_are_unique() -> None:
    names = [p.name for p in POLICIES]
    assert len(names) == len(set(names))


async def test_several_admin_tokens_are_accepted_for_rotation() -> None:
    old, new = "the-old-token", "the-new-token"
    guard = admin_guard([old, "sha256:" + hashlib.sha256(new.encode()).hexdigest()])
    admin_route = _Handler(("POST", "/products"))
    for token in (old, new):  # a plain entry and a digest entry both open the admin routes
        await guard(_Connection(f"Bearer {token}"), admin_route)  # type: ignore[arg-type]
    with pytest.raises(Problem) as refused:
        await guard(_Connection("Bearer sha256:" + hashlib.sha256(new.encode()).hexdigest()), admin_route)  # type: ignore[arg-type]
    assert refused.value.status_code == 403, "the digest itself is not a credential"
