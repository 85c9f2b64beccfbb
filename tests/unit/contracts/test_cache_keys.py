from __future__ import annotations

import pytest

from app.contracts.cache_keys import (
    GENERATION_CLOCK_MARGIN_MS,
    decode_entry,
    encode_entry,
    fence_key,
    fence_key_bytes,
    lsn_hex,
    parse_generation,
    parse_lsn_hex,
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


def test_lsn_text_round_trip_and_order() -> None:
    assert parse_lsn_hex(lsn_hex(0x16_B374D848)) == 0x16_B374D848
    assert lsn_hex(2**33) > lsn_hex(2**32 + 5), "compared as text, 16 hex digits order like the numbers"
    assert parse_lsn_hex(None) is None
    assert parse_lsn_hex(b"not hex") is None


NOW = 1_000_000
DUE = NOW - GENERATION_CLOCK_MARGIN_MS  # a pending bump whose time has come (margin included)


@pytest.mark.parametrize(
    ("raw", "now_ms", "expected"),
    [
        (None, NOW, (0, 0)),
        (f"7:{lsn_hex(100)}::{NOW + 5000}", NOW, (7, 100)),
        # Pending, not due: the old generation, but only replicas past the pending change may fill it.
        (f"7:{lsn_hex(100)}:{lsn_hex(300)}:{NOW + 1}", NOW, (7, 300)),
        # Pending and due: counted as made, whether or not a relay is alive to make it.
        (f"7:{lsn_hex(100)}:{lsn_hex(300)}:{DUE}", NOW, (8, 300)),
        # Due, but within the clock margin: not yet (a reader ahead of Redis must not jump early).
        (f"7:{lsn_hex(100)}:{lsn_hex(300)}:{DUE + 1}", NOW, (7, 300)),
        ("garbage", NOW, (0, 0)),
    ],
)
def test_readers_see_a_due_bump_as_made(raw: str | None, now_ms: int, expected: tuple[int, int]) -> None:
    assert parse_generation(raw, now_ms) == expected
