"""The invalidation probe of ``ops/bench writes``, in a process of its own (another instance, as
it were), so the writers' event loop does not delay its clock: a write through the project's
write code and doorbell, then COMMIT -> ``product:<id>`` gone, one probe product at a time.

  python -m devtools.bench.probe DSN REDIS_URL SECONDS FIRST_ID COUNT
      prints "ready" once connected, starts at a line on stdin, then prints JSON milliseconds
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time

import uvloop
from redis.asyncio import Redis

from app.contracts.cache_keys import product_key
from app.contracts.events import OUTBOX_CHANNEL
from app.core.db import create_write_pool
from app.core.doorbell import Doorbell
from app.core.settings import DatabaseSettings, RelaySettings
from app.writes.service import ProductWrites

GAP_S = 0.01  # between probes: a trickle beside the load, not load of its own
# Looking for the key this often: a finer loop would spin a core the 2-core machine does not
# have to spare, and slow the very writers it watches (timings are to the millisecond).
POLL_S = 0.001
GIVE_UP_S = 5.0


async def probe(dsn: str, redis_url: str, seconds: float, first: int, count: int) -> list[float]:
    pool = await create_write_pool(DatabaseSettings(primary_dsn=dsn, pool_max_size=2))
    redis = Redis.from_url(redis_url)
    stop = asyncio.Event()
    doorbell = Doorbell(dsn, OUTBOX_CHANNEL, interval_s=RelaySettings().doorbell_interval_ms / 1000)
    ringer = asyncio.create_task(doorbell.run(stop))
    writes = ProductWrites(pool, doorbell)
    found: list[float] = []
    await pool.fetchval("SELECT 1")  # connected, and every module imported, before the clock runs
    await redis.ping()
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # "go"
    deadline = time.perf_counter() + seconds
    try:
        i = 0
        while time.perf_counter() < deadline:
            pid = first + i % count
            i += 1
            await redis.set(product_key(pid), b"1|stale")
            await writes.update(pid, {"price_cents": random.randint(100, 99_999)}, None)
            committed = time.perf_counter()
            while isinstance(raw := await redis.get(product_key(pid)), bytes) and raw.startswith(b"1|"):
                if time.perf_counter() - committed > GIVE_UP_S:
                    raise RuntimeError(f"product:{pid} still cached {GIVE_UP_S:.0f} s after its write committed")
                await asyncio.sleep(POLL_S)
            found.append((time.perf_counter() - committed) * 1000)
            await asyncio.sleep(GAP_S)
    finally:
        stop.set()
        await ringer
        await pool.close()
        await redis.aclose()
    return found


def main(argv: list[str]) -> int:
    dsn, redis_url, seconds, first, count = argv
    print(json.dumps(uvloop.run(probe(dsn, redis_url, float(seconds), int(first), int(count)))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
