"""Coalesce concurrent identical work in one process: the first caller runs it, the rest await it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """At most one in-flight call per key; bounded by the number of keys in flight, nothing is kept after."""

    def __init__(self) -> None:
        self._inflight: dict[Hashable, asyncio.Task[T]] = {}

    async def do(self, key: Hashable, work: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """``(result, shared)``: shared is True when this caller waited on someone else's call.

        The work runs as its own task: a caller that is cancelled (a client gone, a shutdown)
        stops waiting, but the others still get the result.
        """
        existing = self._inflight.get(key)
        if existing is not None:
            return await asyncio.shield(existing), True

        async def run() -> T:
            return await work()

        task = asyncio.ensure_future(run())
        self._inflight[key] = task
        task.add_done_callback(lambda _: self._inflight.pop(key, None))
        return await asyncio.shield(task), False

    def __len__(self) -> int:
        return len(self._inflight)
