"""The product ids the load mix asks for: the products that exist, by Zipf popularity.

A load run that asks for ids that were never there, or were archived before it started, makes
404s no user could cause. So ``ops/load`` writes the live ids to a file when it starts and rewrites
it every few seconds while locust runs (:func:`keep_written`); each locust process reads it again
when it changes (:class:`ProductUniverse`). Popularity stays put across refreshes: an id keeps its
rank (by a fixed shuffle of the ids), so a refresh that drops one archived product leaves the hot
set hot. Archived during the run, between two refreshes, is what a shopper can meet too.

No locust import here: unit tests use this module as it is.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import random
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import asyncpg

REFRESH_S = 5.0
LIVE_IDS = "SELECT id FROM products WHERE NOT archived ORDER BY id"


def zipf_sampler(ids: Sequence[int], s: float, seed: int = 7) -> Callable[[], int]:
    """Ids by Zipf popularity: rank k has weight 1/k^s; ranks map to a fixed shuffle of ``ids``."""
    if not ids:
        raise ValueError("no products to draw from")
    cumulative = list(itertools.accumulate(1.0 / (k**s) for k in range(1, len(ids) + 1)))
    total = cumulative[-1]
    ranked = sorted(ids, key=lambda i: random.Random(seed * 1_000_003 + i).random())

    def sample() -> int:
        return ranked[bisect.bisect_left(cumulative, random.random() * total)]

    return sample


class ProductUniverse:
    """The live products of ``path`` (one id a line), re-read at most every ``check_s`` when the file
    changed; without a file, ``1..fallback`` (a plain ``locust -f`` against a fresh seed)."""

    def __init__(self, path: Path | None, *, fallback: int, s: float = 1.1, check_s: float = 1.0) -> None:
        self.path = path
        self.s = s
        self.check_s = check_s
        self._stamp: int | None = None
        self._checked = 0.0
        self.ids: list[int] = []
        if not self.refresh():
            self.ids = list(range(1, fallback + 1))
            self._sample = zipf_sampler(self.ids, s)

    def refresh(self) -> bool:
        """Read the file again if it changed; True when the ids did."""
        self._checked = time.monotonic()
        if self.path is None:
            return False
        try:
            stamp = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return False
        if stamp == self._stamp:
            return False
        ids = read_ids(self.path)
        self._stamp = stamp
        if not ids or ids == self.ids:
            return False
        self.ids = ids
        self._sample = zipf_sampler(ids, self.s)
        return True

    def __call__(self) -> int:
        if time.monotonic() - self._checked >= self.check_s:
            self.refresh()
        return self._sample()


def read_ids(path: Path) -> list[int]:
    return [int(line) for line in path.read_text(encoding="ascii").split()]


async def live_ids(dsn: str) -> list[int]:
    conn = await asyncpg.connect(dsn, timeout=3)
    try:
        return [int(row["id"]) for row in await conn.fetch(LIVE_IDS)]
    finally:
        await conn.close()


def write_ids(path: Path, ids: Sequence[int]) -> None:
    """Replace the file at once (rename): a reader sees the old list or the new one, never half."""
    partial = path.with_suffix(".partial")
    partial.write_text("".join(f"{i}\n" for i in ids), encoding="ascii")
    partial.replace(path)


def keep_written(dsn: str, path: Path, stop: threading.Event, every_s: float = REFRESH_S) -> threading.Thread:
    """Rewrite ``path`` with the live ids every ``every_s`` until ``stop`` (a daemon thread; a failed
    read keeps the last list)."""

    def run() -> None:
        while not stop.wait(every_s):
            try:
                write_ids(path, asyncio.run(live_ids(dsn)))
            except (OSError, asyncpg.PostgresError, TimeoutError):
                continue

    thread = threading.Thread(target=run, name="load-universe", daemon=True)
    thread.start()
    return thread
