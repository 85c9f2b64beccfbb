from __future__ import annotations

import time

from app.contracts.events import encode_announcements
from app.fastpath.near_cache import NearCache


def _listening(near: NearCache) -> NearCache:
    """A near cache whose instance's invalidation feed is connected, as the relay makes it."""
    near.resume()
    return near


def test_hit_and_ttl() -> None:
    near = _listening(NearCache(ttl_s=0.05, max_entries=10, max_bytes=10_000))
    assert near.put(1, 3, b"{}")
    entry = near.get(1)
    assert entry is not None
    assert entry.version == 3
    time.sleep(0.06)
    assert near.get(1) is None


def test_invalidate_fences_out_older_puts() -> None:
    near = _listening(NearCache(ttl_s=10, max_entries=10, max_bytes=10_000))
    near.put(1, 3, b"v3")
    near.invalidate(1, 4)
    assert near.get(1) is None
    # A reader that fetched v3 before the announcement cannot put it back after it.
    assert not near.put(1, 3, b"v3")
    assert near.put(1, 4, b"v4")
    assert not near.put(1, 3, b"v3"), "never replace a newer entry"
    near.invalidate(1, 2)  # an old, late announcement changes nothing
    assert near.get(1) is not None


def test_bounded_in_entries_and_bytes() -> None:
    near = _listening(NearCache(ttl_s=10, max_entries=3, max_bytes=1_000))
    for pid in range(1, 6):
        near.put(pid, 1, b"x" * 10)
    assert len(near) == 3
    assert near.get(1) is None
    assert near.get(5) is not None
    near = _listening(NearCache(ttl_s=10, max_entries=100, max_bytes=1_600))
    for pid in range(1, 20):
        near.put(pid, 1, b"x" * 100)
    assert len(near) == 16
    assert not near.put(99, 1, b"x" * 1_000), "one entry may not take more than 1/16 of the budget"


def test_clear_forgets_everything() -> None:
    near = _listening(NearCache(ttl_s=10, max_entries=10, max_bytes=10_000))
    near.put(1, 1, b"{}")
    near.clear()
    assert near.get(1) is None


def test_announcements_stay_under_the_notify_limit() -> None:
    versions = {pid: 10**9 + pid for pid in range(1, 5_000)}
    payloads = encode_announcements(versions)
    assert len(payloads) > 1
    assert all(len(p) < 8000 for p in payloads)
    parsed = {int(a): int(b) for p in payloads for a, b in (item.split(":") for item in p.split(","))}
    assert parsed == versions


def test_a_fill_fetched_before_a_clear_is_refused() -> None:
    near = _listening(NearCache(ttl_s=10, max_entries=10, max_bytes=10_000))
    epoch = near.epoch  # a reader starts: fetches v1 from Redis...
    near.clear()  # ...meanwhile the listener reconnects (announcements may have been lost)
    assert not near.put(1, 1, b"v1", epoch)
    assert near.put(1, 1, b"v1", near.epoch)


def test_it_serves_only_while_its_invalidation_feed_listens() -> None:
    near = NearCache(ttl_s=10, max_entries=10, max_bytes=10_000)
    assert not near.put(1, 3, b"v3"), "before the relay listens, nothing may be kept"
    near.resume()
    assert near.put(1, 3, b"v3")
    near.suspend()  # the relay connection dropped: announcements may now be missed
    assert near.get(1) is None
    assert not near.put(1, 4, b"v4")
    near.resume()  # back, empty
    assert near.get(1) is None
    assert near.put(1, 4, b"v4")
