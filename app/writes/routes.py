"""Admin write routes. Each returns the new representation, its ETag and the RYW cookie."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, Response, delete, patch, post, put
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import HeaderParameter, JSONBody, PathParameter

from app.contracts.policy import policy
from app.contracts.product import ProductRead
from app.contracts.ryw import RywCookies
from app.core.schemas import MAX_BIGINT
from app.core.validation import strict_body
from app.writes.preconditions import parse_if_match
from app.writes.schemas import InventoryDelta, ProductCreate, ProductPatch, ProductReplace
from app.writes.service import ProductWrites, WriteResult

ProductId = Annotated[int, PathParameter(ge=1, le=MAX_BIGINT, description="product id")]
# Not nullable (a header is a string or absent): absent means any current version, as "*" does.
IfMatch = Annotated[
    str,
    HeaderParameter(
        name="If-Match",
        required=False,
        max_length=1024,
        description='Write only if the product is still at this version: the ETag you last saw, e.g. "3" '
        "(strong comparison: W/ tags never match; * matches any). Optional: without it the last writer wins.",
    ),
]
_encoder = msgspec.json.Encoder()
_PRODUCT_RESPONSE = {200: ResponseSpec(data_container=ProductRead, description="The product after the write")}


def _written(
    request: Request[Any, Any, Any], ryw: RywCookies, result: WriteResult, status_code: int = 200
) -> Response[bytes]:
    product = result.product
    cookie = ryw.after_write(request.cookies, result.commit_lsn, [(product.id, product.version)])
    headers = {"ETag": f'"{product.version}"'}
    if status_code == 201:
        headers["Location"] = f"/products/{product.id}"
    return Response(
        content=_encoder.encode(product), status_code=status_code, media_type="application/json",
        headers=headers, cookies=[cookie],
    )  # fmt: skip


@post(
    **policy("product.create").handler_kwargs({201: ResponseSpec(data_container=ProductRead, description="Created")}),
    before_request=strict_body(ProductCreate),
    status_code=201,
)
async def create_product(
    *,
    request: Request[Any, Any, Any],
    data: JSONBody[ProductCreate],
    product_writes: NamedDependency[ProductWrites],
    ryw: NamedDependency[RywCookies],
) -> Response[bytes]:
    result = await product_writes.create(msgspec.structs.asdict(data))
    return _written(request, ryw, result, status_code=201)


@put(
    **policy("product.replace").handler_kwargs(_PRODUCT_RESPONSE),
    before_request=strict_body(ProductReplace),
)
async def replace_product(
    *,
    request: Request[Any, Any, Any],
    product_id: ProductId,
    data: JSONBody[ProductReplace],
    product_writes: NamedDependency[ProductWrites],
    ryw: NamedDependency[RywCookies],
    if_match: IfMatch = "*",
) -> Response[bytes]:
    fields = msgspec.structs.asdict(data)
    return _written(request, ryw, await product_writes.update(product_id, fields, parse_if_match(if_match)))


@patch(
    **policy("product.update").handler_kwargs(_PRODUCT_RESPONSE),
    before_request=strict_body(ProductPatch),
)
async def update_product(
    *,
    request: Request[Any, Any, Any],
    product_id: ProductId,
    data: JSONBody[ProductPatch],
    product_writes: NamedDependency[ProductWrites],
    ryw: NamedDependency[RywCookies],
    if_match: IfMatch = "*",
) -> Response[bytes]:
    fields = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not msgspec.UNSET}
    return _written(request, ryw, await product_writes.update(product_id, fields, parse_if_match(if_match)))


@post(
    **policy("product.adjust_inventory").handler_kwargs(_PRODUCT_RESPONSE),
    before_request=strict_body(InventoryDelta),
    status_code=200,
)
async def adjust_inventory(
    *,
    request: Request[Any, Any, Any],
    product_id: ProductId,
    data: JSONBody[InventoryDelta],
    product_writes: NamedDependency[ProductWrites],
    ryw: NamedDependency[RywCookies],
    if_match: IfMatch = "*",
) -> Response[bytes]:
    result = await product_writes.adjust_inventory(product_id, data.delta, parse_if_match(if_match))
    return _written(request, ryw, result)


@delete(**policy("product.archive").handler_kwargs(_PRODUCT_RESPONSE), status_code=200)
async def archive_product(
    *,
    request: Request[Any, Any, Any],
    product_id: ProductId,
    product_writes: NamedDependency[ProductWrites],
    ryw: NamedDependency[RywCookies],
    if_match: IfMatch = "*",
) -> Response[bytes]:
    return _written(request, ryw, await product_writes.archive(product_id, parse_if_match(if_match)))


ROUTES = [create_product, replace_product, update_product, adjust_inventory, archive_product]
