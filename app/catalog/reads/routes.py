"""Display-read routes: thin, return pre-encoded bytes."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, get
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import PathParameter

from app.catalog.schemas import MAX_BIGINT, ProductRead
from app.core.policy import policy
from app.core.problems import Problem
from app.core.state import services_of

ProductId = Annotated[int, PathParameter(ge=1, le=MAX_BIGINT, description="product id")]


@get(
    **policy("product.get").handler_kwargs(),
    responses={200: ResponseSpec(data_container=ProductRead, description="The product")},
)
async def get_product(product_id: ProductId, request: Request[Any, Any, Any]) -> Response[bytes]:
    services = services_of(request)
    view = await services.product_reads.get_product(product_id)
    if view is None:
        raise Problem(404, "product_not_found", f"product {product_id} does not exist")
    headers = {"ETag": f'"{view.version}"'}
    if services.settings.debug_headers:
        headers["X-Read-Source"] = view.source
    return Response(content=view.body, media_type="application/json", headers=headers)


ROUTES = [get_product]
