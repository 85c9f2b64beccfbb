"""The relay's Redis connections pack commands with hiredis: the same bytes redis-py would send."""

from __future__ import annotations

import pytest
from redis.asyncio import Connection
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import DataError

from app.core.redis import HiredisPackingConnection, cluster_startup_nodes, create_redis
from app.core.settings import RedisSettings

COMMANDS: list[tuple[object, ...]] = [
    ("EVALSHA", "a" * 40, 4, b"product:1", b"{product:1}:fence", b"product:2", b"{product:2}:fence", b"300000", 7, 8),
    ("SET", "cache:mark", "00000000DEADBEEF"),
    ("CONFIG GET", "maxmemory"),
    (b"CLIENT SETNAME", "relay"),
    ("SET", "k", 1.5),
    ("SET", "k", bytearray(b"x\x00y"), memoryview(b"\xff\xfe")),
    ("SET", "ünïcode", "välue"),
    ("SET", "big", b"x" * 100_000),
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: str(c[0]))
def test_packs_the_bytes_redis_py_packs(command: tuple[object, ...]) -> None:
    ours = b"".join(HiredisPackingConnection().pack_commands([command]))
    theirs = b"".join(Connection().pack_commands([command]))
    assert ours == theirs


def test_refuses_what_redis_py_refuses() -> None:
    with pytest.raises(DataError):
        HiredisPackingConnection().pack_command("SET", "k", None)  # type: ignore[arg-type]


async def test_the_client_uses_it_for_redis_urls() -> None:
    client = create_redis(RedisSettings(url="redis://127.0.0.1:1/0"))
    try:
        assert client.connection_pool.connection_class is HiredisPackingConnection
    finally:
        await client.aclose()


def test_a_cluster_url_names_its_nodes_any_of_which_will_do() -> None:
    first, others = cluster_startup_nodes("redis://user:pw@10.0.0.1:7000,10.0.0.2:7001,[::1]:7002/0")
    assert first == "redis://user:pw@10.0.0.1:7000/0"
    assert others == [("10.0.0.2", 7001), ("[::1]", 7002)]
    assert cluster_startup_nodes("redis://h:6379/0") == ("redis://h:6379/0", [])


async def test_the_cluster_client_packs_with_hiredis_too_and_knows_every_node_given() -> None:
    client = create_redis(RedisSettings(url="redis://127.0.0.1:1,127.0.0.1:2/0", cluster=True))
    try:
        assert isinstance(client, RedisCluster)
        nodes = client.nodes_manager.startup_nodes
        assert sorted(nodes) == ["127.0.0.1:1", "127.0.0.1:2"]
        assert {node.connection_class for node in nodes.values()} == {HiredisPackingConnection}
    finally:
        await client.aclose()
