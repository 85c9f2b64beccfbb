"""What a list read costs on Redis Cluster, node by node (docs/redis-cluster.md).

A search hit is two GETs: the generation (``gen:search``) and the page. The generation keys hash
whole, so ``gen:search``, ``gen:top-selling`` and each ``gen:category:<id>`` land on their own
masters; every search reads ``gen:search``, one GET on one master per search request, cluster-wide.
"""

from __future__ import annotations

from collections import Counter

import pytest
from redis.asyncio.cluster import RedisCluster

from app.contracts.cache_keys import GEN_SEARCH, category_generation_key
from app.core.breaker import CircuitBreaker
from app.fastpath.display_cache import DisplayCache
from app.fastpath.lists import ListReads
from tests.unit.fastpath.test_lists import ROW, ScriptedRouter, _replica

pytestmark = pytest.mark.integration
READS = 50


async def _calls(cluster: RedisCluster) -> Counter[tuple[str, str]]:
    """``(node, command) -> calls`` over the masters, from INFO commandstats."""
    counts: Counter[tuple[str, str]] = Counter()
    for node in cluster.get_primaries():
        stats = await cluster.info("commandstats", target_nodes=node)
        for command in ("get", "set"):
            counts[node.name, command] = int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))
    return counts


@pytest.mark.parametrize("family", ["search", "category"])
async def test_a_list_hit_costs_two_gets_one_of_them_on_the_generations_master(
    cluster: RedisCluster, family: str
) -> None:
    cache = DisplayCache(cluster, CircuitBreaker("redis", cooldown_s=1.0), timeout_s=1.0)
    reads = ListReads(ScriptedRouter(_replica(10**9), [{**ROW, "mode": "words", "rank": 1.0}]), cache)
    gen_key = GEN_SEARCH if family == "search" else category_generation_key(2)

    async def read() -> str:
        view = await (
            reads.search("lamp", 20, None, None) if family == "search" else reads.category_page(2, 20, None, None)
        )
        return view.cache

    assert await read() == "miss"  # the page is stored
    before = await _calls(cluster)
    assert {await read() for _ in range(READS)} == {"hit"}
    delta = await _calls(cluster) - before
    assert sum(delta.values()) == 2 * READS, delta
    generation_node = cluster.get_node_from_key(gen_key)
    assert generation_node is not None
    assert delta[generation_node.name, "get"] >= READS, "every read asks the generation's master"
    print(f"{family}: {sum(delta.values()) / READS:.0f} Redis calls per hit; {gen_key} on {generation_node.name}")
