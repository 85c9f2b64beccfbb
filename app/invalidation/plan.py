"""What an outbox event means for Redis, and applying a whole batch of them in one pipeline.

Every step is idempotent (fence = max, delete, generation bump), so at-least-once delivery is
safe: applying a batch twice, or two overlapping batches, leaves the cache in the same state as
applying it once. (A generation bumped twice only costs an extra list-cache miss.)
"""

from __future__ import annotations

from collections import defaultdict
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
    shard_key,
)
from app.contracts.cache_scripts import CacheScripts, ScriptCall
from app.contracts.events import check_event
from app.core.redis import slot_of


@dataclass(slots=True)
class InvalidationPlan:
    """The Redis work for a batch, deduplicated: per product only the newest version matters."""

    versions: dict[int, int] = field(default_factory=dict)
    categories: set[int] = field(default_factory=set)
    lists: bool = False
    unparsed: int = 0  # payloads outside the event contract: nothing to apply, but worth a look
    # (position in the batch, reason) of each payload outside the contract: quarantined with it.
    rejected: list[tuple[int, str]] = field(default_factory=list)

    def add(self, payload: object, position: int = -1) -> bool:
        """Fold one outbox payload in; False when it is not an event of the contract (nothing to do)."""
        event, reason = check_event(payload)
        if event is None:
            self.rejected.append((position, reason))
            self.unparsed += 1
            return False
        self.versions[event.id] = max(event.version, self.versions.get(event.id, 0))
        self.categories.update((event.category_id, event.old_category_id))
        self.lists = True
        return True

    @classmethod
    def of(cls, payloads: Iterable[object]) -> InvalidationPlan:
        plan = cls()
        for position, payload in enumerate(payloads):
            plan.add(payload, position)
        return plan


# Products per script call: bounds how long one script blocks Redis (about a millisecond).
SCRIPT_CHUNK = 500


def product_groups(versions: dict[int, int], *, by_slot: bool) -> list[list[tuple[int, int]]]:
    """``(product, version)`` pairs in script-sized groups; under Redis Cluster each group's keys
    share one hash slot (a product and its fence always do), else the call fails with CROSSSLOT."""
    items = list(versions.items())
    if not by_slot:
        return [items[i : i + SCRIPT_CHUNK] for i in range(0, len(items), SCRIPT_CHUNK)]
    slots: defaultdict[int, list[tuple[int, int]]] = defaultdict(list)
    for item in items:
        slots[slot_of(fence_key_bytes(item[0]))].append(item)
    return [group[i : i + SCRIPT_CHUNK] for group in slots.values() for i in range(0, len(group), SCRIPT_CHUNK)]


async def apply_plan(
    scripts: CacheScripts,
    plan: InvalidationPlan,
    fence_ttl_ms: int,
    *,
    lsn: int,
    generation_interval_ms: int,
    relay_mark: str | None = None,
    cached: set[int] | None = None,
    seen: int = 0,
    own: int = 0,
) -> bool:
    """Fence and delete every product, bump every affected list generation, raise the cache's
    memory mark: one round trip, in that order.

    ``lsn`` is the primary's WAL insert position read after the events committed; generations
    remember it so list readers know which replicas are fresh enough to fill the cache from, and
    the mark records that this Redis holds every invalidation up to it. ``relay_mark`` is the
    applying relay's own mark key, raised last. Returns False when Redis lost keys and the relay
    must re-apply recent invalidations: ``cache:mark`` missing or below ``seen`` (the highest the
    relay has seen), or the relay's own mark below ``own`` (the highest it raised it to); a mark
    found so is left as it is (recovery.py sets it). Under Redis Cluster both marks are raised on
    every shard (``scripts.mark_tags``), after that shard's other writes of the batch, and each
    shard is judged alone.
    ``cached``, when given, receives the products whose entry was in the cache when it was deleted.
    """
    calls: list[ScriptCall] = []
    ttl = b"%d" % fence_ttl_ms
    report = b"1" if cached is not None else b""
    chunks = product_groups(plan.versions, by_slot=scripts.cluster)
    for chunk in chunks:
        # Pre-encoded: redis-py's per-argument encoding is the relay's main CPU cost otherwise.
        keys = [k for product_id, _ in chunk for k in (product_key_bytes(product_id), fence_key_bytes(product_id))]
        args = [ttl, report, *[b"%d" % version for _, version in chunk]]
        calls.append((scripts.fence_and_delete_many, keys, args))
    generations = [category_generation_key(c) for c in sorted(plan.categories)]
    if plan.lists:
        generations += [GEN_SEARCH, GEN_TOP_SELLING]
    position = lsn_hex(lsn)
    calls += [(scripts.bump_generation, [key], [position, generation_interval_ms]) for key in generations]
    # Last: a Redis that has the mark has everything before it (replication keeps order). In a
    # cluster the pipeline keeps each master's calls in order, so this holds per shard.
    marks = len(calls)
    at_least = lsn_hex(seen) if seen else ""
    calls += [(scripts.raise_mark, [shard_key(CACHE_MARK, tag)], [position, at_least]) for tag in scripts.mark_tags]
    if relay_mark is not None:
        at_least = lsn_hex(own) if own else ""
        calls += [
            (scripts.raise_relay_mark, [shard_key(relay_mark, tag)], [position, at_least]) for tag in scripts.mark_tags
        ]
    results = await scripts.run_pipelined(calls)
    if cached is not None:
        for chunk, positions in zip(chunks, results, strict=False):
            cached.update(chunk[position - 1][0] for position in positions)
    return all(results[marks:])
