"""Redis key layout and the two atomic primitives that keep the product cache honest.

Keys (Redis-Cluster-safe: a key without braces hashes whole, so ``product:42`` and
``{product:42}:fence`` land in the same slot and one script may touch both):

- ``product:<id>``         the cached product: ``b"<version>|<json>"``
- ``{product:<id>}:fence`` the highest version the relay has seen committed for this product
- ``gen:category:<id>``, ``gen:search``, ``gen:top-selling``  list/search cache generations:
  a counter (part of every list key) and the primary's WAL insert position the relay read after
  the events committed. A list read from a replica that has not replayed that far may be served
  but is not cached, which closes the stale-refill race for lists too. Bumps are coalesced to at
  most one per interval, or a busy catalog would never get a list-cache hit.

The fence closes the stale-refill races (DESIGN.md rule 4): a fill that read an old row, from a
slow query or a lagging replica, is refused once the relay has announced a newer version.
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

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


def category_generation_key(category_id: int) -> str:
    return f"gen:category:{category_id}"


def encode_entry(version: int, body: bytes) -> bytes:
    return b"%d|%b" % (version, body)


def decode_entry(raw: bytes | str) -> tuple[int, bytes]:
    """``(version, json_bytes)`` from a cache entry; the JSON is never decoded here."""
    head, _, body = (raw.encode() if isinstance(raw, str) else raw).partition(b"|")
    return int(head), body


# Raise each product's fence to max(fence, version), then drop its cached entry. Idempotent:
# applying the same events twice, or out of order, leaves the same state.
# KEYS are (product key, fence key) pairs, ARGV[1] is
# the fence TTL and ARGV[i + 1] the version for pair i. One round trip and one script run per
# batch instead of one per product. Under Redis Cluster the caller must group pairs by hash slot.
_FENCE_AND_DELETE_MANY = """
local ttl = ARGV[1]
for i = 1, #KEYS, 2 do
  local version = tonumber(ARGV[(i + 1) / 2 + 1])
  local current = tonumber(redis.call('GET', KEYS[i + 1]) or '0')
  if version > current then
    redis.call('SET', KEYS[i + 1], version, 'PX', ttl)
  else
    redis.call('PEXPIRE', KEYS[i + 1], ttl)
  end
  redis.call('DEL', KEYS[i])
end
return #KEYS / 2
"""

# Bump a list generation, at most once per interval (writes in between are coalesced into one
# bump), remembering the primary LSN the bump covers. Value: "<n>:<lsn>:<pending lsn>:<bumped ms>".
# KEYS: generation key. ARGV: LSN (16 hex digits, compared as text: exact, unlike Lua numbers),
# or '' to only flush a pending bump; minimum interval in ms. Returns 1 when nothing is left
# pending, 0 when a bump is waiting for its interval.
_BUMP_GENERATION = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n, lsn, pending, bumped = 0, '0000000000000000', '', 0
local current = redis.call('GET', KEYS[1])
if current then
  local a, b, c, d = string.match(current, '^(%d+):(%x+):(%x*):(%d+)$')
  if a then n, lsn, pending, bumped = tonumber(a), b, c, tonumber(d) end
end
if ARGV[1] ~= '' and (pending == '' or ARGV[1] > pending) then pending = ARGV[1] end
if pending == '' then return 1 end
if now - bumped >= tonumber(ARGV[2]) then
  if pending > lsn then lsn = pending end
  redis.call('SET', KEYS[1], (n + 1) .. ':' .. lsn .. '::' .. now)
  return 1
end
redis.call('SET', KEYS[1], n .. ':' .. lsn .. ':' .. pending .. ':' .. bumped)
return 0
"""


def lsn_hex(lsn: int) -> str:
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


# Cache a product only if it is at least as new as the fence and as any cached entry.
# KEYS: product key, fence key. ARGV: version, entry bytes, TTL in ms.
# Returns 1 when stored, 0 when refused as stale.
_FILL_IF_NEWER = """
local version = tonumber(ARGV[1])
local fence = tonumber(redis.call('GET', KEYS[2]) or '0')
if version < fence then return 0 end
local cached = redis.call('GET', KEYS[1])
if cached then
  local cached_version = tonumber(string.match(cached, '^(%d+)|'))
  if cached_version and version < cached_version then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""


class CacheScripts:
    """The Lua primitives registered on one Redis client."""

    def __init__(self, redis: Redis) -> None:
        self.fence_and_delete_many: AsyncScript = redis.register_script(_FENCE_AND_DELETE_MANY)
        self.bump_generation: AsyncScript = redis.register_script(_BUMP_GENERATION)
        self.fill_if_newer_script: AsyncScript = redis.register_script(_FILL_IF_NEWER)
        self.redis = redis

    async def fill_if_newer(self, product_id: int, version: int, body: bytes, ttl_ms: int) -> bool:
        """Store the entry unless a newer version was fenced or is cached; True when stored."""
        stored = await self.fill_if_newer_script(
            keys=[product_key(product_id), fence_key(product_id)],
            args=[version, encode_entry(version, body), ttl_ms],
        )
        return bool(stored)
