"""Admin write routes. Each returns the new representation, its ETag and the RYW cookie."""

from __future__ import annotations

import re
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, delete, patch, post, put
from litestar.di import NamedDependency, Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import HeaderParameter, JSONBody, PathParameter

from app.catalog.schemas import (
    InventoryDelta,
    ProductCreate,
    ProductPatch,
    ProductRead,
    ProductReplace,
)
from app.catalog.writes.service import ProductWrites, WriteResult
from app.core.policy import policy
from app.core.problems import Problem
from app.core.ryw import ryw_cookie
from app.core.schemas import MAX_BIGINT
from app.services import services_of

ProductId = Annotated[int, PathParameter(ge=1, le=MAX_BIGINT, description="product id")]
IfMatch = Annotated[
    str | None,
    HeaderParameter(name="If-Match", required=False, description='The ETag you last saw, e.g. "3"'),
]
_ETAG = re.compile(r'^(?:W/)?"(\d{1,18})"$')
_encoder = msgspec.json.Encoder()
_PRODUCT_RESPONSE = {200: ResponseSpec(data_container=ProductRead, description="The product after the write")}


def parse_if_match(value: str | None) -> int | None:
    """``"3"`` → 3; absent or ``*`` → None (any current version)."""
    if value is None or value.strip() == "*":
        return None
    match = _ETAG.match(value.strip())
    if match is None:
        raise Problem(400, "invalid_if_match", 'If-Match must be an ETag such as "3"')
    return int(match.group(1))


def _written(request: Request[Any, Any, Any], result: WriteResult, status_code: int = 200) -> Response[bytes]:
    services = services_of(request)
    product = result.product
    settings = services.settings
    cookie = ryw_cookie(
        services.ryw, settings, request.cookies.get(settings.ryw_cookie_name), result.commit_lsn,
        [(product.id, product.version)],
    )  # fmt: skip
    headers = {"ETag": f'"{product.version}"'}
    if status_code == 201:
        headers["Location"] = f"/products/{product.id}"
    return Response(
        content=_encoder.encode(product), status_code=status_code, media_type="application/json",
        headers=headers, cookies=[cookie],
    )  # fmt: skip


def provide_writes(request: Request[Any, Any, Any]) -> ProductWrites:
    return services_of(request).product_writes


_WRITES = {"writes": Provide(provide_writes, sync_to_thread=False)}


@post(
    **policy("product.create").handler_kwargs(),
    dependencies=_WRITES,
    status_code=201,
    responses={201: ResponseSpec(data_container=ProductRead, description="Created")},
)
async def create_product(
    request: Request[Any, Any, Any], data: JSONBody[ProductCreate], writes: NamedDependency[ProductWrites]
) -> Response[bytes]:
    result = await writes.create(msgspec.structs.asdict(data))
    return _written(request, result, status_code=201)


@put(**policy("product.replace").handler_kwargs(), dependencies=_WRITES, responses=_PRODUCT_RESPONSE)
async def replace_product(
    request: Request[Any, Any, Any],
    product_id: ProductId,
    data: JSONBody[ProductReplace],
    writes: NamedDependency[ProductWrites],
    if_match: IfMatch = None,
) -> Response[bytes]:
    fields = msgspec.structs.asdict(data)
    return _written(request, await writes.update(product_id, fields, parse_if_match(if_match)))


@patch(**policy("product.update").handler_kwargs(), dependencies=_WRITES, responses=_PRODUCT_RESPONSE)
async def update_product(
    request: Request[Any, Any, Any],
    product_id: ProductId,
    data: JSONBody[ProductPatch],
    writes: NamedDependency[ProductWrites],
    if_match: IfMatch = None,
) -> Response[bytes]:
    fields = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not msgspec.UNSET}
    return _written(request, await writes.update(product_id, fields, parse_if_match(if_match)))


@post(
    **policy("product.adjust_inventory").handler_kwargs(),
    dependencies=_WRITES,
    status_code=200,
    responses=_PRODUCT_RESPONSE,
)
async def adjust_inventory(
    request: Request[Any, Any, Any],
    product_id: ProductId,
    data: JSONBody[InventoryDelta],
    writes: NamedDependency[ProductWrites],
) -> Response[bytes]:
    return _written(request, await writes.adjust_inventory(product_id, data.delta))


@delete(
    **policy("product.archive").handler_kwargs(), dependencies=_WRITES, status_code=200, responses=_PRODUCT_RESPONSE
)
async def archive_product(
    request: Request[Any, Any, Any],
    product_id: ProductId,
    writes: NamedDependency[ProductWrites],
    if_match: IfMatch = None,
) -> Response[bytes]:
    return _written(request, await writes.archive(product_id, parse_if_match(if_match)))


ROUTES = [create_product, replace_product, update_product, adjust_inventory, archive_product]
