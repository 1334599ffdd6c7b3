"""Smoke test of bench/broker_relay.py: its plumbing and the shape of its result.

Correctness only, never speed: one round of a hundred-odd messages through the
bare kombu relay, the bare relay batching its confirms and the hub's route on
real RabbitMQ; every relay moves every message (each round asserts it) and the
result carries the target for make bench's table. Written to a temporary folder.
"""

from __future__ import annotations

import json

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_a_tiny_run_gives_every_relay_a_rate_and_the_target_its_ratio(amqp_url, monkeypatch,
                                                                       tmp_path):
    import bench.common as common
    from bench import broker_relay

    monkeypatch.setattr(common, "RESULTS", tmp_path)
    monkeypatch.setenv("HUB_TEST_AMQP_URL", amqp_url)
    broker_relay.main(["-n", "120", "--rounds", "1", "--no-embedded"])
    out = json.loads((tmp_path / "broker_relay.json").read_text())
    rates = out["median_msgs_per_s"]
    assert all(rates[relay] > 0 for relay in ("kombu", "kombu_batched", "hub"))
    [relay] = out["targets"]
    assert (relay["name"], relay["goal"], relay["at_least"]) == ("relay / bare kombu", 0.8, True)
    assert relay["measured"] == pytest.approx(rates["hub"] / rates["kombu"], abs=0.01)
