"""POST /api/v1/hub/envelopes (web/federation.py) on a fake hub: what a peer hub's
envelope becomes here, and what is refused before anything is handed over."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from bdchub.core.envelope import new_id
from bdchub.web.app import create_app
from bdchub.web.fake import FakeHub
from bdchub.web.metrics import InboundMetrics
from tests.web.conftest import SignedClient

PATH = "/api/v1/hub/envelopes"
TENANT = "320000"
HUB_KEY, HUB_SECRET = "hk-320684", "haimen-hub-secret-0123456789ab"
WINDOW_KEY, WINDOW_SECRET = "ck-window", "window-secret-0123456789abcdef"


@pytest.fixture
def hub() -> FakeHub:
    return FakeHub()


@pytest.fixture
def peer(hub: FakeHub) -> SignedClient:
    app = create_app(hub, {"tenant": TENANT, "inbound": {"clients": {
        "hub_320684": {"app_key": HUB_KEY, "app_secret": HUB_SECRET, "tenants": ["320684"],
                       "channel": "hub", "owns": ["progress.reported"]},
        "county_window": {"app_key": WINDOW_KEY, "app_secret": WINDOW_SECRET,
                          "tenants": ["32*"], "channel": "county", "sends": ["#"]}}}},
        metrics=InboundMetrics(CollectorRegistry()))
    return SignedClient(app, HUB_KEY, HUB_SECRET)


def envelope(**changes: Any) -> dict[str, Any]:
    return {"id": new_id(), "type": "tax.cleared", "tenant": "320684",
            "business_no": "YWH2024000123", "headers": {"traceparent": "00-a-b-01"},
            "body": {"business_no": "YWH2024000123", "tax_status": "cleared"}, **changes}


def test_an_envelope_is_handed_over_under_its_own_id_and_acknowledged(peer, hub):
    sent = envelope()

    answer = peer.post(PATH, sent)

    assert answer.status_code == 202
    assert answer.json == {**answer.json, "id": sent["id"], "status": "accepted",
                           "hub": TENANT, "tenant": "320684"}
    (taken,) = hub.published
    assert (taken.id, taken.type, taken.tenant, taken.business_no) == (
        sent["id"], "tax.cleared", "320684", "YWH2024000123")
    assert taken.body == sent["body"] and taken.source == "hub:hub_320684"
    assert taken.headers["traceparent"] == "00-a-b-01"
    assert taken.headers["inbound.client"] == "hub_320684"
    assert hub.audited("inbound.accepted")[0]["message_id"] == sent["id"]


def test_the_peers_own_bookkeeping_headers_do_not_steer_this_hubs_runs(peer, hub):
    peer.post(PATH, envelope(headers={"x-hub-resume": "3", "x-hub-park-count": "9",
                                      "inbound.client": "someone_else", "case.ref": "A1"}))

    headers = hub.published[0].headers
    assert "x-hub-resume" not in headers and "x-hub-park-count" not in headers
    assert headers["inbound.client"] == "hub_320684" and headers["case.ref"] == "A1"


def test_a_hub_event_comes_from_a_peer_only_when_its_client_owns_it(peer, hub):
    assert peer.post(PATH, envelope(type="progress.reported")).status_code == 202
    refused = peer.post(PATH, envelope(type="registration.recorded"))

    assert refused.status_code == 403 and refused.json["error"]["code"] == "type_forbidden"
    assert [e.type for e in hub.published] == ["progress.reported"]


def test_a_client_that_is_no_peer_hub_may_not_send_envelopes(peer, hub):
    window = SignedClient(peer.raw.application, WINDOW_KEY, WINDOW_SECRET)

    refused = window.post(PATH, envelope())

    assert refused.status_code == 403 and refused.json["error"]["code"] == "not_a_peer_hub"
    assert hub.published == []
    assert hub.audited("inbound.rejected")[0]["reason"] == "not_a_peer_hub"


@pytest.mark.parametrize("changes, path", [
    ({"id": "not-a-uuid"}, "$.id"),
    ({"type": "Tax"}, "$.type"),
    ({"body": ["x"]}, "$.body"),
    ({"headers": {"a": 1}}, "$.headers"),
    ({"business_no": "no spaces allowed"}, "$.business_no"),
])
def test_a_malformed_envelope_is_refused_with_where_it_is_wrong(peer, hub, changes, path):
    refused = peer.post(PATH, envelope(**changes))

    assert refused.status_code == 422
    assert [v["path"] for v in refused.json["error"]["violations"]] == [path]
    assert hub.published == []


def hops_report(**changes: Any) -> dict[str, Any]:
    body = {"hops": [{"route": "tax_cleared_from_province", "step": "0:to",
                      "started_at": 1717400000.5, "duration_ms": 12.5, "outcome": "ok",
                      "detail": ""}]}
    return envelope(**{"type": "hub.hops_reported", "body": body, **changes})


def test_reported_hops_go_into_the_trace_marked_with_the_county_once_per_report(peer, hub):
    report = hops_report()

    first = peer.post(PATH, report)
    again = peer.post(PATH, report)

    assert first.status_code == again.status_code == 202
    assert (first.json["status"], again.json["status"]) == ("recorded", "duplicate")
    (kept, hops), = hub.reported_hops.values()
    assert kept.id == report["id"] and kept.business_no == "YWH2024000123"
    assert [(h.route, h.step, h.started_at, h.outcome) for h in hops] == [
        ("320684/tax_cleared_from_province", "0:to", 1717400000.5, "ok")]
    assert hub.published == []


@pytest.mark.parametrize("hops", [[], [{"route": "r"}], [{"route": "r", "step": "0:to",
                                                        "started_at": "yesterday"}]])
def test_a_malformed_hops_report_is_refused_and_nothing_is_recorded(peer, hub, hops):
    refused = peer.post(PATH, hops_report(body={"hops": hops}))

    assert refused.status_code == 422
    assert hub.reported_hops == {}
