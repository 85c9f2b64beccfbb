"""Typed settings, grouped by area and read once from ``CATALOG_*`` environment variables.

Each group owns its defaults; nothing else repeats them. A field's variable is
``CATALOG_`` + the group's prefix + the field name, upper-cased: ``relay.poll_interval_s`` is
``CATALOG_RELAY_POLL_INTERVAL_S``, ``db.primary_dsn`` is ``CATALOG_PRIMARY_DSN`` (the database
group has no prefix). Every field has a sensible default for the local stack except the secrets,
which have loud development defaults that ``CATALOG_ENV=production`` refuses.
"""

from __future__ import annotations

import functools
import os
import re
import socket
from collections.abc import Mapping
from typing import Any, Literal

import msgspec

PREFIX = "CATALOG_"
_DEV_ADMIN_TOKEN = "dev-admin-token"  # noqa: S105  (refused when CATALOG_ENV=production)
_DEV_RYW_SECRET = "dev-ryw-secret-change-me"  # noqa: S105  (refused when CATALOG_ENV=production)


class SettingsError(ValueError):
    """Raised when the environment holds a value the service cannot run with."""


class _Group(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A settings group; ``env_prefix`` is inserted between ``CATALOG_`` and the field name."""


class DatabaseSettings(_Group, frozen=True, kw_only=True):
    """Pools and every database deadline (docs/faults.md, "Deadlines")."""

    # The app connects with a least-privilege role; ops tooling may use a superuser.
    primary_dsn: str = "postgresql://catalog_app@127.0.0.1:55432/catalog"
    pool_max_size: int = 10
    # Opening a connection; a server that does not answer is unavailable after this.
    connect_timeout_s: float = 2.0
    # Waiting for a pooled connection; past it the request is answered 503, not queued longer.
    acquire_timeout_ms: int = 1_000
    # Callers allowed to wait for a connection at once, per pool; more are answered 503 at once.
    max_waiting: int = 100
    # One statement on the server (the client gives up a second later if the server is silent).
    statement_timeout_ms: int = 5_000
    # A session that holds a transaction open and idle this long is ended by the server, so a
    # frozen process (a relay mid-batch, a stuck request) cannot keep rows locked.
    idle_in_transaction_timeout_ms: int = 10_000
    # After a connection failure, calls fail fast (503) this long before one tries again.
    breaker_cooldown_s: float = 0.5


class ReplicaSettings(_Group, frozen=True, kw_only=True):
    dsns: tuple[str, ...] = ()
    # Patroni's REST API (any members'): the replicas are the members it lists as running
    # replicas, followed as they change (app/fastpath/members.py), instead of a fixed ``dsns``.
    patroni_urls: tuple[str, ...] = ()
    discovery_interval_ms: int = 1_000
    # A replica further behind than this is out of rotation (docs/consistency.md, rule 9).
    max_lag_ms: int = 1_000
    # After a replica fails, reads skip it for this long before trying it again.
    retry_after_s: float = 1.0
    # How often each instance samples replica replay positions (and the primary's WAL position).
    poll_interval_ms: int = 100


class RedisSettings(_Group, frozen=True, kw_only=True):
    url: str = "redis://127.0.0.1:56379/0"
    # Redis Cluster: ``url`` names one node or several (redis://h1:p1,h2:p2/0: any that answers
    # will do); the client learns the others and follows failovers. Scripts then touch one slot
    # each, and the cache's marks live on every shard (docs/adr/0015).
    cluster: bool = False
    # Redis is an optimisation: tight timeouts so a slow Redis never slows a read much.
    socket_timeout_ms: int = 50
    # After a Redis failure, display reads skip Redis this long before one probe tries again.
    breaker_cooldown_s: float = 1.0


class CacheSettings(_Group, frozen=True, kw_only=True):
    # Fences must outlive the largest replica lag ever served; a replica behind max_lag is out of
    # rotation, so a generous multiple of it is safe.
    fence_ttl_s: int = 300
    # List/search generations are bumped at most this often; writes in between share one bump.
    # A list is at most this (plus the relay's poll interval and replica lag) behind a write.
    list_generation_interval_s: float = 5.0


class NearCacheSettings(_Group, frozen=True, kw_only=True):
    # In-process product cache in front of Redis, kept fresh by the relays' announcements.
    # It needs this instance's relay connection to hear them (CATALOG_RELAY_ENABLED).
    enabled: bool = True
    ttl_s: float = 2.0
    max_entries: int = 20_000
    max_bytes: int = 32 * 1024 * 1024
    # Answer near-cache hits of GET /products/{id} before routing (app/fastpath/lane.py).
    fast_lane: bool = True


class RywSettings(_Group, frozen=True, kw_only=True):
    secret: str = _DEV_RYW_SECRET
    cookie_name: str = "catalog_ryw"
    # Must exceed replica.max_lag_ms: past that bound a replica is out of rotation anyway.
    ttl_s: int = 30
    max_products: int = 32
    # Off only where the service is reached over plain http (the dev stack on loopback).
    cookie_secure: bool = True


class RelaySettings(_Group, frozen=True, kw_only=True):
    enabled: bool = True
    poll_interval_s: float = 1.0
    # LISTEN for wake-ups (true) or poll only (false: e.g. behind a transaction-pooling proxy).
    listen: bool = True
    # Writers ring the doorbell after COMMIT; it sends at most one NOTIFY per this interval,
    # carrying the highest outbox id rung (app/core/doorbell.py, docs/adr/0016).
    doorbell_interval_ms: float = 2.0
    batch_size: int = 2_000
    probe_interval_s: float = 5.0
    max_backoff_s: float = 5.0
    redis_timeout_ms: int = 2_000
    # Processed events are kept this long for inspection (ops/outbox tail), then purged in batches.
    retention_s: int = 86_400
    # After a batch of at most this many products, read back the ones that were cached (a reader
    # had them within their TTL) from the primary and fill the cache (fenced), so the next reader
    # hits instead of missing (app/invalidation/refresh.py). 0 turns it off.
    refresh_max_products: int = 200


# Variables that were renamed when settings were grouped: naming the old one is an error, not a no-op.
REMOVED = {
    "CATALOG_POOL_MIN_SIZE": "pools connect on first use, so an instance starts while a database is down",
}
RENAMED = {
    "CATALOG_MAX_REPLICA_LAG_MS": "CATALOG_REPLICA_MAX_LAG_MS",
    "CATALOG_COOKIE_SECURE": "CATALOG_RYW_COOKIE_SECURE",
    "CATALOG_OUTBOX_RETENTION_S": "CATALOG_RELAY_RETENTION_S",
    "CATALOG_FENCE_TTL_S": "CATALOG_CACHE_FENCE_TTL_S",
    "CATALOG_LIST_GENERATION_INTERVAL_S": "CATALOG_CACHE_LIST_GENERATION_INTERVAL_S",
}

# Group attribute → the part of the variable name between CATALOG_ and the field name.
GROUPS: dict[str, tuple[type[_Group], str]] = {
    "db": (DatabaseSettings, ""),
    "replicas": (ReplicaSettings, "REPLICA_"),
    "redis": (RedisSettings, "REDIS_"),
    "cache": (CacheSettings, "CACHE_"),
    "near_cache": (NearCacheSettings, "NEAR_CACHE_"),
    "ryw": (RywSettings, "RYW_"),
    "relay": (RelaySettings, "RELAY_"),
}


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    env: Literal["development", "test", "production"] = "development"
    # Unique per instance: each relay raises its own cache mark under this name (ADR 0013). The
    # host name is: a container's is its id, so scaled compose replicas differ without config.
    instance_name: str = msgspec.field(default_factory=socket.gethostname)
    admin_token: str = _DEV_ADMIN_TOKEN
    # More accepted admin tokens, for rotation without downtime (README, "Admin tokens"): each a
    # token, or "sha256:<64 hex>" of one so the secret itself need not sit in the environment.
    admin_tokens: tuple[str, ...] = ()
    debug_headers: bool = False
    max_body_bytes: int = 65_536
    log_format: Literal["json", "console"] = "json"
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    db: DatabaseSettings = msgspec.field(default_factory=DatabaseSettings)
    replicas: ReplicaSettings = msgspec.field(default_factory=ReplicaSettings)
    redis: RedisSettings = msgspec.field(default_factory=RedisSettings)
    cache: CacheSettings = msgspec.field(default_factory=CacheSettings)
    near_cache: NearCacheSettings = msgspec.field(default_factory=NearCacheSettings)
    ryw: RywSettings = msgspec.field(default_factory=RywSettings)
    relay: RelaySettings = msgspec.field(default_factory=RelaySettings)

    def __post_init__(self) -> None:
        db = self.db
        if db.pool_max_size < 1 or db.max_waiting < 0:
            raise SettingsError("CATALOG_POOL_MAX_SIZE must be at least 1 and CATALOG_MAX_WAITING not negative")
        if min(db.connect_timeout_s, db.acquire_timeout_ms, db.statement_timeout_ms) <= 0:
            raise SettingsError(
                "CATALOG_CONNECT_TIMEOUT_S, CATALOG_ACQUIRE_TIMEOUT_MS and CATALOG_STATEMENT_TIMEOUT_MS"
                " must be positive"
            )
        if self.ryw.ttl_s * 1000 <= self.replicas.max_lag_ms:
            raise SettingsError("CATALOG_RYW_TTL_S must exceed CATALOG_REPLICA_MAX_LAG_MS")
        if self.max_body_bytes < 1024:
            raise SettingsError("CATALOG_MAX_BODY_BYTES must be at least 1024")
        if self.env == "production" and (self.admin_token == _DEV_ADMIN_TOKEN or self.ryw.secret == _DEV_RYW_SECRET):
            raise SettingsError("CATALOG_ADMIN_TOKEN and CATALOG_RYW_SECRET must be set in production")
        if self.cache.fence_ttl_s * 1000 <= 10 * self.replicas.max_lag_ms:
            raise SettingsError("CATALOG_CACHE_FENCE_TTL_S must exceed 10x CATALOG_REPLICA_MAX_LAG_MS")
        self._check_relay_and_replicas()
        for entry in self.admin_tokens:
            if entry.startswith("sha256:") and not re.fullmatch(r"sha256:[0-9a-f]{64}", entry):
                raise SettingsError("CATALOG_ADMIN_TOKENS: a sha256: entry needs 64 lower-case hex digits")
        if len(self.ryw.secret) < 16:
            raise SettingsError("CATALOG_RYW_SECRET must be at least 16 characters")

    def _check_relay_and_replicas(self) -> None:
        if self.relay.poll_interval_s <= 0 or self.relay.batch_size < 1:
            raise SettingsError("CATALOG_RELAY_POLL_INTERVAL_S and CATALOG_RELAY_BATCH_SIZE must be positive")
        if not 0 <= self.relay.doorbell_interval_ms <= 1000:
            raise SettingsError("CATALOG_RELAY_DOORBELL_INTERVAL_MS must be between 0 and 1000")
        if self.replicas.dsns and self.replicas.patroni_urls:
            raise SettingsError("set CATALOG_REPLICA_DSNS or CATALOG_REPLICA_PATRONI_URLS, not both")
        if self.replicas.discovery_interval_ms < 50:
            raise SettingsError("CATALOG_REPLICA_DISCOVERY_INTERVAL_MS must be at least 50")


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


_URL_LIST_SEPARATOR = re.compile(r",(?=\s*[A-Za-z][A-Za-z0-9+.-]*://)")


def _coerce(variable: str, raw: str, field_type: object) -> object:
    if field_type is bool:
        lowered = raw.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise SettingsError(f"{variable}={raw!r}: expected one of true/false/1/0/yes/no")
    if field_type == tuple[str, ...]:
        # In a list of URLs a comma starts a new item only where a URL starts: a multi-host DSN
        # (postgresql://u@h1:5432,h2:5432/db) keeps its own commas.
        parts = _URL_LIST_SEPARATOR.split(raw) if "://" in raw else raw.split(",")
        return tuple(part.strip() for part in parts if part.strip())
    if field_type in (int, float):
        try:
            return field_type(raw)
        except ValueError:
            kind = "an integer" if field_type is int else "a number"
            raise SettingsError(f"{variable}={raw!r}: expected {kind}") from None
    return raw


def variables() -> dict[str, tuple[str | None, str, object]]:
    """Every setting by its variable name: ``(group or None, field, type)``."""
    found: dict[str, tuple[str | None, str, object]] = {}
    for field in msgspec.structs.fields(Settings):
        if field.name not in GROUPS:
            found[PREFIX + field.name.upper()] = (None, field.name, field.type)
    for group, (struct, prefix) in GROUPS.items():
        for field in msgspec.structs.fields(struct):
            found[PREFIX + prefix + field.name.upper()] = (group, field.name, field.type)
    return found


def load_settings(environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Settings from ``CATALOG_*`` variables, failing with a message that names the variable.

    ``overrides`` use the variable's name without ``CATALOG_``, lower-cased
    (``relay_enabled=False``, ``primary_dsn=...``), and win over the environment.
    """
    environ = os.environ if environ is None else environ
    outdated = sorted(f"{old} is now {new}" for old, new in RENAMED.items() if old in environ)
    outdated += sorted(f"{old} is gone: {why}" for old, why in REMOVED.items() if old in environ)
    if outdated:
        raise SettingsError("outdated setting(s): " + "; ".join(outdated))
    known = variables()
    values: dict[str, Any] = {}
    for variable, (group, name, field_type) in known.items():
        key = variable.removeprefix(PREFIX).lower()
        if key in overrides:
            value = overrides.pop(key)
        elif variable in environ:
            value = _coerce(variable, environ[variable], field_type)
        else:
            continue
        (values.setdefault(group, {}) if group else values)[name] = value
    if overrides:
        raise SettingsError(f"unknown setting(s): {', '.join(sorted(overrides))}")
    try:
        return msgspec.convert(values, Settings)
    except msgspec.ValidationError as exc:
        raise SettingsError(f"invalid setting: {_name_variable(str(exc))}") from None


_AT_PATH = re.compile(r" - at `\$\.([a-z_]+)(?:\.([a-z_]+))?`$")


def _name_variable(message: str) -> str:
    """msgspec says ``- at `$.relay.batch_size```; a user set ``CATALOG_RELAY_BATCH_SIZE``."""
    match = _AT_PATH.search(message)
    if match is None:
        return message
    group, name = (match.group(1), match.group(2)) if match.group(2) else (None, match.group(1))
    prefix = GROUPS[group][1] if group in GROUPS else ""
    return f"{PREFIX}{prefix}{name.upper()}: {message[: match.start()]}"


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, loaded once from the environment."""
    return load_settings()
