"""Smoke test of bench/fault_isolation.py: its plumbing and its count of what was lost.

Correctness only, never speed: one tiny round (a few dozen messages) of the
baseline and the timeout scenario against the sandbox in its own process, on
the embedded SQLite broker. Every healthy message completes and reaches its
endpoint, every faulty message completes (baseline) or is parked (timeout),
nothing is dead-lettered or left in a queue; the report and the verdict are
built from it. Results are not written.
"""

from __future__ import annotations

import pytest

from bench.fault_isolation import FAULTY, HEALTHY, expectations, interleaved, report, run

pytestmark = pytest.mark.slow


def test_interleaving_spreads_the_faulty_messages_evenly():
    kinds = interleaved(20, 4)
    assert kinds.count(HEALTHY) == 20 and kinds.count(FAULTY) == 4
    positions = [i for i, k in enumerate(kinds) if k == FAULTY]
    assert all(b - a >= 5 for a, b in zip(positions, positions[1:], strict=False))
    assert interleaved(3, 0) == [HEALTHY] * 3
    assert interleaved(0, 2) == [FAULTY] * 2


def test_expectations_say_where_every_message_ends():
    base = expectations("baseline", 10, 2)
    assert base["faulty.processed.completed"] == 2 and base["faulty.parked_rows"] == 0
    fault = expectations("timeout", 10, 2)
    assert fault["faulty.processed.parked"] == 2 and fault["faulty.processed.completed"] == 0
    assert fault["window_province.received"] == 2
    assert "window_province.received" not in expectations("breaker", 10, 2)


def test_a_tiny_round_loses_nothing():
    out = run(n=24, m=4, rounds=1, broker="sqlite", fault_timeout=0.2,
              scenarios=("baseline", "timeout"), warmup=False, drain_timeout=60,
              log=lambda *a, **k: None)
    phases = {p["scenario"]: p for p in out["phases"]}
    assert set(phases) == {"baseline", "timeout"}
    for name, p in phases.items():
        assert p["drained"], name
        assert p["mismatches"] == {}, (name, p["counts"])
        assert p["nothing_lost"], name
        assert p["healthy_msgs_per_s"] > 0
    assert phases["timeout"]["counts"]["faulty.processed.parked"] == 4
    assert phases["timeout"]["counts"]["faulty.parked_rows"] == 4
    assert phases["timeout"]["counts"]["window_province.received"] == 4
    assert phases["baseline"]["counts"]["faulty.processed.completed"] == 4
    assert out["nothing_lost"]
    assert set(out["ratio_over_baseline"]) == {"timeout"}
    assert "nothing lost: yes" in report(out)
