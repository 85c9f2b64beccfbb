from __future__ import annotations

import asyncio

import pytest

from app.core.singleflight import SingleFlight


async def test_one_call_for_concurrent_callers() -> None:
    flights: SingleFlight[int] = SingleFlight()
    calls = 0
    release = asyncio.Event()

    async def work() -> int:
        nonlocal calls
        calls += 1
        await release.wait()
        return 42

    tasks = [asyncio.create_task(flights.do("k", work)) for _ in range(50)]
    await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(*tasks)
    assert calls == 1
    assert [r for r, _ in results] == [42] * 50
    assert sum(shared for _, shared in results) == 49
    assert len(flights) == 0


async def test_a_cancelled_first_caller_does_not_cancel_the_others() -> None:
    flights: SingleFlight[str] = SingleFlight()
    release = asyncio.Event()

    async def work() -> str:
        await release.wait()
        return "done"

    first = asyncio.create_task(flights.do("k", work))
    await asyncio.sleep(0)
    second = asyncio.create_task(flights.do("k", work))
    await asyncio.sleep(0)
    first.cancel()
    release.set()
    assert await second == ("done", True)
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_errors_reach_every_waiter() -> None:
    flights: SingleFlight[int] = SingleFlight()

    async def work() -> int:
        await asyncio.sleep(0)
        raise RuntimeError("boom")

    results = await asyncio.gather(*(flights.do("k", work) for _ in range(3)), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
