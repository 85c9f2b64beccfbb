"""The product write path: each write is ONE primary transaction with its outbox event.

Nothing touches Redis here. The row change and the outbox row commit or roll
back together; after COMMIT the doorbell wakes the relays (off the commit path, docs/adr/0016),
which turn committed events into cache invalidations. After COMMIT we also read the WAL insert
LSN on the same connection for the read-your-writes token (docs/consistency.md, rule 2).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import asyncpg

from app.contracts.events import EventType, ProductChanged, encode_event
from app.contracts.product import ProductRead
from app.core.db import WritePool, lsn_to_int
from app.core.doorbell import Doorbell
from app.core.metrics import DB_QUERY_SECONDS, WRITES
from app.core.problems import Problem
from app.core.sql import queries

Q = queries("catalog")


@dataclass(frozen=True, slots=True)
class WriteResult:
    product: ProductRead
    commit_lsn: int


# Outbox event type → endpoint (policy name) its database time is reported under.
_ENDPOINT_OF = {
    EventType.PRODUCT_CREATED: "product.create",
    EventType.PRODUCT_UPDATED: "product.update",
    EventType.INVENTORY_CHANGED: "product.adjust_inventory",
    EventType.PRODUCT_ARCHIVED: "product.archive",
}
# Their metric series, looked up once (a labels() lookup per write is measurable at flash-sale rates).
_WRITES_OF = {event_type: WRITES.labels(event_type) for event_type in _ENDPOINT_OF}
_SECONDS_OF = {event_type: DB_QUERY_SECONDS.labels("primary", name) for event_type, name in _ENDPOINT_OF.items()}
# A conditional write that matched nothing although the row, read next, matches: it changed in
# between (READ COMMITTED: each statement sees what had committed when it began). Retried this often.
_NO_MATCH_RETRIES = 3
_UPDATE_FIELDS = ("sku", "name", "description", "category_id", "price_cents", "currency")


class ProductWrites:
    """Admin writes against the primary."""

    def __init__(self, pool: WritePool, doorbell: Doorbell | None) -> None:
        self.pool = pool
        self.doorbell = doorbell  # None: no relay listens in this process; its poll finds the events

    async def create(self, fields: dict[str, Any]) -> WriteResult:
        """Insert a product at version 1 with a ``product.created`` event."""
        args = (
            fields["sku"],
            fields["name"],
            fields["description"],
            fields["category_id"],
            fields["price_cents"],
            fields["currency"],
            fields["inventory"],
        )
        return await self._write(EventType.PRODUCT_CREATED, None, Q["insert_product"], *args)

    async def update(self, product_id: int, fields: dict[str, Any], if_match: list[int] | None) -> WriteResult:
        """Apply the given fields (a PUT passes all of them) if the version still matches."""
        if not fields:
            raise Problem(422, "empty_update", "the request names no field to change")
        args = [fields.get(name) for name in _UPDATE_FIELDS]
        query = Q["update_product"]
        return await self._write(EventType.PRODUCT_UPDATED, product_id, query, product_id, *args, if_match)

    async def adjust_inventory(self, product_id: int, delta: int, if_match: list[int] | None = None) -> WriteResult:
        """Add ``delta`` (may be negative) to stock atomically; 409 below zero, 412 if If-Match is stale."""
        if delta == 0:
            raise Problem(422, "empty_update", "delta must not be 0")
        query = Q["adjust_inventory"]
        return await self._write(EventType.INVENTORY_CHANGED, product_id, query, product_id, delta, if_match)

    async def archive(self, product_id: int, if_match: list[int] | None) -> WriteResult:
        """Archive the product; display reads answer 404 afterwards."""
        return await self._write(EventType.PRODUCT_ARCHIVED, product_id, Q["archive_product"], product_id, if_match)

    async def _write(self, event_type: EventType, product_id: int | None, query: str, *args: Any) -> WriteResult:
        started = time.perf_counter()
        async with self.pool.acquire() as conn:
            try:
                async with conn.transaction():
                    row = await conn.fetchrow(query, *args)
                    for _ in range(_NO_MATCH_RETRIES):
                        if row is not None:
                            break
                        assert product_id is not None  # inserts always return a row
                        await self._explain_no_match(conn, event_type, product_id, args)
                        # The row matches now: it changed (or appeared) between the two statements,
                        # each of which sees what had committed when it began. Again, in this transaction.
                        row = await conn.fetchrow(query, *args)
                    if row is None:
                        raise Problem(409, "write_conflict", "the product kept changing; send the write again")
                    record = dict(row)
                    old_category_id = record.pop("old_category_id")
                    product = ProductRead(**record)
                    event = ProductChanged(
                        id=product.id,
                        version=product.version,
                        category_id=product.category_id,
                        old_category_id=old_category_id,
                    )
                    event_id: int = await conn.fetchval(
                        Q["insert_outbox_event"], event_type, product.id, encode_event(event)
                    )
            except asyncpg.UniqueViolationError:
                raise Problem(409, "sku_taken", "another product already uses this sku") from None
            except asyncpg.ForeignKeyViolationError:
                raise Problem(422, "unknown_category", "category_id names no existing category") from None
            except asyncpg.NumericValueOutOfRangeError:
                raise Problem(
                    409, "inventory_out_of_range", "the change would take inventory past its maximum"
                ) from None
            if self.doorbell is not None:
                self.doorbell.ring(event_id)  # committed: wake the relays
            # After COMMIT, on the same connection: at or past the end of our commit record.
            lsn: str = await conn.fetchval(Q["commit_lsn"])
        _WRITES_OF[event_type].inc()
        _SECONDS_OF[event_type].observe(time.perf_counter() - started)
        return WriteResult(product=product, commit_lsn=lsn_to_int(lsn))

    @staticmethod
    async def _explain_no_match(
        conn: asyncpg.pool.PoolConnectionProxy[asyncpg.Record],
        event_type: EventType,
        product_id: int,
        args: tuple[Any, ...],
    ) -> None:
        """Raise the Problem a write that matched no row deserves; return if the row matches now."""
        state = await conn.fetchrow(Q["product_state"], product_id)
        if state is None or state["archived"]:
            raise Problem(404, "product_not_found", f"product {product_id} does not exist")
        if_match: list[int] | None = args[-1]
        if if_match is not None and state["version"] not in if_match:
            raise Problem(
                412,
                "version_mismatch",
                f"If-Match does not match the current version {state['version']}",
                current_version=state["version"],
            )
        if event_type is EventType.INVENTORY_CHANGED and state["inventory"] + args[1] < 0:
            raise Problem(
                409,
                "insufficient_inventory",
                "the change would take inventory below zero",
                product_id=product_id,
                delta=args[1],
                inventory=state["inventory"],
            )
