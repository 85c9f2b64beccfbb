"""The read-your-writes token: a signed cookie with the commit LSN and the versions a user wrote.

Set after COMMIT by the write path and checkout; the display path serves this user from a cache
entry or replica only when it has caught up with these (docs/adr/0007). A token that fails its HMAC or
has expired is ignored: the user just reads like anyone else.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping
from typing import Literal

import msgspec
from litestar.datastructures import Cookie

from app.core.metrics import RYW_TOKENS_IGNORED
from app.core.settings import RywSettings


class RywToken(msgspec.Struct, array_like=True, frozen=True):
    # Commit LSN of the user's last catalog write (0: none). Lists and search read from a replica
    # only once it has replayed this far. Checkouts leave it alone: they change stock, which the
    # product page must show the buyer at once, while lists may show stock a TTL late.
    lsn: int
    expires_at: int  # unix seconds
    writes: tuple[tuple[int, int], ...]  # (product_id, version), newest last, bounded

    def version_of(self, product_id: int) -> int | None:
        """The version this user last wrote for a product, if any."""
        for pid, version in reversed(self.writes):
            if pid == product_id:
                return version
        return None


RejectReason = Literal["malformed", "bad_signature", "expired"]
_decoder = msgspec.json.Decoder(RywToken)
_encoder = msgspec.json.Encoder()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class RywCodec:
    """Signs, verifies and merges RYW tokens; every instance shares the secret."""

    def __init__(self, secret: str, ttl_s: int, max_products: int) -> None:
        self._key = secret.encode()
        self.ttl_s = ttl_s
        self.max_products = max_products

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode("ascii"), hashlib.sha256).digest())

    def encode(self, token: RywToken) -> str:
        payload = _b64(_encoder.encode(token))
        return f"{payload}.{self._sign(payload)}"

    def decode(self, value: str, now: float | None = None) -> RywToken | RejectReason:
        """The token, or why it was rejected."""
        payload, sep, signature = value.partition(".")
        if not sep or not payload or not signature or not value.isascii():
            return "malformed"
        if not hmac.compare_digest(self._sign(payload), signature):
            return "bad_signature"
        try:
            token = _decoder.decode(_unb64(payload))
        except (ValueError, msgspec.DecodeError):
            return "malformed"
        if token.expires_at <= (time.time() if now is None else now):
            return "expired"
        return token

    def after_write(
        self, previous: RywToken | None, lsn: int, writes: list[tuple[int, int]], now: float | None = None
    ) -> RywToken:
        """The token to set after a commit: latest LSN, newest version per product, bounded."""
        merged: dict[int, int] = {}
        for pid, version in (previous.writes if previous else ()) + tuple(writes):
            merged.pop(pid, None)  # re-insert so the most recent write is last
            merged[pid] = max(version, (previous.version_of(pid) or 0) if previous else 0)
        kept = tuple(merged.items())[-self.max_products :]
        issued = time.time() if now is None else now
        return RywToken(
            lsn=max(lsn, previous.lsn if previous else 0),
            expires_at=int(issued) + self.ttl_s,
            writes=kept,
        )


class RywCookies:
    """The token as a cookie: read it from a request's cookies, set it after a write."""

    def __init__(self, settings: RywSettings) -> None:
        self.codec = RywCodec(settings.secret, settings.ttl_s, settings.max_products)
        self.name = settings.cookie_name
        self.secure = settings.cookie_secure

    def token(self, cookies: Mapping[str, str]) -> RywToken | None:
        """The caller's valid token, if any; tampered or expired ones are ignored and counted."""
        raw = cookies.get(self.name)
        if not raw:
            return None
        decoded = self.codec.decode(raw)
        if isinstance(decoded, str):
            RYW_TOKENS_IGNORED.labels(decoded).inc()
            return None
        return decoded

    def after_write(self, cookies: Mapping[str, str], lsn: int, writes: list[tuple[int, int]]) -> Cookie:
        """The cookie to set after a commit: the caller's valid token merged with this write.

        Pass ``lsn=0`` for a write whose effect lists need not show at once (a checkout's stock).
        """
        token = self.codec.after_write(self.token(cookies), lsn, writes)
        return Cookie(
            key=self.name,
            value=self.codec.encode(token),
            max_age=self.codec.ttl_s,
            path="/",
            httponly=True,
            samesite="lax",
            secure=self.secure,
        )
