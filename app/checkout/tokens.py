"""Order access tokens: an order belongs to whoever holds the token its checkout returned.

Order ids are sequential, so the id alone must not open an order. The token is an HMAC of the
order id under a key derived from the service secret: nothing to store, every instance can check
it, and an idempotent replay of the checkout returns the same token. Without it, or with a wrong
one, ``GET /orders/{id}`` answers 404, as for an order that does not exist (existence is not
confirmed to strangers).
"""

from __future__ import annotations

import base64
import hashlib
import hmac

# Domain separation: the same secret signs read-your-writes cookies; the two never verify each other.
_PURPOSE = b"catalog order access tokens v1"


class OrderTokens:
    def __init__(self, secret: str) -> None:
        self._key = hmac.new(secret.encode(), _PURPOSE, hashlib.sha256).digest()

    def issue(self, order_id: int) -> str:
        """The order's token (128 bits, URL-safe)."""
        digest = hmac.new(self._key, b"order:%d" % order_id, hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def verify(self, order_id: int, token: str | None) -> bool:
        """Constant-time: does ``token`` open this order?"""
        return token is not None and hmac.compare_digest(self.issue(order_id), token)
