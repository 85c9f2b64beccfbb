"""ops/cache: does every cached product equal the primary's row?

  ops/cache check [--json] [--dsn DSN] [--redis-url URL] [--redis-cluster]

check scans product:* in Redis and compares each entry (version and JSON
body) with the product as the primary has it now. Run it after a load test,
once writes stopped and the outbox drained: any difference is a stale entry
the invalidation path failed to remove.

Flags may come before or after the command. Defaults: $CATALOG_PRIMARY_DSN,
$CATALOG_REDIS_URL, $CATALOG_REDIS_CLUSTER (ops/cache fills them from
.run/stack.env when they are not exported).

Exit status: 0 every cached product matches; 1 a stale or orphaned entry, or
the primary or Redis is unreachable; 2 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

import asyncpg
import msgspec

from app.admin_cli.args import global_flags, no_stack, tool_parser, unreachable
from app.contracts.cache_keys import decode_entry
from app.contracts.product import product_from_row
from app.core.redis import REDIS_ERRORS, create_redis
from app.core.settings import RedisSettings
from app.core.sql import queries

Q = queries("catalog")
_BATCH = 1000


async def check_cache(dsn: str, redis_url: str, *, cluster: bool = False) -> dict[str, Any]:
    """``{"checked", "stale", "orphaned", "examples"}``: stale = differs from the primary, orphaned = no such row.

    Under Redis Cluster the scan visits every master and the reads are grouped per slot.
    """
    redis = create_redis(RedisSettings(url=redis_url, cluster=cluster, socket_timeout_ms=5000))
    conn = await asyncpg.connect(dsn, server_settings={"application_name": "catalog.ops"})
    checked = stale = orphaned = 0
    examples: list[dict[str, Any]] = []
    try:
        keys: list[bytes] = [key async for key in redis.scan_iter(match="product:*", count=1000)]
        for start in range(0, len(keys), _BATCH):
            batch = keys[start : start + _BATCH]
            values = await (redis.mget_nonatomic(batch) if cluster else redis.mget(batch))  # type: ignore[union-attr]
            ids = [int(k.split(b":", 1)[1]) for k in batch]
            rows = {r["id"]: r for r in await conn.fetch(Q["get_products"], ids)}
            for product_id, raw in zip(ids, values, strict=True):
                if raw is None:  # expired or invalidated between SCAN and MGET
                    continue
                checked += 1
                version, body = decode_entry(raw)
                row = rows.get(product_id)
                if row is None:
                    orphaned += 1
                    examples.append({"id": product_id, "problem": "no such (unarchived) product", "cached": version})
                    continue
                truth = msgspec.json.decode(msgspec.json.encode(product_from_row(row)))
                if version != row["version"] or msgspec.json.decode(body) != truth:
                    stale += 1
                    examples.append({"id": product_id, "cached_version": version, "primary_version": row["version"]})
    finally:
        await conn.close()
        await redis.aclose()
    return {"checked": checked, "stale": stale, "orphaned": orphaned, "examples": examples[:20]}


_UNREACHABLE: tuple[type[BaseException], ...] = (*REDIS_ERRORS, asyncpg.PostgresError)


def _truthy(text: str | None) -> bool:
    return (text or "").lower() in {"1", "true", "yes"}


def parser() -> argparse.ArgumentParser:
    common = global_flags()
    common.add_argument(
        "--dsn", default=argparse.SUPPRESS, help="primary DSN (default: $CATALOG_PRIMARY_DSN, else .run/stack.env's)"
    )
    common.add_argument(
        "--redis-url", default=argparse.SUPPRESS, help="Redis URL (default: $CATALOG_REDIS_URL, else .run/stack.env's)"
    )
    common.add_argument(
        "--redis-cluster",
        action="store_true",
        default=argparse.SUPPRESS,
        help="the URL names a node of a Redis Cluster (default: $CATALOG_REDIS_CLUSTER)",
    )
    top = tool_parser("ops/cache", __doc__, common)
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("check", parents=[common], help="compare every cached product with the primary")
    return top


def main(argv: list[str] | None = None) -> int:
    top = parser()
    args = top.parse_args(argv)
    dsn = getattr(args, "dsn", None) or os.environ.get("CATALOG_PRIMARY_DSN")
    redis_url = getattr(args, "redis_url", None) or os.environ.get("CATALOG_REDIS_URL")
    cluster = getattr(args, "redis_cluster", False) or _truthy(os.environ.get("CATALOG_REDIS_CLUSTER"))
    as_json: bool = getattr(args, "json", False)
    if not dsn or not redis_url:
        return no_stack("ops/cache", "no primary DSN or Redis URL: pass --dsn and --redis-url, or export them")
    try:
        result = asyncio.run(check_cache(dsn, redis_url, cluster=cluster))
    except _UNREACHABLE as exc:
        return unreachable("ops/cache", "the primary or Redis", exc)
    except KeyboardInterrupt:
        print("ops/cache: interrupted", file=sys.stderr)
        return 130
    if as_json:
        print(msgspec.json.encode(result).decode())
    else:
        print(f"checked {result['checked']} cached products: {result['stale']} stale, {result['orphaned']} orphaned")
        for example in result["examples"]:
            print(f"  {msgspec.json.encode(example).decode()}")
    return 1 if result["stale"] or result["orphaned"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
