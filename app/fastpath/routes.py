"""Display-read routes: thin, return pre-encoded bytes with caching and debug headers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Request, Response, get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import HeaderParameter, PathParameter, QueryParameter

from app.contracts.policy import policy
from app.contracts.product import ProductRead
from app.contracts.ryw import RywCookies, RywToken
from app.core.problems import Problem
from app.core.schemas import MAX_BIGINT
from app.core.validation import TEXT_RULE, WORDS_PATTERN
from app.fastpath.lists import ListReads
from app.fastpath.products import ProductReads
from app.fastpath.views import Items, ProductPage, SearchPage, View

ProductId = Annotated[int, PathParameter(ge=1, le=MAX_BIGINT, description="product id")]
CategoryId = Annotated[int, PathParameter(ge=1, le=MAX_BIGINT, description="category id")]
Limit = Annotated[int, QueryParameter(ge=1, le=100, description="page size (1-100)")]
Cursor = Annotated[
    str | None,
    QueryParameter(max_length=512, pattern=r"^[A-Za-z0-9_-]*$", description="next_cursor of the previous page"),
]
SearchText = Annotated[
    str,
    QueryParameter(min_length=1, max_length=200, pattern=WORDS_PATTERN, description=f"search words; {TEXT_RULE}"),
]
IfNoneMatch = Annotated[str | None, HeaderParameter(name="If-None-Match", required=False)]
# A writer's own reads must never come from a shared or browser cache that predates the write.
_RYW_CACHE_CONTROL = "private, no-cache"


@dataclass(frozen=True, slots=True)
class DisplayReads:
    """What a display route needs, as its one dependency.

    Litestar resolves two or more dependencies of a handler concurrently, in an anyio task group
    per request; on these routes that alone cost about a seventh of a request (py-spy).
    """

    products: ProductReads
    lists: ListReads
    responder: DisplayResponder


class DisplayResponder:
    """Turns a :class:`View` into a response; knows the caller's RYW token and the debug headers."""

    def __init__(self, ryw: RywCookies, *, debug_headers: bool) -> None:
        self.ryw = ryw
        self.debug_headers = debug_headers

    def token(self, cookies: Mapping[str, str]) -> RywToken | None:
        return self.ryw.token(cookies)

    def respond(
        self, view: View, token: RywToken | None, headers: dict[str, str] | None = None, status: int = 200
    ) -> Response[bytes]:
        headers = headers or {}
        headers["Vary"] = "Cookie"
        if token is not None:
            headers["Cache-Control"] = _RYW_CACHE_CONTROL
        if view.degraded:
            # Served from a replica while the primary is unreachable: the newest data there is.
            headers["X-Degraded"] = "primary-unreachable"
        if self.debug_headers:
            headers["X-Cache"] = view.cache
            headers["X-Read-Source"] = view.source
        body = b"" if status == 304 else view.body
        return Response(content=body, status_code=status, media_type="application/json", headers=headers)


def etag_matches(etag: str, if_none_match: str | None) -> bool:
    """If-None-Match (RFC 9110 13.1.2) uses the weak comparison: ``W/"3"`` matches ``"3"``, and
    ``*`` matches any current representation."""
    if if_none_match is None:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or etag in tags


@get(
    **policy("product.get").handler_kwargs(
        {
            200: ResponseSpec(data_container=ProductRead, description="The product"),
            304: ResponseSpec(data_container=None, description="Not modified: If-None-Match matched the ETag"),
        }
    ),
)
async def get_product(
    *,
    product_id: ProductId,
    request: Request[Any, Any, Any],
    reads: NamedDependency[DisplayReads],
    if_none_match: IfNoneMatch = None,
) -> Response[bytes]:
    token = reads.responder.token(request.cookies)
    view = await reads.products.get_product(product_id, token)
    if view is None:
        raise Problem(404, "product_not_found", f"product {product_id} does not exist")
    etag = f'"{view.version}"'
    status = 304 if etag_matches(etag, if_none_match) else 200
    return reads.responder.respond(view, token, {"ETag": etag}, status=status)


@get(
    **policy("search.products").handler_kwargs(
        {200: ResponseSpec(data_container=SearchPage, description="Ranked matches")}
    ),
)
async def search_products(
    *,
    request: Request[Any, Any, Any],
    reads: NamedDependency[DisplayReads],
    q: SearchText,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> Response[bytes]:
    token = reads.responder.token(request.cookies)
    return reads.responder.respond(await reads.lists.search(q, limit, cursor, token), token)


@get(
    **policy("category.products").handler_kwargs(
        {200: ResponseSpec(data_container=ProductPage, description="One page of the category")}
    ),
)
async def category_products(
    *,
    request: Request[Any, Any, Any],
    reads: NamedDependency[DisplayReads],
    category_id: CategoryId,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> Response[bytes]:
    token = reads.responder.token(request.cookies)
    return reads.responder.respond(await reads.lists.category_page(category_id, limit, cursor, token), token)


@get(
    **policy("products.top_selling").handler_kwargs(
        {200: ResponseSpec(data_container=Items, description="Best sellers of the last 30 days")}
    ),
)
async def top_selling(
    *,
    request: Request[Any, Any, Any],
    reads: NamedDependency[DisplayReads],
    limit: Limit = 20,
) -> Response[bytes]:
    token = reads.responder.token(request.cookies)
    return reads.responder.respond(await reads.lists.top_selling(limit, token), token)


@get(
    **policy("recommendations").handler_kwargs(
        {200: ResponseSpec(data_container=Items, description="Recommended products; [] when unavailable")}
    ),
)
async def recommendations(
    *,
    request: Request[Any, Any, Any],
    reads: NamedDependency[DisplayReads],
    product_id: Annotated[int, QueryParameter(ge=1, le=MAX_BIGINT, description="the product being viewed")],
    limit: Annotated[int, QueryParameter(ge=1, le=50)] = 8,
) -> Response[bytes]:
    token = reads.responder.token(request.cookies)
    return reads.responder.respond(await reads.lists.recommendations(product_id, limit, token), token)


ROUTES = [get_product, search_products, category_products, top_selling, recommendations]
