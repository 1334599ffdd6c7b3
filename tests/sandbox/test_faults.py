"""Fault injection: each knob takes effect on the next request and clears."""

from __future__ import annotations

import json
import time

import pytest
import requests
import zeep
from zeep.exceptions import Fault

from .helpers import appkey_request, soap_client


def _progress(sb, n=0, timeout=5.0):
    return appkey_request(sb, "window_county", "POST", "/progress", {"business_no": f"B{n}"},
                          timeout=timeout)


def test_error_rate_one_answers_error_status_with_retry_after_then_clears(clean_sandbox):
    sb = clean_sandbox
    sb.faults("window_county").set(error_rate=1.0, error_status=429, retry_after=7)
    reply = _progress(sb)
    assert reply.status_code == 429
    assert reply.headers["Retry-After"] == "7"
    assert reply.json()["code"] == "INJECTED_FAULT"
    sb.faults("window_county").clear()
    assert _progress(sb, 1).status_code == 200


def test_error_rate_sequence_is_seeded_and_repeats_after_set(clean_sandbox):
    sb = clean_sandbox
    runs = []
    for _ in range(2):
        sb.faults("window_county").set(error_rate=0.5)
        runs.append([_progress(sb, i).status_code for i in range(12)])
    assert runs[0] == runs[1]
    assert set(runs[0]) == {200, 503}


def test_received_log_marks_injected_faults(clean_sandbox):
    sb = clean_sandbox
    sb.faults("window_county").set(error_rate=1.0)
    _progress(sb, 1)
    sb.faults("window_county").clear()
    _progress(sb, 2)
    log = sb.received("window_county")
    assert [(e["body"]["business_no"], e["fault"], e["status"]) for e in log] == \
        [("B1", "error", 503), ("B2", None, 200)]


def test_latency_delays_the_answer(clean_sandbox):
    sb = clean_sandbox
    sb.faults("window_county").set(latency=0.3)
    start = time.monotonic()
    assert _progress(sb).status_code == 200
    assert time.monotonic() - start >= 0.3


def test_timeout_holds_the_request_until_the_client_gives_up(clean_sandbox):
    sb = clean_sandbox
    sb.faults("window_county").set(timeout=True)
    with pytest.raises(requests.Timeout):
        _progress(sb, timeout=0.3)
    assert sb.received("window_county")[-1]["fault"] == "timeout"
    sb.faults("window_county").clear()
    assert _progress(sb, 2).status_code == 200


def test_timeout_with_seconds_closes_without_answer_after_that_long(clean_sandbox):
    sb = clean_sandbox
    sb.faults("police").set(timeout=0.2)
    with pytest.raises(requests.ConnectionError):
        requests.get(sb.url("police") + "/api/police/household?cert_num=x", timeout=5)


def test_outage_answers_503_with_retry_after_and_ends_by_itself(clean_sandbox):
    sb = clean_sandbox
    sb.faults("market").set(outage_for=0.4)
    reply = requests.get(sb.url("market") + "/api/market/license?uscc=x", timeout=5)
    assert reply.status_code == 503
    assert int(reply.headers["Retry-After"]) >= 1
    assert requests.get(sb.url("market") + "/_sandbox/health", timeout=5).status_code == 503
    # control paths still work during an outage
    assert requests.get(sb.url("market") + "/_sandbox/faults", timeout=5).status_code == 200
    time.sleep(0.45)
    assert requests.get(sb.url("market") + "/_sandbox/health", timeout=5).status_code == 200


def test_outage_in_reset_mode_drops_the_connection(clean_sandbox):
    sb = clean_sandbox
    sb.faults("market").set(outage_for=5, outage_mode="reset")
    with pytest.raises(requests.ConnectionError):
        requests.get(sb.url("market") + "/api/market/license?uscc=x", timeout=5)


def test_malformed_json_is_truncated_and_unparseable(clean_sandbox):
    sb = clean_sandbox
    sb.faults("window_county").set(malformed=True)
    reply = _progress(sb)
    assert reply.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(reply.text)


def test_malformed_short_read_breaks_the_http_framing(clean_sandbox):
    sb = clean_sandbox
    sb.faults("window_county").set(malformed="short_read")
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        _progress(sb)


