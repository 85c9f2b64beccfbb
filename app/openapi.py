"""The HTTP contract: the OpenAPI document completed where Litestar cannot say it, and ``Allow``.

- Request bodies refuse unknown members (``forbid_unknown_fields``): say ``additionalProperties:
  false`` so clients and fuzzers know.
- A created product and a placed order link to the operations that take their ids (and, for an
  order, the token that opens it).
- ``OPTIONS`` answers with every method of the path (see :func:`fix_allow`).
"""

from __future__ import annotations

from litestar import Litestar
from litestar.openapi.spec import Link, OpenAPI
from litestar.routes import HTTPRoute

from app.contracts.policy import policy
from app.core.schemas import Schema

# Operations a new product's id opens, by policy name, and the path parameter that takes it.
_PRODUCT_LINKS = ("product.get", "product.replace", "product.update", "product.adjust_inventory", "product.archive")


def _strict_bodies() -> set[str]:
    found: set[str] = set()
    pending: list[type[Schema]] = [Schema]
    while pending:
        cls = pending.pop()
        sub: type[Schema]
        for sub in cls.__subclasses__():
            found.add(sub.__name__)
            pending.append(sub)
    return found


def complete_openapi(app: Litestar) -> OpenAPI:
    """Finish the app's OpenAPI document in place (before it is first served)."""
    document = app.openapi_schema
    strict = _strict_bodies()
    components = document.components.schemas if document.components and document.components.schemas else {}
    for name, component in components.items():
        if name in strict:
            component.additional_properties = False
    # A PATCH field is "the PUT field, or absent": Litestar renders ``X | UnsetType`` losing X's
    # constraints (a negative price would look valid), so PATCH takes PUT's property schemas.
    patch, replace = components.get("ProductPatch"), components.get("ProductReplace")
    if patch is not None and replace is not None and patch.properties and replace.properties:
        patch.properties = {key: replace.properties.get(key, value) for key, value in patch.properties.items()}
    paths = document.paths or {}
    created = paths["/products"].post
    if created is not None and created.responses is not None:
        created.responses["201"].links = {  # type: ignore[union-attr]
            policy(name).name: Link(operation_id=policy(name).name, parameters={"product_id": "$response.body#/id"})
            for name in _PRODUCT_LINKS
        }
    placed = paths["/checkout"].post
    if placed is not None and placed.responses is not None:
        order = Link(
            operation_id=policy("order.get").name,
            parameters={"order_id": "$response.body#/order_id", "header.X-Order-Token": "$response.body#/order_token"},
        )
        for status in ("200", "201"):
            placed.responses[status].links = {"order.get": order}  # type: ignore[union-attr]
    return document


def fix_allow(app: Litestar) -> None:
    """Make every ``OPTIONS`` answer list all of its path's methods.

    Litestar builds a path's ``OPTIONS`` handler when the first handler for that path registers,
    bound to that first route object; when handlers from another package join the path later,
    the answer keeps listing only the first one's methods (``GET, OPTIONS`` for a product, where
    PUT, PATCH and DELETE are mounted by the write path). Rebuild it on the final route.
    """
    for mounted in app.routes:
        if not isinstance(mounted, HTTPRoute) or "OPTIONS" not in mounted.route_handler_map:
            continue
        stale, _model = mounted.route_handler_map["OPTIONS"]
        if stale.handler_name != "options_handler":  # one of ours, not Litestar's
            continue
        fresh = mounted.create_options_handler(mounted.path)
        fresh.owner = stale.owner
        fresh.on_registration(app)
        model = fresh.create_kwargs_model(path_parameters=mounted.path_parameters)
        mounted.route_handler_map["OPTIONS"] = (fresh, model)
