"""The list-cache decision, with an in-memory cache and router: what is served, what is stored."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

import msgspec

from app.contracts.ryw import RywToken
from app.core.db import ReadPool
from app.fastpath.display_cache import CacheState
from app.fastpath.lists import ListReads
from app.fastpath.replica_router import Route

POOL = cast("ReadPool", object())


class MemoryListStore:
    """The display cache's list operations, in a dict; ``down`` makes it behave like an open breaker."""

    def __init__(self, generations: dict[str, tuple[int, int]] | None = None) -> None:
        self.generations = generations or {}
        self.entries: dict[str, bytes] = {}
        self.down = False

    async def generation(self, gen_key: str) -> tuple[int, int] | None:
        return None if self.down else self.generations.get(gen_key, (0, 0))

    async def get_list(self, family: str, key: str) -> tuple[bytes | None, CacheState]:
        if self.down:
            return None, "bypass"
        body = self.entries.get(key)
        return body, "hit" if body is not None else "miss"

    async def set_list(self, key: str, body: bytes, ttl_s: int) -> None:
        if not self.down:
            self.entries[key] = body


class ScriptedRouter:
    """Answers every read from one route, and records the ``min_lsn`` each read asked for."""

    def __init__(self, route: Route, rows: list[dict[str, Any]]) -> None:
        self.route = route
        self.rows = rows
        self.asked: list[int] = []

    async def run(self, endpoint: str, work: Callable[[ReadPool], Awaitable[Any]], *, min_lsn: int = 0) -> Any:
        self.asked.append(min_lsn)
        return await work(cast("ReadPool", _Rows(self.rows))), self.route


class _Rows:
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    async def fetch(self, _query: str, *_args: object) -> list[dict[str, Any]]:
        return self.rows


ROW = {
    "id": 1, "sku": "S-1", "name": "Lamp", "description": "", "category_id": 2, "price_cents": 100,
    "currency": "USD", "inventory": 3, "version": 4, "updated_at": "2026-01-01T00:00:00Z",
}  # fmt: skip


def _replica(replay_lsn: int) -> Route:
    return Route(POOL, "replica", "replica", None, replay_lsn=replay_lsn)


async def test_a_miss_from_a_caught_up_replica_is_stored_and_then_hit() -> None:
    store = MemoryListStore({"gen:top-selling": (3, 500)})
    reads = ListReads(ScriptedRouter(_replica(600), [ROW]), store)
    first = await reads.top_selling(5, None)
    assert (first.source, first.cache) == ("replica", "miss")
    assert list(store.entries) == ["top-selling:g3:5"]
    second = await reads.top_selling(5, None)
    assert (second.source, second.cache, second.body) == ("cache", "hit", first.body)
    assert msgspec.json.decode(second.body)["items"][0]["id"] == 1


async def test_a_list_from_a_replica_behind_the_generation_is_served_but_not_stored() -> None:
    store = MemoryListStore({"gen:top-selling": (3, 500)})
    reads = ListReads(ScriptedRouter(_replica(499), [ROW]), store)
    view = await reads.top_selling(5, None)
    assert view.source == "replica"
    assert store.entries == {}, "an old list would come back under the new generation"


async def test_a_list_from_the_primary_is_always_fresh_enough_to_store() -> None:
    store = MemoryListStore({"gen:top-selling": (1, 10**9)})
    reads = ListReads(ScriptedRouter(Route(POOL, "primary", "lag", None), [ROW]), store)
    await reads.top_selling(5, None)
    assert list(store.entries) == ["top-selling:g1:5"]


async def test_a_writer_skips_the_list_cache_and_asks_for_their_commit() -> None:
    store = MemoryListStore()
    store.entries["top-selling:g0:5"] = b'{"items":[]}'  # what everyone else sees
    router = ScriptedRouter(_replica(900), [ROW])
    token = RywToken(lsn=800, expires_at=2**40, writes=((1, 4),))
    view = await ListReads(router, store).top_selling(5, token)
    assert view.cache == "bypass"
    assert router.asked == [800]
    assert msgspec.json.decode(view.body)["items"][0]["id"] == 1


async def test_with_the_cache_down_lists_are_read_around_it() -> None:
    store = MemoryListStore()
    store.down = True
    view = await ListReads(ScriptedRouter(_replica(10), [ROW]), store).top_selling(5, None)
    assert (view.cache, view.source) == ("bypass", "replica")
