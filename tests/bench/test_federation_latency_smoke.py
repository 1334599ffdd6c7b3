"""Smoke test of bench/federation_latency.py: its plumbing and the shape of its results.

Correctness only, never speed: a few clearances at a low rate through the
province demo's four ``hub run`` processes (embedded broker and store) to the
sandbox's registration system; each one is found there and timed. Results are
not written.
"""

from __future__ import annotations

import pytest

from bench.federation_latency import business_no, measure, percentile


def test_percentiles_are_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([3.0], 99) == 3.0
    assert percentile([], 50) != percentile([], 50)  # nan


def test_the_clearances_go_to_the_three_counties_in_turn():
    assert [business_no(i)[:6] for i in range(4)] == ["320684", "320682", "320681", "320684"]
    assert all(len(business_no(i)) == 16 for i in (0, 999))


@pytest.mark.slow
def test_a_tiny_load_reaches_the_registration_system_and_is_timed():
    out = measure(rate=4.0, duration=1.0, settle=60.0)
    assert out["sent"] == 4
    assert out["reached_registration_system"] == 4 and out["refused_at_intake"] == 0
    lat = out["latency_ms"]
    assert 0 < lat["p50"] <= lat["p99"] <= lat["max"]
    assert out["intake_ms"]["p50"] > 0
