"""Suspended clients and channels at the one intake (``web.suspensions``), and the
requests of each channel counted (``web.metrics``)."""

from __future__ import annotations

import time

import pytest

from bdchub.core import i18n
from bdchub.core.errors import StoreError
from bdchub.web.app import create_app
from bdchub.web.metrics import InboundMetrics

from .conftest import BANK_KEY, BANK_SECRET, PROVINCE_KEY, PROVINCE_SECRET, SignedClient, config
from .test_soap import STAGE_CHANGE, call, envelope, username_token


def _suspend(hub, kind: str, name: str, by: str = "ops-li") -> None:
    assert hub.request_records().suspend(kind, name, by=by, reason="违规代办", at=time.time()) \
        is None


@pytest.fixture(autouse=True)
def chinese():
    i18n.set_language(None)  # the hub's default, whatever a test before set


@pytest.fixture
def now_app(make_app):
    """An app that reads the suspensions for every request."""
    return make_app(suspension_refresh=0)


def test_a_suspended_client_is_refused_403_in_chinese_audited_and_nothing_handed_over(
        now_app, hub, application):
    _suspend(hub, "client", "county_window")
    response = SignedClient(now_app).post("/api/v1/applications", application)

    assert response.status_code == 403
    error = response.get_json()["error"]
    assert error["code"] == "channel_suspended"
    assert "客户端 county_window" in error["message"] and "已被暂停" in error["message"]
    assert hub.published == []
    [audit] = hub.audited("inbound.rejected")
    assert (audit["code"], audit["client"], audit["suspended"], audit["suspended_by"]) == (
        "channel_suspended", "county_window", "client", "ops-li")
    # Another client is not held by it.
    other = SignedClient(now_app, PROVINCE_KEY, PROVINCE_SECRET).post(
        "/api/v1/applications", application)
    assert other.status_code == 202, other.get_data(as_text=True)


def test_a_suspended_channel_refuses_every_client_of_it_whatever_it_asks(now_app, hub):
    _suspend(hub, "channel", "bank")
    bank = SignedClient(now_app, BANK_KEY, BANK_SECRET)
    read = bank.get("/api/v1/progress/YWH2024000001")
    assert read.status_code == 403
    assert read.get_json()["error"]["code"] == "channel_suspended"
    assert "渠道 bank" in read.get_json()["error"]["message"]
    english = bank.get("/api/v1/progress/YWH2024000001?lang=en")
    assert "channel bank is suspended" in english.get_json()["error"]["message"]


def test_a_suspended_client_is_refused_on_the_soap_endpoint_too(now_app, hub):
    _suspend(hub, "client", "registration_system")
    response = call(SignedClient(now_app), envelope(STAGE_CHANGE, username_token()), sign=False)
    assert response.status_code == 403
    assert hub.published == []


def test_a_suspension_and_a_resumption_reach_a_running_app_within_the_refresh(hub, registry,
                                                                            application):
    clock = [time.time()]
    app = create_app(hub, config(suspension_refresh=5), metrics=InboundMetrics(registry),
                     clock=lambda: clock[0])
    client = SignedClient(app)

    def status() -> int:
        return client.post("/api/v1/applications", dict(application)).status_code

    assert status() == 202
    _suspend(hub, "client", "county_window")
    clock[0] += 4
    assert status() == 202  # the last read is 4 s old: still answered from it
    clock[0] += 2
    assert status() == 403  # 6 s: read again
    hub.request_records().resume("client", "county_window")
    clock[0] += 4
    assert status() == 403
    clock[0] += 2
    assert status() in (202, 200)


def test_a_store_that_cannot_be_read_refuses_signed_requests_with_503(now_app, hub,
                                                                     application, monkeypatch):
    def broken():
        raise StoreError("the store is down")

    monkeypatch.setattr(hub.request_records(), "suspensions", broken)
    response = SignedClient(now_app).post("/api/v1/applications", application)
    assert response.status_code == 503
    assert hub.audited("inbound.rejected")[0]["reason"] == "suspensions_unavailable"
    assert hub.published == []


