"""A circuit breaker for an optional dependency (Redis): after a failure, skip it for a while.

Closed: calls go through. One failure opens it for ``cooldown_s``: calls are skipped (the caller
reads around the cache). After the cooldown one caller is let through as a probe (half-open);
success closes the breaker, failure opens it again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from app.core.metrics import BREAKER_OPEN


@dataclass(slots=True)
class CircuitBreaker:
    name: str
    cooldown_s: float = 1.0
    failures_to_open: int = 1
    _failures: int = 0
    _open_until: float = 0.0
    _probing: bool = False
    opened_total: int = field(default=0)

    def allow(self) -> bool:
        """May the caller use the dependency now?"""
        if self._open_until == 0.0:
            return True
        if time.monotonic() < self._open_until or self._probing:
            return False
        self._probing = True  # half-open: exactly one caller probes
        return True

    def success(self) -> None:
        if self._open_until or self._failures:
            self._failures = 0
            self._open_until = 0.0
            self._probing = False
            BREAKER_OPEN.labels(self.name).set(0)

    def release_probe(self) -> None:
        """The probe ended without a verdict (cancelled, or failed for another reason): let another try."""
        self._probing = False

    def failure(self) -> None:
        self._failures += 1
        self._probing = False
        if self._failures >= self.failures_to_open:
            self._open_until = time.monotonic() + self.cooldown_s
            self.opened_total += 1
            BREAKER_OPEN.labels(self.name).set(1)

    @property
    def is_open(self) -> bool:
        return self._open_until != 0.0
