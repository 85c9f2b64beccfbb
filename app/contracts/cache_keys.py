"""The Redis key layout and the formats stored under it: what readers, the relay and ops agree on.

Keys (Redis-Cluster-safe: a key without braces hashes whole, so ``product:42`` and
``{product:42}:fence`` land in the same slot and one script may touch both):

- ``product:<id>``         the cached product: ``b"<version>|<json>"``
- ``{product:<id>}:fence`` the highest version the relay has seen committed for this product
- ``lease:product:<id>``   a short lease: one instance fills a cold product, the others wait
- ``gen:category:<id>``, ``gen:search``, ``gen:top-selling``  list/search cache generations:
  a counter (part of every list key) and the primary's WAL insert position the relay read after
  the events committed. A list read from a replica that has not replayed that far may be served
  but is not cached, which closes the stale-refill race for lists too (docs/adr/0004).
- ``<family>:g<counter>:<suffix>``  a cached list page under its generation.

The fence closes the stale-refill races (docs/consistency.md, rule 4): a fill that read an old
row, from a slow query or a lagging replica, is refused once the relay has announced a newer
version (docs/adr/0003).
"""

from __future__ import annotations

GEN_SEARCH = "gen:search"
GEN_TOP_SELLING = "gen:top-selling"


def product_key(product_id: int) -> str:
    return f"product:{product_id}"


def fence_key(product_id: int) -> str:
    return f"{{product:{product_id}}}:fence"


def product_key_bytes(product_id: int) -> bytes:
    """``product_key`` pre-encoded, for the relay's large pipelines."""
    return b"product:%d" % product_id


def fence_key_bytes(product_id: int) -> bytes:
    return b"{product:%d}:fence" % product_id


def lease_key(key: str) -> str:
    return f"lease:{key}"


def category_generation_key(category_id: int) -> str:
    return f"gen:category:{category_id}"


def list_key(family: str, generation: int | None, suffix: str) -> str:
    """A list page's key; without a generation the entry lives for its TTL only."""
    return f"{family}:{suffix}" if generation is None else f"{family}:g{generation}:{suffix}"


def encode_entry(version: int, body: bytes) -> bytes:
    return b"%d|%b" % (version, body)


def decode_entry(raw: bytes | str) -> tuple[int, bytes]:
    """``(version, json_bytes)`` from a cache entry; the JSON is never decoded here."""
    head, _, body = (raw.encode() if isinstance(raw, str) else raw).partition(b"|")
    return int(head), body


def lsn_hex(lsn: int) -> str:
    """An LSN as the generation script compares it: 16 hex digits, exact as text (Lua numbers are not)."""
    return f"{lsn:016X}"


def parse_generation(raw: bytes | str | None) -> tuple[int, int]:
    """``(counter, lsn)`` of a generation: the LSN a replica must have replayed for its lists to be cached.

    That is the bumped LSN, or a pending (coalesced, not yet bumped) one if higher: a list read
    from a replica that has replayed the pending changes is fresh, one that has not is not.
    A missing key is generation 0 at LSN 0.
    """
    if raw is None:
        return 0, 0
    parts = (raw.decode() if isinstance(raw, bytes) else raw).split(":")
    lsns = [int(p, 16) for p in parts[1:3] if p]
    return int(parts[0]), max(lsns, default=0)
