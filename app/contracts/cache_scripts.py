"""The Lua primitives that keep the product and list caches honest, and their binding to a client.

Each script touches keys of one hash slot only (see :mod:`app.contracts.cache_keys`), so they run
unchanged on Redis Cluster once callers group keys by slot.
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from app.contracts.cache_keys import encode_entry, fence_key, product_key

# Raise each product's fence to max(fence, version), then drop its cached entry. Idempotent:
# applying the same events twice, or out of order, leaves the same state.
# KEYS are (product key, fence key) pairs, ARGV[1] is
# the fence TTL and ARGV[i + 1] the version for pair i. One round trip and one script run per
# batch instead of one per product. Under Redis Cluster the caller must group pairs by hash slot.
FENCE_AND_DELETE_MANY = """
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
BUMP_GENERATION = """
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

# Cache a product only if it is at least as new as the fence and as any cached entry.
# KEYS: product key, fence key. ARGV: version, entry bytes, TTL in ms.
# Returns 1 when stored, 0 when refused as stale.
FILL_IF_NEWER = """
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
        self.fence_and_delete_many: AsyncScript = redis.register_script(FENCE_AND_DELETE_MANY)
        self.bump_generation: AsyncScript = redis.register_script(BUMP_GENERATION)
        self.fill_if_newer_script: AsyncScript = redis.register_script(FILL_IF_NEWER)
        self.redis = redis

    async def fill_if_newer(self, product_id: int, version: int, body: bytes, ttl_ms: int) -> bool:
        """Store the entry unless a newer version was fenced or is cached; True when stored."""
        stored = await self.fill_if_newer_script(
            keys=[product_key(product_id), fence_key(product_id)],
            args=[version, encode_entry(version, body), ttl_ms],
        )
        return bool(stored)
