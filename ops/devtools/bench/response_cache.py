"""The comparison the design is measured against: the product route behind Litestar's own
``ResponseCacheConfig`` + ``RedisStore`` (``ops/bench http``). Not mounted by the real app.
"""

from __future__ import annotations

from litestar import Litestar, Response, get
from litestar.config.response_cache import ResponseCacheConfig
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.stores.redis import RedisStore
from redis.asyncio import Redis

from app.core.settings import get_settings
from app.fastpath.routes import DisplayReads
from app.main import create_app as create_catalog_app


@get("/bench/response-cache/products/{product_id:int}", cache=300, sync_to_thread=False)
async def cached_product(product_id: FromPath[int], reads: NamedDependency[DisplayReads]) -> Response[bytes]:
    view = await reads.products.get_product(product_id, None)
    body = view.body if view is not None else b"{}"
    return Response(body, media_type="application/json")


def create_app() -> Litestar:
    settings = get_settings()
    store = RedisStore(Redis.from_url(settings.redis.url), namespace="bench-response-cache")
    return create_catalog_app(
        settings,
        route_handlers=[cached_product],
        stores={"response_cache": store},
        response_cache_config=ResponseCacheConfig(store="response_cache"),
    )
