from __future__ import annotations

from app.contracts.cache_keys import (
    decode_entry,
    encode_entry,
    fence_key,
    fence_key_bytes,
    product_key,
    product_key_bytes,
)


def test_byte_keys_match_the_text_keys() -> None:
    for pid in (1, 42, 9_223_372_036_854_775_807):
        assert product_key_bytes(pid) == product_key(pid).encode()
        assert fence_key_bytes(pid) == fence_key(pid).encode()


def test_fence_key_hashes_to_the_product_keys_slot() -> None:
    # Redis Cluster hashes the text inside the first {...}; a key without braces hashes whole.
    from redis.crc import key_slot

    assert key_slot(fence_key(42).encode()) == key_slot(product_key(42).encode())


def test_entry_round_trip_keeps_bytes_untouched() -> None:
    body = b'{"id":1,"name":"a|b"}'
    assert decode_entry(encode_entry(7, body)) == (7, body)