def test_faults_can_be_driven_over_http(clean_sandbox):
    sb = clean_sandbox
    base = sb.url("window_province")
    reply = requests.post(base + "/_sandbox/faults", json={"error_rate": 1, "error_status": 502},
                          timeout=5)
    assert reply.status_code == 200 and reply.json()["error_status"] == 502
    assert appkey_request(sb, "window_province", "POST", "/notices", {"a": 1}).status_code == 502
    assert requests.delete(base + "/_sandbox/faults", timeout=5).json()["error_rate"] == 0
    assert appkey_request(sb, "window_province", "POST", "/notices", {"a": 2}).status_code == 200
    log = requests.get(base + "/_sandbox/received", timeout=5).json()
    assert [e["body"] for e in log] == [{"a": 1}, {"a": 2}]
    requests.delete(base + "/_sandbox/received", timeout=5)
    assert sb.received("window_province") == []


def test_bad_fault_settings_are_refused(clean_sandbox):
    sb = clean_sandbox
    with pytest.raises(ValueError):
        sb.faults("gov").set(error_rate=2)
    with pytest.raises(ValueError):
        sb.faults("gov").set(bogus=1)
    with pytest.raises(ValueError):
        sb.faults("gov").set(soap_fault="client")  # REST endpoint
    reply = requests.post(sb.url("gov") + "/_sandbox/faults", json={"latency": -1}, timeout=5)
    assert reply.status_code == 400


def test_soap_server_fault_by_default_and_client_fault_on_request(clean_sandbox):
    sb = clean_sandbox
    legacy = soap_client(sb, "legacy")
    sb.faults("legacy").set(error_rate=1.0)
    with pytest.raises(Fault) as server:
        legacy.QueryProgress(YWH="nope")
    assert server.value.code.endswith("Server")
    sb.faults("legacy").set(soap_fault="client")
    with pytest.raises(Fault) as client:
        legacy.QueryProgress(YWH="nope")
    assert client.value.code.endswith("Client")
    sb.faults("legacy").clear()
    with pytest.raises(Fault, match="no application"):
        legacy.QueryProgress(YWH="nope")


def test_soap_http_level_error(clean_sandbox):
    sb = clean_sandbox
    sb.faults("court").set(error_rate=1.0, soap_fault="http", error_status=502)
    with pytest.raises(zeep.exceptions.TransportError) as err:
        soap_client(sb, "court").PullJudgments()
    assert err.value.status_code == 502


@pytest.mark.parametrize("kind", ["billion_laughs", "external_entity"])
def test_malicious_xml_reply_is_refused_by_a_hardened_client(clean_sandbox, kind):
    sb = clean_sandbox
    sb.faults("legacy").set(malicious_xml=kind)
    raw = requests.post(sb.url("legacy") + "/ws", data=b"<x/>", timeout=5)
    assert b"<!DOCTYPE" in raw.content and b"<!ENTITY" in raw.content
    with pytest.raises(zeep.exceptions.Error):
        soap_client(sb, "legacy").QueryProgress(YWH="x")
    assert sb.xxe_hits("legacy") == 0


def test_external_entity_payload_really_leaks_the_canary_into_a_naive_parser(clean_sandbox):
    from lxml import etree

    sb = clean_sandbox
    sb.faults("legacy").set(malicious_xml="external_entity")
    raw = requests.post(sb.url("legacy") + "/ws", data=b"<x/>", timeout=5).content
    naive = etree.XMLParser(resolve_entities=True, load_dtd=True, no_network=False, recover=True)
    assert sb.xxe_canary in etree.tostring(etree.fromstring(raw, naive), encoding="unicode")
    requests.get(sb.url("legacy") + "/_sandbox/xxe-probe", timeout=5)  # what a fetching parser does
    assert sb.xxe_hits("legacy") == 1


def test_malformed_soap_reply_is_broken_xml(clean_sandbox):
    sb = clean_sandbox
    sb.faults("legacy").set(malformed=True)
    with pytest.raises(zeep.exceptions.TransportError, match="invalid XML"):
        soap_client(sb, "legacy").ReportStageChanges()
