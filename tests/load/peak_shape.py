"""A peak for ``ops/load --peak``: ramp up, hold, spike to three times the load, recover, stop."""

from __future__ import annotations

from locust import LoadTestShape


class PeakShape(LoadTestShape):
    # (ends at second, users, spawn rate)
    stages = (
        (15, 20, 4),  # ramp up
        (45, 20, 4),  # hold
        (60, 60, 20),  # spike
        (75, 20, 20),  # recover
        (90, 20, 4),  # hold again
    )

    def tick(self) -> tuple[int, float] | None:
        run_time = self.get_run_time()
        for ends_at, users, rate in self.stages:
            if run_time < ends_at:
                return users, rate
        return None
