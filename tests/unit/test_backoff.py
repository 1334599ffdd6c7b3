"""One backoff formula for connectors, routes and the broker."""

from __future__ import annotations

import random

from bdchub.core.backoff import Backoff


def test_delays_double_from_the_first_up_to_the_cap():
    backoff = Backoff(first=0.5, cap=3.0)
    assert [backoff.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_jitter_adds_at_most_its_own_size():
    backoff = Backoff(first=1.0, cap=10.0, jitter=0.5)
    delays = [backoff.delay(2, rng=random.Random(seed)) for seed in range(50)]
    assert all(2.0 <= d <= 2.5 for d in delays) and len(set(delays)) > 1


def test_a_wait_the_far_side_asked_for_is_honoured_even_above_the_cap():
    assert Backoff(first=0.5, cap=2.0).delay(1, retry_after=30) == 30
    assert Backoff(first=0.5, cap=2.0).delay(3, retry_after=0.1) == 2.0
