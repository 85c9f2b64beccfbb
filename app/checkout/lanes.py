"""Lanes: checkouts of the same products queue in one lane, and a batch serves the whole queue.

A flash sale is many checkouts of one row. Each checkout in its own transaction holds that row's
lock through its COMMIT, and on a durable database the COMMIT waits for its WAL flush: shoppers
queue behind each other's fsyncs, one at a time (a lock convoy). A lane turns the queue into
batches instead: while one batch's transaction runs, later checkouts of the same products wait
in the lane, and the next batch takes all of them (up to ``max_batch``) into one transaction:
one lock, one COMMIT, one flush for the lot (docs/adr/0017).

Pure asyncio: what a batch does is the caller's (``Checkout._run_batch``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass(slots=True)
class Waiting(Generic[Item, Result]):
    item: Item
    future: asyncio.Future[Result]


@dataclass(slots=True)
class _Lane(Generic[Item, Result]):
    queue: list[Waiting[Item, Result]] = field(default_factory=list)
    runner: asyncio.Task[None] | None = None


class Lanes(Generic[Item, Result]):
    """Per key, one batch at a time; whatever queued meanwhile is the next batch."""

    def __init__(
        self,
        run_batch: Callable[[list[Waiting[Item, Result]]], Awaitable[None]],
        max_batch: int,
        *,
        max_queued: int,
        wait_s: float,
        busy: Callable[[], Exception],
    ) -> None:
        # ``run_batch`` must settle every future of its batch (a result or an exception).
        self.run_batch = run_batch
        self.max_batch = max_batch
        # A deadline for the queue as for a pool (rule 14): at most ``max_queued`` wait in a lane,
        # for at most ``wait_s`` before their batch starts; else ``busy()`` (a 503), nothing written.
        self.max_queued = max_queued
        self.wait_s = wait_s
        self.busy = busy
        self._lanes: dict[Hashable, _Lane[Item, Result]] = {}
        self.batches = 0
        self.largest_batch = 0

    async def submit(self, key: Hashable, item: Item) -> Result:
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane()
        if len(lane.queue) >= self.max_queued:
            raise self.busy()
        waiting: Waiting[Item, Result] = Waiting(item, asyncio.get_running_loop().create_future())
        lane.queue.append(waiting)
        if lane.runner is None:
            lane.runner = asyncio.create_task(self._drain(key, lane), name="checkout-lane")
        # shield: a caller that goes away (client disconnect) does not cancel the batch it is in;
        # its checkout is decided and committed with the others, only the answer goes unread.
        try:
            return await asyncio.wait_for(asyncio.shield(waiting.future), timeout=self.wait_s)
        except TimeoutError:
            if waiting in lane.queue:  # its batch has not started: leave, nothing was written
                lane.queue.remove(waiting)
                raise self.busy() from None
        return await asyncio.shield(waiting.future)  # in a running batch: its own deadlines bound it

    async def _drain(self, key: Hashable, lane: _Lane[Item, Result]) -> None:
        try:
            while lane.queue:
                batch, lane.queue = lane.queue[: self.max_batch], lane.queue[self.max_batch :]
                self.batches += 1
                self.largest_batch = max(self.largest_batch, len(batch))
                try:
                    await self.run_batch(batch)
                except BaseException as exc:
                    _fail(batch, exc)
                    if not isinstance(exc, Exception):
                        _fail(lane.queue, exc)
                        raise
                _fail(batch, RuntimeError("the batch left a checkout undecided"))  # a bug, never a hang
        finally:
            lane.runner = None
            if not lane.queue and self._lanes.get(key) is lane:
                del self._lanes[key]


def _fail(batch: list[Waiting[Item, Result]], exc: BaseException) -> None:
    for waiting in batch:
        if not waiting.future.done():
            if isinstance(exc, asyncio.CancelledError):
                waiting.future.cancel()
            else:
                waiting.future.set_exception(exc)
        with contextlib.suppress(asyncio.CancelledError, Exception):
            # Nobody may be left to read it (the caller went away): mark it retrieved.
            waiting.future.exception()
