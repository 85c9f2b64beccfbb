"""The Lua primitives that keep the product and list caches honest, and their binding to a client.

Each script touches keys of one hash slot only (see :mod:`app.contracts.cache_keys`), so they run
unchanged on Redis Cluster once callers group keys by slot.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from app.contracts.cache_keys import encode_entry, fence_key, product_key
from app.core.redis import RedisClient, is_cluster, shard_tags

# Raise each product's fence to max(fence, version), then drop its cached entry. Idempotent:
# applying the same events twice, or out of order, leaves the same state.
# KEYS are (product key, fence key) pairs, ARGV[1] is the fence TTL, ARGV[2] '1' to report which
# entries were cached (else ''), and ARGV[i + 2] the version for pair i. One round trip and one
# script run per batch instead of one per product. Under Redis Cluster the caller must group pairs
# by hash slot.
# Two calls per product and one DEL for all (calls dominate the script's time): SET ... GET
# writes the version and returns the old fence, which is written back in the rare case it was
# newer (a repeat or a late duplicate); either way the fence's TTL starts again. Reporting costs
# one DEL per product instead: it returns the positions (from 1) of the pairs whose entry was there,
# the products a reader had cached (worth refreshing); otherwise the number of pairs.
FENCE_AND_DELETE_MANY = """
local ttl = ARGV[1]
local report = ARGV[2] == '1'
local entries = {}
local cached = {}
for i = 1, #KEYS, 2 do
  local pair = (i + 1) / 2
  local version = ARGV[pair + 2]
  local previous = redis.call('SET', KEYS[i + 1], version, 'PX', ttl, 'GET')
  if previous and tonumber(previous) > tonumber(version) then
    redis.call('SET', KEYS[i + 1], previous, 'PX', ttl)
  end
  if report then
    if redis.call('DEL', KEYS[i]) == 1 then cached[#cached + 1] = pair end
  else
    entries[#entries + 1] = KEYS[i]
  end
end
if #entries > 0 then redis.call('DEL', unpack(entries)) end
if report then return cached end
return #KEYS / 2
"""

# Bump a list generation at most once per interval: writes in between are coalesced into one
# bump, due when the interval has passed. Value: "<n>:<lsn>:<pending lsn>:<next ms>", where <lsn>
# is the primary position the generation covers, <pending lsn> the newest change not yet in a bump
# (or empty), and <next ms> the earliest time the next bump may happen.
# A due pending bump counts as made whether or not anyone runs this script again: readers compute
# it the same way (parse_generation), so a relay that dies with a bump pending leaves no list
# staler than the interval (docs/adr/0004). The script makes it real before adding anything new.
# KEYS: generation key. ARGV: LSN (16 hex digits, compared as text: exact, unlike Lua numbers),
# or '' to only make a due bump real; the interval in ms.
BUMP_GENERATION = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[2])
local n, lsn, pending, next_ms = 0, '0000000000000000', '', 0
local current = redis.call('GET', KEYS[1])
if current then
  local a, b, c, d = string.match(current, '^(%d+):(%x+):(%x*):(%d+)$')
  if a then n, lsn, pending, next_ms = tonumber(a), b, c, tonumber(d) end
end
if pending ~= '' and now >= next_ms then
  n = n + 1
  if pending > lsn then lsn = pending end
  pending = ''
  next_ms = next_ms + interval
end
if ARGV[1] ~= '' and ARGV[1] > lsn and (pending == '' or ARGV[1] > pending) then
  if pending == '' and now >= next_ms then
    n = n + 1
    lsn = ARGV[1]
    next_ms = now + interval
  else
    pending = ARGV[1]
  end
end
redis.call('SET', KEYS[1], n .. ':' .. lsn .. ':' .. pending .. ':' .. next_ms)
return n
"""

# The cache's memory mark: the highest primary position whose invalidations this Redis holds.
# Raised after every applied batch, but never created here: after Redis lost its keys the mark is
# missing until a relay notices, re-applies the recent invalidations, and sets it again
# (docs/adr/0009). KEYS: mark key. ARGV: LSN (16 hex digits); the highest mark the relay has seen,
# or ''. Returns 0, raising nothing, when the mark is missing or lower than that (a failover to a
# Redis replica that missed writes): the batch's own check that Redis forgot nothing.
RAISE_MARK = """
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
if ARGV[2] ~= '' and current < ARGV[2] then return 0 end
if ARGV[1] > current then redis.call('SET', KEYS[1], ARGV[1]) end
return 1
"""

# One relay's own mark: the highest position of its batches this Redis holds. Only that relay
# writes it, so no other relay's batch can raise it past a batch of its that a failover lost
# (docs/adr/0013). Created here: ``cache:mark`` is what shows a Redis that lost everything.
# KEYS: the relay's mark key. ARGV: LSN (16 hex digits); the highest position the relay raised
# it to, or ''. Returns 0, raising nothing, when it is missing or lower than that.
RAISE_RELAY_MARK = """
local current = redis.call('GET', KEYS[1])
if ARGV[2] ~= '' and ((not current) or current < ARGV[2]) then return 0 end
if (not current) or ARGV[1] > current then redis.call('SET', KEYS[1], ARGV[1]) end
return 1
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


# One script call of a pipeline: the script, its keys and its arguments (pre-encoded or not).
ScriptCall = tuple[AsyncScript, Sequence[bytes | str], Sequence[bytes | str | int]]


class CacheScripts:
    """The Lua primitives registered on one Redis client."""

    def __init__(self, redis: RedisClient) -> None:
        self.fence_and_delete_many: AsyncScript = redis.register_script(FENCE_AND_DELETE_MANY)
        self.bump_generation: AsyncScript = redis.register_script(BUMP_GENERATION)
        self.raise_mark: AsyncScript = redis.register_script(RAISE_MARK)
        self.raise_relay_mark: AsyncScript = redis.register_script(RAISE_RELAY_MARK)
        self.fill_if_newer_script: AsyncScript = redis.register_script(FILL_IF_NEWER)
        self.redis = redis
        # Under Redis Cluster a script call may only name keys of one slot (else CROSSSLOT).
        self.cluster = is_cluster(redis)
        # One hash tag per shard the marks live on ([""]: a single Redis, one mark).
        self.mark_tags: list[str] = [""]
        self._slot_map: object = None

    async def refresh_mark_tags(self) -> list[str]:
        """Learn which shards the cluster has now (a no-op for a single Redis); the tags."""
        if isinstance(self.redis, RedisCluster):
            await self.redis.initialize()
            # The client replaces its slot map when it reloads it: work the tags out once per map
            # (about 2 ms each time otherwise, on every drain).
            slots = self.redis.nodes_manager.slots_cache
            if slots is not self._slot_map:
                self.mark_tags = await shard_tags(self.redis)
                self._slot_map = slots
        return self.mark_tags

    async def run_pipelined(self, calls: Sequence[ScriptCall]) -> list[Any]:
        """Run script calls in one round trip, in order; their results.

        Plain EVALSHAs: a redis-py pipeline that runs scripts asks ``SCRIPT EXISTS`` first, a second
        round trip on every call. Under Redis Cluster each call's keys must share a slot; the
        cluster pipeline sends each master its calls, in order, in one round trip per master.
        A server that does not know a script (restarted, flushed, failed over) answers NOSCRIPT:
        load the scripts and run the calls again, which is safe because every script here is
        idempotent.
        """
        for attempt in range(2):
            async with self.redis.pipeline(transaction=False) as pipe:
                for script, keys, args in calls:
                    # Not pipe.evalsha: a cluster pipeline refuses it, but routes this by its keys.
                    pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
                try:
                    return await pipe.execute()
                except NoScriptError:
                    if attempt:
                        raise
            for script in {id(call[0]): call[0] for call in calls}.values():
                script.sha = await self.redis.script_load(script.script)
        raise AssertionError("unreachable")

    async def fill_if_newer(self, product_id: int, version: int, body: bytes, ttl_ms: int) -> bool:
        """Store the entry unless a newer version was fenced or is cached; True when stored."""
        stored = await self.fill_if_newer_script(
            keys=[product_key(product_id), fence_key(product_id)],
            args=[version, encode_entry(version, body), ttl_ms],
        )
        return bool(stored)
