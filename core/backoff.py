"""How long to wait before trying again: one formula for the whole hub.

Connectors (retries of a call), routes (retries of a step) and the broker
(reconnecting, re-publishing) all back off the same way: the first delay,
doubled after every failure, capped, plus up to ``jitter`` seconds at random so
that many callers failing together do not come back together. A wait the far
side asked for (``Retry-After``) is honoured, even above the cap: it knows
better than the formula when it will take calls again.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """``first`` seconds before the first retry, doubling up to ``cap``, plus jitter."""

    first: float = 0.5
    cap: float = 10.0
    jitter: float = 0.0

    def delay(self, failures: int, *, retry_after: float | None = None,
              rng: random.Random | None = None) -> float:
        """Seconds to wait after ``failures`` consecutive failures (1 = the first)."""
        wait = min(self.cap, self.first * (2 ** max(0, failures - 1)))
        if self.jitter:
            wait += (rng or random).uniform(0, self.jitter)
        if retry_after:
            wait = max(wait, float(retry_after))
        return wait
