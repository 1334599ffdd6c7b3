"""Smoke test of bench/province_dispatch.py: its plumbing and the shape of its results.

Correctness only, never speed: one tiny configuration (a few hundred messages,
one ``hub run`` worker, a one-second window) on real RabbitMQ and PostgreSQL
through config.province.yaml's dispatch route to the loopback county sink.
Every message reaches the sink, the rate and the CPU figures are there, and the
summary's ratio is taken against one worker. Results are not written.
"""

from __future__ import annotations

import pytest

from bench.common import Child, free_port, get_json, post_json
from bench.province_dispatch import ROOT, clearance, cpu_seconds, run, summarise


def _config(workers: int, rates: list[float], backlog: int = 10) -> list[dict]:
    return [{"workers": workers, "msgs_per_s": r, "messages": 100, "reached_sink": 100,
             "duplicates": 0, "backlog_at_end": backlog, "starved": backlog == 0,
             "machine_busy": 0.5, "cpu_cores": {"worker0": 0.4, "workers": 0.4, "sink": 0.1}}
            for r in rates]


def test_the_ratios_are_to_the_median_of_one_worker_in_the_same_run():
    out = summarise({1: _config(1, [100.0, 120.0, 80.0]), 2: _config(2, [150.0, 170.0, 160.0],
                                                                       backlog=0)})
    by = {c["workers"]: c for c in out["configs"]}
    assert by[1]["median_msgs_per_s"] == 100.0 and by[1]["ratio_to_1_worker"] == 1.0
    assert by[2]["ratio_to_1_worker"] == 1.6
    assert by[2]["starved"] and not by[1]["starved"]
    assert set(by[2]["cpu_cores"]) == {"workers", "sink"}  # per-worker trees summed


def test_the_messages_go_to_the_three_counties_in_turn():
    codes = [clearance(i)[0][:6] for i in range(6)]
    assert codes == ["320684", "320682", "320681"] * 2
    assert len({clearance(i)[0] for i in range(1000)}) == 1000


def test_the_sink_acknowledges_as_a_county_hub_and_counts_distinct_ids(tmp_path):
    import json
    import sys

    port = free_port()
    sink = Child("sink", [sys.executable, str(ROOT / "bench" / "county_sink.py"), str(port)],
                 port=port, logdir=tmp_path)
    try:
        for envelope_id in ("a", "b", "a"):
            status, ack = post_json(sink.url + "/api/v1/hub/envelopes", json.dumps(
                {"id": envelope_id, "tenant": "320684", "business_no": "3206842026000001"}
            ).encode())
            assert status == 202
            assert ack["id"] == envelope_id and ack["status"] == "accepted"
            assert ack["hub"] == "320684" and ack["received_at"]
        assert get_json(sink.url + "/count") == {"total": 3, "unique": 2}
        assert cpu_seconds({"sink": sink.proc.pid})["sink"] >= 0.0
    finally:
        sink.stop()


@pytest.mark.integration
@pytest.mark.slow
def test_a_tiny_run_on_rabbitmq_and_postgresql_loses_nothing(amqp_url, postgres_url,
                                                            monkeypatch):
    monkeypatch.setenv("HUB_TEST_AMQP_URL", amqp_url)
    monkeypatch.setenv("HUB_TEST_POSTGRES_URL", postgres_url)
    out = run([1], rounds=1, window=1.0, warmup=0.2, n_first=400, max_fill=1500, quick=True)
    [config] = out["configs"]
    assert config["workers"] == 1 and config["ratio_to_1_worker"] == 1.0
    assert config["all_reached_sink"], config["runs"]
    assert config["median_msgs_per_s"] > 0
    assert {"workers", "sink"} <= set(config["cpu_cores"])
    [one] = config["runs"]
    assert one["reached_sink"] >= one["messages"] > 0
    # The fill was sized from the warm-up so the window did not run dry.
    assert not one["starved"], one
    assert out["machine"]["cpus"] and out["route"] == "tax_cleared_down"
