"""The relay's Redis connections pack commands with hiredis: the same bytes redis-py would send."""

from __future__ import annotations

import pytest
from redis.asyncio import Connection
from redis.exceptions import DataError

from app.core.redis import HiredisPackingConnection, create_redis
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
