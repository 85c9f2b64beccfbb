"""What an outbox event means for Redis, and applying a whole batch of them in one pipeline.

Every step is idempotent (fence = max, delete, generation bump), so at-least-once delivery is
safe: applying a batch twice, or two overlapping batches, leaves the cache in the same state as
applying it once. (A generation bumped twice only costs an extra list-cache miss.)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from app.contracts.cache_keys import (
    CACHE_MARK,
    GEN_SEARCH,
    GEN_TOP_SELLING,
    category_generation_key,
    fence_key_bytes,
    lsn_hex,
    product_key_bytes,
)
from app.contracts.cache_scripts import CacheScripts, ScriptCall
from app.contracts.events import parse_event


@dataclass(slots=True)
class InvalidationPlan:
    """The Redis work for a batch, deduplicated: per product only the newest version matters."""

    versions: dict[int, int] = field(default_factory=dict)
    categories: set[int] = field(default_factory=set)
    lists: bool = False
    unparsed: int = 0  # payloads outside the event contract: nothing to apply, but worth a look

    def add(self, payload: object) -> bool:
        """Fold one outbox payload in; False when it is not an event of the contract (nothing to do)."""
        event = parse_event(payload)
        if event is None:
            self.unparsed += 1
            return False
        self.versions[event.id] = max(event.version, self.versions.get(event.id, 0))
        self.categories.update((event.category_id, event.old_category_id))
        self.lists = True
        return True

    @classmethod
    def of(cls, payloads: Iterable[object]) -> InvalidationPlan:
        plan = cls()
        for payload in payloads:
            plan.add(payload)
        return plan


# Products per script call: bounds how long one script blocks Redis (about a millisecond).
SCRIPT_CHUNK = 500


async def apply_plan(
    scripts: CacheScripts,
    plan: InvalidationPlan,
    fence_ttl_ms: int,
    *,
    lsn: int,
    generation_interval_ms: int,
    relay_mark: str | None = None,
) -> bool:
    """Fence and delete every product, bump every affected list generation, raise the cache's
    memory mark: one round trip, in that order.

    ``lsn`` is the primary's WAL insert position read after the events committed; generations
    remember it so list readers know which replicas are fresh enough to fill the cache from, and
    the mark records that this Redis holds every invalidation up to it. ``relay_mark`` is the
    applying relay's own mark key, raised last. Returns False when the mark is missing: Redis lost
    its keys, and the relay must re-apply recent invalidations.
    """
    items = list(plan.versions.items())
    calls: list[ScriptCall] = []
    ttl = b"%d" % fence_ttl_ms
    for start in range(0, len(items), SCRIPT_CHUNK):
        chunk = items[start : start + SCRIPT_CHUNK]
        # Pre-encoded: redis-py's per-argument encoding is the relay's main CPU cost otherwise.
        keys = [k for product_id, _ in chunk for k in (product_key_bytes(product_id), fence_key_bytes(product_id))]
        args = [ttl, *[b"%d" % version for _, version in chunk]]
        calls.append((scripts.fence_and_delete_many, keys, args))
    generations = [category_generation_key(c) for c in sorted(plan.categories)]
    if plan.lists:
        generations += [GEN_SEARCH, GEN_TOP_SELLING]
    position = lsn_hex(lsn)
    calls += [(scripts.bump_generation, [key], [position, generation_interval_ms]) for key in generations]
    # Last: a Redis that has the mark has everything before it (replication keeps order).
    calls.append((scripts.raise_mark, [CACHE_MARK], [position]))
    if relay_mark is not None:
        calls.append((scripts.raise_relay_mark, [relay_mark], [position]))
    results = await scripts.run_pipelined(calls)
    return bool(results[-2 if relay_mark is not None else -1])