def test_requests_are_counted_by_the_clients_channel(app, hub, registry, application):
    county, bank = SignedClient(app), SignedClient(app, BANK_KEY, BANK_SECRET)
    county.post("/api/v1/applications", application)
    bank.post("/api/v1/appointments", {"anything": 1})  # not a type the bank may send
    bank.get("/api/v1/progress/YWH2024000001", headers={"X-Signature": "0" * 64})

    def value(name: str, **labels: str) -> float:
        return registry.get_sample_value(name, labels) or 0.0

    assert value("bdchub_inbound_channel_requests_total", channel="county",
                 outcome="accepted") == 1
    assert value("bdchub_inbound_channel_requests_total", channel="bank", outcome="refused") == 2
    assert value("bdchub_inbound_channel_rejected_total", channel="bank",
                 code="type_forbidden") == 1
    assert value("bdchub_inbound_channel_rejected_total", channel="bank",
                 code="bad_signature") == 1


# -- every hub on one store (SQLite and PostgreSQL) ------------------------------------

@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def store_url(request, tmp_path):
    from tests.integration.test_reliability import _pg_database

    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return _pg_database(request.getfixturevalue("postgres_url"))


def test_every_hub_on_the_store_refuses_a_suspended_client_and_takes_it_once_resumed(
        store_url, application):
    from prometheus_client import CollectorRegistry

    from bdchub.routes.runtime import Hub

    hubs = [Hub.from_config(config(), broker="memory://", store=store_url) for _ in range(2)]
    try:
        apps = [create_app(hub, config(suspension_refresh=0),
                           metrics=InboundMetrics(CollectorRegistry())) for hub in hubs]
        hubs[0].store.suspend("client", "county_window", by="ops-li", reason="违规代办",
                              at=time.time())
        for i, app in enumerate(apps):
            body = dict(application, business_no=f"YWH20240000{i}")
            assert SignedClient(app).post("/api/v1/applications", body).status_code == 403
        assert hubs[1].store.resume("client", "county_window")["suspended_by"] == "ops-li"
        assert hubs[1].store.resume("client", "county_window") is None  # nothing left to lift
        for i, app in enumerate(apps):
            body = dict(application, business_no=f"YWH20240001{i}")
            assert SignedClient(app).post("/api/v1/applications", body).status_code == 202
    finally:
        for hub in hubs:
            hub.close()


def test_the_store_counts_cases_by_their_submitters_channel(store_url):
    from bdchub.core.store import Finish, Store

    store = Store(store_url)
    try:
        def case(no: str, client: str, channel: str, stage: str) -> None:
            store.finish(Finish(message_id=f"m-{no}", route="apply", outcome="completed",
                                tenant="320684", business_no=no, type="application.submitted",
                                progress={"stage": stage, "submitted_by": client,
                                          "submitted_channel": channel}))

        case("D1", "developer_hm", "developer", "archive")
        case("D2", "developer_hm", "developer", "refusal_to_register")
        case("D3", "developer_hm", "developer", "review")
        case("A1", "agency_hm", "agency", "refusal")
        store.add_dead_letter(id="dl-1", message_id="m-D3", origin_id="m-D3", route="apply",
                              step="1", type="application.submitted", tenant="320684",
                              business_no="D3", reason="schema", last_error="x", envelope="{}")
        held = store.suspend("channel", "agency", by="ops", reason="r", at=1.0)
        assert held is None
        assert store.suspend("channel", "agency", by="other", reason="again", at=2.0)[
            "suspended_by"] == "ops"  # the first suspension stands

        counts = {(r["channel"], r["client"]): r for r in store.channel_counts()}
        assert {k: counts[("developer", "developer_hm")][k] for k in
                ("cases", "archived", "refused", "dead_letters")} == {
            "cases": 3, "archived": 1, "refused": 1, "dead_letters": 1}
        assert counts[("agency", "agency_hm")]["refused"] == 1
        assert [(s["kind"], s["name"]) for s in store.suspensions()] == [("channel", "agency")]
    finally:
        store.close()
