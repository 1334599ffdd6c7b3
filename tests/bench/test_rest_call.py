"""bench/rest_call.py: each profile sample is charged to the part of the call that
did the work, and a tiny run measures both contenders and writes both targets."""

from __future__ import annotations

import json

import pytest

from bench import rest_call

CALL = ("ResilientConnector._attempt (main/connectors/resilience.py:489);"
        "RestConnector._send (main/connectors/rest.py:275)")


def test_a_sample_goes_to_the_innermost_part_of_the_call_it_reached():
    part = rest_call.part_of
    assert part(CALL + ";dumps (json/__init__.py:238)") == "JSON encode/decode"
    assert part(CALL + ";AppKeyAuth.apply (main/connectors/auth.py:410);"
                "new (hmac.py:184)") == "signing/auth"
    assert part(CALL + ";RequestShape.prepare (main/connectors/http.py:251);"
                "CaseInsensitiveDict.copy (requests/structures.py:90)") == "request/answer objects"
    assert part(CALL + ";send (main/connectors/loophttp.py:51);"
                "ClientSession._request (aiohttp/client.py:900)") == "aiohttp send/receive"
    assert part("ResilientConnector._call (main/connectors/resilience.py:409);"
                "MutexValue.inc (prometheus_client/values.py:28)") == "breaker/retry/metrics"
    assert part("") == rest_call.LOOP_C  # the loop's C code holding the interpreter
    assert part("Contenders.hub (main/bench/rest_call.py:138)") == rest_call.OTHER


def test_the_budget_counts_every_sample_once():
    shares = rest_call.budget("a (main/connectors/auth.py:1) 3\n 1\n")
    assert shares["signing/auth"] == 0.75 and shares[rest_call.LOOP_C] == 0.25
    assert abs(sum(shares.values()) - 1) < 1e-9


@pytest.mark.slow
def test_a_tiny_run_measures_both_calls_and_writes_the_targets(tmp_path, monkeypatch):
    monkeypatch.setattr(rest_call, "write_results",
                        lambda name, data: (tmp_path / f"{name}.json").write_text(
                            json.dumps(data)) and tmp_path / f"{name}.json")
    assert rest_call.main(["--rounds", "1", "--calls", "40", "--auth", "appkey"]) == 0
    result = json.loads((tmp_path / "rest_call.json").read_text())
    assert len(result["hub_us"]) == len(result["bare_us"]) == 1
    assert [t["name"] for t in result["targets"]] == [
        "REST call CPU µs (loop path)", "hub REST call / bare aiohttp call, CPU per call"]
    assert all(t["measured"] > 0 for t in result["targets"])
