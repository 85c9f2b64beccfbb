"""Decision routes: checkout and orders, always on the primary."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import HeaderParameter, JSONBody, PathParameter

from app.checkout.schemas import CheckoutRequest, Order, OrderPlaced
from app.checkout.service import Checkout
from app.checkout.tokens import OrderTokens
from app.contracts.policy import policy
from app.contracts.ryw import RywCookies
from app.core.problems import Problem
from app.core.schemas import MAX_BIGINT
from app.core.validation import strict_body

IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        required=False,
        min_length=1,
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",
        description="Retry-safe checkout: the same key and body return the first order",
    ),
]
OrderId = Annotated[int, PathParameter(ge=1, le=MAX_BIGINT, description="order id")]
OrderToken = Annotated[
    str | None,
    HeaderParameter(
        name="X-Order-Token",
        required=False,
        max_length=64,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="The order_token the checkout returned; without it the order is not found",
    ),
]
_encoder = msgspec.json.Encoder()


@post(
    **policy("checkout").handler_kwargs(
        {
            201: ResponseSpec(data_container=OrderPlaced, description="Order placed"),
            200: ResponseSpec(data_container=OrderPlaced, description="Idempotent replay: the order placed earlier"),
        }
    ),
    before_request=strict_body(CheckoutRequest),
    status_code=201,
)
async def checkout(
    *,
    request: Request[Any, Any, Any],
    data: JSONBody[CheckoutRequest],
    checkout: NamedDependency[Checkout],
    order_tokens: NamedDependency[OrderTokens],
    ryw: NamedDependency[RywCookies],
    idempotency_key: IdempotencyKey = None,
) -> Response[bytes]:
    result = await checkout.place(data.items, idempotency_key)
    order = result.order
    placed = OrderPlaced(**msgspec.structs.asdict(order), order_token=order_tokens.issue(order.order_id))
    headers = {"Location": f"/orders/{order.order_id}"}
    if result.replayed:
        headers["Idempotent-Replayed"] = "true"
        return Response(_encoder.encode(placed), status_code=200, media_type="application/json", headers=headers)
    # The shopper's next product page shows the stock they just took (product versions only:
    # lists may show stock up to their TTL late, so this token does not route lists to the primary).
    cookie = ryw.after_write(request.cookies, 0, result.written)
    return Response(
        _encoder.encode(placed), status_code=201, media_type="application/json", headers=headers, cookies=[cookie]
    )


@get(
    **policy("order.get").handler_kwargs({200: ResponseSpec(data_container=Order, description="The order")}),
)
async def get_order(
    *,
    order_id: OrderId,
    checkout: NamedDependency[Checkout],
    order_tokens: NamedDependency[OrderTokens],
    order_token: OrderToken = None,
) -> Response[bytes]:
    # The token is checked before the database is asked: a stranger learns nothing, not even timing.
    order = await checkout.get_order(order_id) if order_tokens.verify(order_id, order_token) else None
    if order is None:
        raise Problem(404, "order_not_found", f"order {order_id} does not exist")
    return Response(_encoder.encode(order), media_type="application/json")


ROUTES = [checkout, get_order]
