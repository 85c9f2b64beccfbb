"""The fast lane: a near-cache hit of ``GET /products/{id}`` answered before Litestar routes it.

The hottest request of the service is a product page already held in this process's near cache.
Through the framework it costs routing, dependency injection, a ``Request`` and a ``Response``
object and three middlewares, several times what reading the entry costs. The lane is plain ASGI
in front of all that: it answers only when the answer is already known, with the bytes the full
path would send (``tests/integration/fastpath/test_lane.py`` compares them, every header):

- ``GET`` of exactly ``/products/<id>`` (canonical digits, no query string), nothing else;
- the entry is in the near cache, which serves only while its invalidation feed listens;
- the request carries no read-your-writes cookie: a writer's token may name a newer version
  than the entry, and only the full path checks it (and counts a bad token);
- ``If-None-Match`` is honoured (``304`` with the same headers and no body);
- the request id is echoed or made, and the route's request metrics and the near-hit read
  counter are counted, from label children resolved once.

Anything else goes on to the app, untouched. The route's path and ``Cache-Control`` come from the
policy table, like the route's own.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from litestar import Litestar
from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPResponseBodyEvent, HTTPResponseStartEvent, Receive, Scope, Send

from app.contracts.policy import policy
from app.core.http import REQUEST_IDS, HttpMetrics
from app.core.schemas import MAX_BIGINT
from app.fastpath.near_cache import NearCache
from app.fastpath.products import NEAR_HIT
from app.fastpath.routes import etag_matches

_POLICY = policy("product.get")
_PREFIX = _POLICY.template.split("{", 1)[0]  # "/products/"
_MAX_DIGITS = len(str(MAX_BIGINT))
_JSON = (b"content-type", b"application/json")


class FastLane:
    """Plain ASGI in front of the app (installed by the composition root)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        ryw_cookie: str,
        metrics: HttpMetrics,
        debug_headers: bool,
        instance_name: str,
        enabled: bool = True,
    ) -> None:
        self.app = app
        self.enabled = enabled
        self.near: NearCache | None = None  # set while the app runs (the lifespan owns the near cache)
        self.answered = 0  # requests the lane answered (tests and benchmarks read it)
        self._cookie_marker = ryw_cookie.encode() + b"="
        self._ok = metrics.route("GET", _POLICY.template, 200)
        self._not_modified = metrics.route("GET", _POLICY.template, 304)
        self._in_progress = metrics.in_progress("GET", _POLICY.template)
        # The headers the full path sends for a near-cache hit, in its order (app/fastpath/routes.py,
        # then app/core/http.py): before the ETag, between it and the body's, and after.
        self._head = [(b"cache-control", _POLICY.cache_control.encode())]
        self._vary = [(b"vary", b"Cookie")]
        if debug_headers:
            self._vary += [(b"x-cache", b"hit"), (b"x-read-source", b"cache")]
        self._tail = [(b"x-instance", instance_name.encode())] if debug_headers else []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        near = self.near
        if near is None or not self.enabled or scope["type"] != ScopeType.HTTP or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        digits = path[len(_PREFIX) :]
        if (
            not path.startswith(_PREFIX)
            or scope["query_string"]
            or not digits.isdigit()
            or not digits.isascii()
            or digits[0] == "0"
            or len(digits) > _MAX_DIGITS
            or int(digits) > MAX_BIGINT
        ):
            await self.app(scope, receive, send)
            return
        entry = near.get(int(digits))
        if entry is None:
            await self.app(scope, receive, send)
            return
        request_id = if_none_match = None
        for name, value in scope["headers"]:
            if name == b"cookie":
                if self._cookie_marker in value:
                    await self.app(scope, receive, send)  # a writer: the full path checks the token
                    return
            elif name == b"x-request-id":
                request_id = value[:128] or None
            elif name == b"if-none-match":
                if_none_match = value.decode("latin-1")
        started = time.perf_counter()
        etag = b'"%d"' % entry.version
        modified = not etag_matches(etag.decode(), if_none_match)
        body = entry.body if modified else b""
        # A 304 carries no representation headers (RFC 9110 15.4.5), as Litestar sends it.
        representation = [_JSON, (b"content-length", b"%d" % len(body))] if modified else []
        headers = [
            *self._head,
            (b"etag", etag),
            *self._vary,
            *representation,
            (b"x-request-id", request_id or REQUEST_IDS.make()),
            *self._tail,
        ]
        NEAR_HIT.inc()
        self._in_progress.inc()
        try:
            start: HTTPResponseStartEvent = {
                "type": "http.response.start",
                "status": 200 if modified else 304,
                "headers": headers,
            }
            await send(start)
            end: HTTPResponseBodyEvent = {"type": "http.response.body", "body": body, "more_body": False}
            await send(end)
            self.answered += 1
        finally:
            self._in_progress.dec()
        (self._ok if modified else self._not_modified).observe(time.perf_counter() - started)


def install(app: Litestar, lane_factory: Callable[[ASGIApp], FastLane]) -> FastLane:
    """Put a lane in front of a Litestar app's request handling.

    ``Litestar.__call__`` sets up the scope (``app``, ``state``) and then calls ``asgi_handler``
    (its exception handling, then routing): the lane takes that handler's place and calls it for
    everything it does not answer.
    """
    lane = lane_factory(app.asgi_handler)
    app.asgi_handler = lane
    return lane
