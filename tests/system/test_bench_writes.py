"""``ops/bench writes`` as an operator runs it, short: its own durable Postgres and Redis come
and go, the flash sale is exact, and the figures are there in the JSON."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.ops.table import ROOT

pytestmark = [pytest.mark.system, pytest.mark.timeout(600)]


def test_the_write_benchmark_runs_on_servers_of_its_own_and_the_flash_sale_is_exact() -> None:
    before = subprocess.run(["pgrep", "-f", "catalog-bench-pg-"], capture_output=True, text=True, check=False).stdout
    ran = subprocess.run(
        [str(ROOT / "ops" / "bench"), "writes", "--runs", "1", "--write-seconds", "1", "--shoppers", "120",
         "--stock", "30", "--json"],
        capture_output=True, text=True, timeout=500, check=False, cwd=ROOT,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr[-3000:]
    figures = json.loads(ran.stdout)["sections"]["writes"]["figures"]
    assert set(figures["updates"]) == {"ceiling", "notify_in_txn", "service"}
    assert set(figures["updates"]["service"]) == {"1", "8", "32", "64"}
    assert all(point["tps"] > 0 for mode in figures["updates"].values() for point in mode.values())
    flash = figures["flash_sale"]
    assert flash["exact"] is True
    assert flash["oversell"] == 0
    assert all(r["orders"] == 30 and r["sold_out"] == 90 for r in flash["runs"] + flash["runs_one_per_checkout"])
    assert figures["invalidation"]["n"] > 0
    after = subprocess.run(["pgrep", "-f", "catalog-bench-pg-"], capture_output=True, text=True, check=False).stdout
    assert after == before, "the benchmark's Postgres is stopped at the end"
