"""The near cache: product entries in this process, in front of Redis.

A Redis GET through redis-py costs more than the rest of a cached request; an in-process hit
costs a dict lookup. The near cache is kept honest the same way Redis is:

- every relay publishes the (product, version) pairs it invalidated on ``catalog_invalidation``
  (NOTIFY at the commit of its batch); each instance's relay connection LISTENs and calls
  :meth:`NearCache.invalidate`, which raises a local fence and drops older entries;
- :meth:`put` refuses entries older than the local fence or the entry already held, so a
  reader that fetched v1 before the notification cannot put v1 back after it;
- it serves only while this instance's relay connection is listening: when that connection is
  lost it is cleared and stops serving (announcements sent meanwhile are lost), and starts
  again, empty, once the connection is back (:meth:`suspend`, :meth:`resume`);
- entries live ``ttl_s`` at most: the bound if a notification is ever missed;
- entries and fences are bounded in count and bytes (LRU eviction).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

from app.core.metrics import NEAR_CACHE_BYTES, NEAR_CACHE_ENTRIES


@dataclass(frozen=True, slots=True)
class NearEntry:
    version: int
    body: bytes
    expires_at: float


class NearCache:
    def __init__(self, ttl_s: float, max_entries: int, max_bytes: int, fence_ttl_s: float = 300.0) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.fence_ttl_s = fence_ttl_s
        self._entries: OrderedDict[int, NearEntry] = OrderedDict()
        self._fences: OrderedDict[int, tuple[int, float]] = OrderedDict()
        self._bytes = 0
        # Bumped by clear(): a reader that fetched before a clear must not put what it fetched.
        self.epoch = 0
        # Off until the invalidation feed is known to be listening (resume()).
        self.serving = False

    def get(self, product_id: int) -> NearEntry | None:
        if not self.serving:
            return None
        entry = self._entries.get(product_id)
        if entry is None:
            return None
        if entry.expires_at <= time.monotonic():
            self._drop(product_id)
            return None
        self._entries.move_to_end(product_id)
        return entry

    def put(self, product_id: int, version: int, body: bytes, epoch: int | None = None) -> bool:
        """Hold an entry unless a newer version was announced or is held; True when stored.

        ``epoch`` is :attr:`epoch` as it was before the caller read the entry: after a clear (an
        invalidation feed gap) an entry fetched earlier may predate a lost announcement.
        """
        if not self.serving or (epoch is not None and epoch != self.epoch):
            return False
        now = time.monotonic()
        fence = self._fences.get(product_id)
        if fence is not None and fence[1] > now and version < fence[0]:
            return False
        current = self._entries.get(product_id)
        if current is not None and current.version > version and current.expires_at > now:
            return False
        if len(body) > self.max_bytes // 16:
            return False  # one huge entry must not evict everything else
        if current is not None:
            self._drop(product_id)
        self._entries[product_id] = NearEntry(version, body, now + self.ttl_s)
        self._bytes += len(body)
        while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
            oldest = next(iter(self._entries))
            self._drop(oldest)
        self._gauges()
        return True

    def invalidate(self, product_id: int, version: int) -> None:
        """The relay saw ``version`` committed: fence it and drop anything older."""
        now = time.monotonic()
        fence = self._fences.pop(product_id, None)
        highest = max(version, fence[0]) if fence is not None and fence[1] > now else version
        self._fences[product_id] = (highest, now + self.fence_ttl_s)
        while len(self._fences) > self.max_entries * 4:
            self._fences.popitem(last=False)
        entry = self._entries.get(product_id)
        if entry is not None and entry.version < highest:
            self._drop(product_id)
            self._gauges()

    def invalidate_many(self, pairs: list[tuple[int, int]]) -> None:
        for product_id, version in pairs:
            self.invalidate(product_id, version)

    def suspend(self) -> None:
        """The invalidation feed is gone: serve nothing, keep nothing, until :meth:`resume`."""
        self.serving = False
        self.clear()

    def resume(self) -> None:
        """The feed is listening again: start over, empty (what was announced meanwhile is lost)."""
        self.clear()
        self.serving = True

    def clear(self) -> None:
        """Forget everything (the invalidation feed had a gap)."""
        self._entries.clear()
        self._bytes = 0
        self.epoch += 1
        self._gauges()

    def _drop(self, product_id: int) -> None:
        entry = self._entries.pop(product_id, None)
        if entry is not None:
            self._bytes -= len(entry.body)

    def _gauges(self) -> None:
        NEAR_CACHE_ENTRIES.set(len(self._entries))
        NEAR_CACHE_BYTES.set(self._bytes)

    def __len__(self) -> int:
        return len(self._entries)
