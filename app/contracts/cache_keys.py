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
- ``cache:mark``           the highest primary position whose invalidations this Redis holds;
  missing after Redis lost its keys, which is how the relay notices (docs/adr/0009).
- ``cache:mark:<relay>``   the highest position of that relay's own batches in this Redis: a
  failover that lost one of its batches shows it lower, even when another relay's batch raised
  ``cache:mark`` past it first (docs/adr/0013).
- ``cache:timeline``       ``<system identifier>:<timeline>`` of the primary whose history the
  cache holds; a relay connected to another (a promoted replica) empties the cache (docs/adr/0014).
- Under Redis Cluster both marks exist once per master, ``cache:mark:{s<n>}`` and
  ``cache:mark:<relay>:{s<n>}``, the tag chosen to land on that master's slots: one shard that
  forgets cannot be seen from another (docs/adr/0015).

The fence closes the stale-refill races (docs/consistency.md, rule 4): a fill that read an old
row, from a slow query or a lagging replica, is refused once the relay has announced a newer
version (docs/adr/0003).
"""

from __future__ import annotations

CACHE_MARK = "cache:mark"
# "<system identifier>:<timeline>" of the primary whose history the cache holds (ADR 0014).
CACHE_TIMELINE = "cache:timeline"
GEN_SEARCH = "gen:search"
GEN_TOP_SELLING = "gen:top-selling"


def relay_mark_key(relay_name: str) -> str:
    return f"{CACHE_MARK}:{relay_name}"


def shard_key(key: str, tag: str) -> str:
    """``key`` as held by the shard of hash tag ``tag``; itself for a single Redis (``tag == ""``)."""
    return f"{key}:{{{tag}}}" if tag else key


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


def parse_lsn_hex(raw: bytes | str | None) -> int | None:
    """The LSN stored by :func:`lsn_hex`, or None when missing or unreadable."""
    if raw is None:
        return None
    try:
        return int(raw, 16)
    except ValueError:
        return None


# Readers count a pending bump as made this long after it fell due, so that a reader whose clock
# runs ahead of Redis's never uses a generation before the script would (see parse_generation).
GENERATION_CLOCK_MARGIN_MS = 500


def parse_generation(raw: bytes | str | None, now_ms: int) -> tuple[int, int]:
    """``(counter, lsn)`` of a list generation as a reader must use it at ``now_ms``.

    The LSN is what a replica must have replayed for a list it served to be stored: the bumped
    LSN, or a pending (coalesced, not yet due) one if higher. A pending bump that fell due counts
    as made, exactly as the bump script will make it (docs/adr/0004). A missing key is
    generation 0 at LSN 0.
    """
    if raw is None:
        return 0, 0
    parts = (raw.decode() if isinstance(raw, bytes) else raw).split(":")
    if len(parts) != 4:
        return 0, 0
    counter, lsn = int(parts[0]), int(parts[1], 16)
    if not parts[2]:
        return counter, lsn
    pending = int(parts[2], 16)
    due = now_ms >= int(parts[3]) + GENERATION_CLOCK_MARGIN_MS
    return (counter + 1 if due else counter), max(lsn, pending)
