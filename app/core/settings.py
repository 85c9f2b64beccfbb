"""Typed settings, read once from ``CATALOG_*`` environment variables.

Every field has a sensible default for the local stack except the secrets, which have
loud development defaults that ``CATALOG_ENV=production`` refuses.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from typing import Literal

import msgspec

PREFIX = "CATALOG_"


class SettingsError(ValueError):
    """Raised when the environment holds a value the service cannot run with."""


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    env: Literal["development", "test", "production"] = "development"
    instance_name: str = "catalog"

    # Databases. The app connects with a least-privilege role; ops tooling may use a superuser.
    primary_dsn: str = "postgresql://catalog_app@127.0.0.1:55432/catalog"
    replica_dsns: tuple[str, ...] = ()
    pool_min_size: int = msgspec.field(default=2)
    pool_max_size: int = 10
    statement_timeout_ms: int = 5_000
    connect_timeout_s: float = 2.0
    # A replica further behind than this is out of rotation (DESIGN.md rule 9).
    max_replica_lag_ms: int = 1_000
    # After a replica fails, reads skip it for this long before trying it again.
    replica_retry_after_s: float = 1.0
    # How often each instance samples replica replay positions (and the primary's WAL position).
    replica_poll_interval_ms: int = 100

    redis_url: str = "redis://127.0.0.1:56379/0"
    # Redis is an optimisation: tight timeouts so a slow Redis never slows a read much.
    redis_socket_timeout_ms: int = 50
    # After a Redis failure, display reads skip Redis this long before one probe tries again.
    redis_breaker_cooldown_s: float = 1.0
    # In-process product cache in front of Redis, kept fresh by the relays' announcements.
    # It needs this instance's relay connection to hear them (CATALOG_RELAY_ENABLED).
    near_cache_enabled: bool = True
    near_cache_ttl_s: float = 2.0
    near_cache_max_entries: int = 20_000
    near_cache_max_bytes: int = 32 * 1024 * 1024

    admin_token: str = "dev-admin-token"  # noqa: S105  (refused when CATALOG_ENV=production)
    ryw_secret: str = "dev-ryw-secret-change-me"  # noqa: S105  (refused when CATALOG_ENV=production)
    ryw_cookie_name: str = "catalog_ryw"
    # Must exceed max_replica_lag_ms: past that bound a replica is out of rotation anyway.
    ryw_ttl_s: int = 30
    ryw_max_products: int = 32
    cookie_secure: bool = True

    debug_headers: bool = False
    max_body_bytes: int = 65_536
    log_format: Literal["json", "console"] = "json"
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    relay_enabled: bool = True
    relay_poll_interval_s: float = 1.0
    # LISTEN for wake-ups (true) or poll only (false: e.g. behind a transaction-pooling proxy).
    relay_listen: bool = True
    relay_batch_size: int = 2_000
    relay_probe_interval_s: float = 5.0
    relay_max_backoff_s: float = 5.0
    relay_redis_timeout_ms: int = 2_000
    # Processed events are kept this long for inspection (ops/outbox tail), then purged in batches.
    outbox_retention_s: int = 86_400
    # Fences must outlive the largest replica lag ever served; a replica behind max_replica_lag is
    # out of rotation, so a generous multiple of it is safe.
    fence_ttl_s: int = 300
    # List/search generations are bumped at most this often; writes in between share one bump.
    # A list is at most this (plus the relay's poll interval and replica lag) behind a write.
    list_generation_interval_s: float = 5.0

    def __post_init__(self) -> None:
        if self.pool_min_size < 0 or self.pool_max_size < 1 or self.pool_min_size > self.pool_max_size:
            raise SettingsError("CATALOG_POOL_MIN_SIZE/CATALOG_POOL_MAX_SIZE: need 0 <= min <= max, max >= 1")
        if self.ryw_ttl_s * 1000 <= self.max_replica_lag_ms:
            raise SettingsError("CATALOG_RYW_TTL_S must exceed CATALOG_MAX_REPLICA_LAG_MS")
        if self.max_body_bytes < 1024:
            raise SettingsError("CATALOG_MAX_BODY_BYTES must be at least 1024")
        if self.env == "production" and (
            self.admin_token == "dev-admin-token" or self.ryw_secret == "dev-ryw-secret-change-me"  # noqa: S105
        ):
            raise SettingsError("CATALOG_ADMIN_TOKEN and CATALOG_RYW_SECRET must be set in production")
        if self.fence_ttl_s * 1000 <= 10 * self.max_replica_lag_ms:
            raise SettingsError("CATALOG_FENCE_TTL_S must exceed 10x CATALOG_MAX_REPLICA_LAG_MS")
        if self.relay_poll_interval_s <= 0 or self.relay_batch_size < 1:
            raise SettingsError("CATALOG_RELAY_POLL_INTERVAL_S and CATALOG_RELAY_BATCH_SIZE must be positive")
        if len(self.ryw_secret) < 16:
            raise SettingsError("CATALOG_RYW_SECRET must be at least 16 characters")


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _coerce(name: str, raw: str, field_type: object) -> object:
    if field_type is bool:
        lowered = raw.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise SettingsError(f"{PREFIX}{name.upper()}={raw!r}: expected one of true/false/1/0/yes/no")
    if field_type == tuple[str, ...]:
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    if field_type is int:
        try:
            return int(raw)
        except ValueError:
            raise SettingsError(f"{PREFIX}{name.upper()}={raw!r}: expected an integer") from None
    if field_type is float:
        try:
            return float(raw)
        except ValueError:
            raise SettingsError(f"{PREFIX}{name.upper()}={raw!r}: expected a number") from None
    return raw


def load_settings(environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Build settings from ``CATALOG_*`` variables (plus explicit overrides), failing with a clear message."""
    environ = os.environ if environ is None else environ
    fields = {f.name: f.type for f in msgspec.structs.fields(Settings)}
    values: dict[str, object] = {}
    for name, field_type in fields.items():
        raw = environ.get(PREFIX + name.upper())
        if raw is not None:
            values[name] = _coerce(name, raw, field_type)
    values.update(overrides)
    try:
        return msgspec.convert(values, Settings)
    except msgspec.ValidationError as exc:
        raise SettingsError(f"invalid setting: {exc}") from None


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, loaded once from the environment."""
    return load_settings()
