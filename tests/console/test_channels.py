"""The console's channels and clients page: each client's requests accepted, refused
and failed over the last hour, day or 7 days, counted by the intake in the store so
the sums cover every process and survive a restart; suspending and resuming a client
or a whole channel as ``hub channel`` does (the same row and audit events, with the
operator, reason and remote address), the suspended client then refused; who may
see and do what, per role and tenant; every value escaped."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import pytest

from bdchub.core import store as store_mod
from bdchub.core.store import Store
from bdchub.web.app import create_app
from bdchub.web.fake import FakeHub
from bdchub.web.metrics import InboundMetrics
from tests.web.conftest import (
    APPLICATION,
    APPOINTMENT,
    BANK_KEY,
    BANK_SECRET,
    SignedClient,
)
from tests.web.conftest import config as inbound_config

from .conftest import PASSWORDS, TENANT, Browser, Clock, StoreHub

pytestmark = pytest.mark.usefixtures("chinese")

OTHER = "320623"  # 如东: a tenant of the province window outside the operators' scope
ROOT_PASSWORD = "Quanju-Guanli-2024"


class ChannelHub(StoreHub):
    """The console's hub stand-in with the inbound clients of the web tests' config."""

    def __init__(self, url: str):
        super().__init__(url)
        self.config = inbound_config(suspension_refresh=0)


class Intake(FakeHub):
    """A hub process's intake on the store ``records`` (what ``request_records`` is)."""

    def __init__(self, records: Store):
        super().__init__(shared=True)
        self._records = records


@pytest.fixture
def clock() -> Clock:
    """Now, on a minute's first second: the intake signs and counts in real time."""
    return Clock(time.time() // 60 * 60)


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'hub.db'}"


@pytest.fixture
def hub(url):
    found = ChannelHub(url)
    yield found
    found.store.close()


@pytest.fixture
def console(console):
    from bdchub.console.pages import install

    install(console)
    # An operator of every tenant: sees requests of no known client, suspends channels.
    console.operators.add("gao", ROOT_PASSWORD, roles=["system_admin"], tenants=["*"],
                          by="root")
    console.hub.audits.clear()
    return console


def _as(console, name: str) -> Browser:
    browser = Browser(console)
    answer = browser.login(name, ROOT_PASSWORD if name == "gao" else PASSWORDS[name])
    assert answer.status_code == 200, answer.json
    return browser


def _app(records: Store, clock: Any = None) -> tuple[Any, Intake]:
    intake = Intake(records)
    options = {"clock": clock} if clock is not None else {}
    return create_app(intake, inbound_config(suspension_refresh=0),
                      metrics=InboundMetrics(_registry()), **options), intake


def _registry() -> Any:
    from prometheus_client import CollectorRegistry

    return CollectorRegistry()


def _application(no: str) -> dict[str, Any]:
    body = copy.deepcopy(APPLICATION)
    body["business_no"] = no
    return body


def _client(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for ch in doc["channels"] for c in ch["clients"] if c["client"] == name)


def _counts(doc: dict[str, Any], name: str) -> tuple[int, int, int]:
    found = _client(doc, name)
    return found["accepted"], found["refused"], found["errors"]


# ------------------------------------------------------------------ counts


def test_each_clients_requests_are_counted_by_every_process_and_survive_a_restart(
        console, url, monkeypatch):
    # Nothing is added on a timer during the test: what is stored came from close().
    monkeypatch.setattr(store_mod, "REQUEST_COUNTS_EVERY", 3600.0)
    first, second = Store(url), Store(url)  # two hub processes on one store
    app_a, _hub_a = _app(first)
    app_b, hub_b = _app(second)
    window_a, window_b = SignedClient(app_a), SignedClient(app_b)
    assert window_a.post("/api/v1/applications", _application("YWH1")).status_code == 202
    assert window_a.post("/api/v1/applications", _application("YWH2")).status_code == 202
    assert window_b.post("/api/v1/applications", _application("YWH3")).status_code == 202
    wrong = SignedClient(app_a, window_a.app_key, "not-the-secret-0123456789abcdef")
    assert wrong.post("/api/v1/applications", _application("YWH4")).status_code == 401
    broken = _application("YWH5")
    del broken["applicants"]
    assert window_b.post("/api/v1/applications", broken).status_code == 422
    from bdchub.core.errors import RecoverableError

    hub_b.fail_publish = RecoverableError("broker down")
    assert window_b.post("/api/v1/applications", _application("YWH6")).status_code == 503
    bank = SignedClient(app_b, BANK_KEY, BANK_SECRET)
    assert bank.post("/api/v1/appointments", APPOINTMENT).status_code == 403
    stranger = SignedClient(app_a, "no-such-key", "whatever-secret-0123456789abcdef")
    assert stranger.post("/api/v1/applications", _application("YWH7")).status_code == 401
    # Batched: no request wrote a count to the store yet.
    reader = Store(url)
    assert reader.request_counts(0) == []
    reader.close()

    first.close()
    second.close()  # the processes stop; the hub restarts and reads the store afresh
    doc = _as(console, "gao").get("/api/channels?period=hour").json

    assert _counts(doc, "county_window") == (3, 2, 1)
    assert _client(doc, "county_window")["codes"] == {
        "bad_signature": 1, "schema_violation": 1, "unavailable": 1}
    assert _counts(doc, "bank") == (0, 1, 0)
    assert _client(doc, "bank")["codes"] == {"type_forbidden": 1}
    assert _counts(doc, "") == (0, 1, 0)  # the unknown app key, under no client
    county = next(ch for ch in doc["channels"] if ch["channel"] == "county")
    assert (county["accepted"], county["refused"], county["errors"]) == (3, 2, 1)
    assert _counts(doc, "province_window") == (0, 0, 0)  # listed though it sent nothing


def test_a_request_route_answered_is_counted_accepted_or_refused_as_it_answered(url):
    from bdchub.core.envelope import Envelope

    records = Store(url)
    endpoints = [{"path": "/api/v1/units/check", "route": "unit_check", "method": "POST",
                  "type": "unit.check_requested"}]
    intake = Intake(records)
    app = create_app(intake, inbound_config(endpoints=endpoints),
                     metrics=InboundMetrics(_registry()))
    answers = iter([({}, "200"), ({"error": {"code": "unit_unknown"}}, "404")])

    def route(envelope: Envelope) -> Envelope:
        body, status = next(answers)
        return envelope.evolve(body=body, headers={**envelope.headers, "http.status": status})

    intake.routes["unit_check"] = route
    window = SignedClient(app)
    assert window.post("/api/v1/units/check", {"tenant": TENANT}).status_code == 200
    assert window.post("/api/v1/units/check", {"tenant": TENANT}).status_code == 404
    records.flush_request_counts()
    rows = {(r["outcome"], r["code"]): r["count"] for r in records.request_counts(0)
            if r["client"] == "county_window"}
    records.close()
    assert rows == {("accepted", ""): 1, ("refused", "unit_unknown"): 1}


@pytest.mark.parametrize(("period", "expected"), [("hour", 2), ("day", 3), ("week", 4)])
def test_a_period_counts_every_minute_it_overlaps_and_nothing_before(
        console, hub, clock, period, expected):
    now = clock.now  # on a minute's first second
    for ago in (30, 3600 - 1, 86400 - 1, 6 * 86400, 8 * 86400):
        hub.store.count_request(client="bank", channel="bank", tenant=TENANT,
                                outcome="accepted", at=now - ago)
    # In the minute that ended a second before the hour began: counted by day and week.
    hub.store.count_request(client="bank", channel="bank", tenant=TENANT, outcome="refused",
                            code="schema_violation", at=now - 3600 - 61)
    doc = _as(console, "wang").get(f"/api/channels?period={period}").json
    accepted, refused, _errors = _counts(doc, "bank")
    assert accepted == expected
    assert refused == (0 if period == "hour" else 1)
    assert doc["until"] - doc["since"] == {"hour": 3600, "day": 86400, "week": 604800}[period]


def test_an_unknown_period_is_refused_in_chinese(console):
    answer = _as(console, "wang").get("/api/channels?period=year")
    assert answer.status_code == 400
    assert "hour, day, week" in answer.json["error"]["message"]
    assert "选择" in answer.json["error"]["message"]


# ------------------------------------------------------------------ suspend and resume


def test_the_system_administrator_suspends_and_resumes_a_client_audited_as_the_cli(
        console, hub):
    wang = _as(console, "wang")
    answer = wang.raw.post("/console/api/channels/suspend", json={
        "kind": "client", "name": "county_window", "reason": "代办材料造假，暂停受理"},
        headers={"X-CSRF-Token": wang.csrf}, environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert answer.status_code == 200, answer.json
    assert "已暂停" in answer.json["message"]
    [row] = hub.store.suspensions()
    assert (row["kind"], row["name"], row["suspended_by"], row["reason"]) == (
        "client", "county_window", "wang", "代办材料造假，暂停受理")
    [event] = hub.events("channel.suspended")
    assert (event["kind"], event["name"], event["by"], event["operator"], event["reason"],
            event["remote"]) == ("client", "county_window", "wang", "wang",
                                 "代办材料造假，暂停受理", "10.1.2.3")
    shown = _client(wang.get("/api/channels").json, "county_window")["suspended"]
    assert (shown["by"], shown["reason"]) == ("wang", "代办材料造假，暂停受理")

    again = wang.post("/api/channels/suspend", {"kind": "client", "name": "county_window",
                                                "reason": "再次"})
    assert again.status_code == 409 and again.json["error"]["code"] == "already_suspended"
    assert "wang" in again.json["error"]["message"]

    resumed = wang.post("/api/channels/resume", {"kind": "client", "name": "county_window",
                                                 "reason": "整改完毕"})
    assert resumed.status_code == 200, resumed.json
    assert hub.store.suspensions() == []
    [event] = hub.events("channel.resumed")
    assert (event["operator"], event["reason"], event["suspended_by"]) == ("wang", "整改完毕",
                                                                          "wang")
    twice = wang.post("/api/channels/resume", {"kind": "client", "name": "county_window",
                                               "reason": "整改完毕"})
    assert twice.status_code == 409 and twice.json["error"]["code"] == "not_suspended"


def test_a_client_suspended_from_the_console_is_refused_in_chinese_and_counted(console, hub):
    app, intake = _app(hub.store)
    window = SignedClient(app)
    assert _as(console, "wang").post("/api/channels/suspend", {
        "kind": "client", "name": "county_window", "reason": "违规代办"}).status_code == 200

    refused = window.post("/api/v1/applications", _application("YWH9"))
    assert refused.status_code == 403
    error = refused.json["error"]
    assert error["code"] == "channel_suspended"
    assert "客户端 county_window" in error["message"] and "已被暂停" in error["message"]
    assert intake.published == []
    doc = _as(console, "sun").get("/api/channels").json
    assert _counts(doc, "county_window") == (0, 1, 0)
    assert _client(doc, "county_window")["codes"] == {"channel_suspended": 1}

    assert _as(console, "wang").post("/api/channels/resume", {
        "kind": "client", "name": "county_window", "reason": "整改完毕"}).status_code == 200
    assert window.post("/api/v1/applications", _application("YWH9")).status_code == 202


def test_an_unknown_name_is_404_with_the_name_meant_and_a_reason_is_needed(console, hub):
    wang = _as(console, "wang")
    typo = wang.post("/api/channels/suspend", {"kind": "client", "name": "county_windw",
                                               "reason": "x"})
    assert typo.status_code == 404
    assert "county_window" in typo.json["error"]["message"]
    channel = wang.post("/api/channels/suspend", {"kind": "channel", "name": "bnak",
                                                  "reason": "x"})
    assert channel.status_code == 404 and "bank" in channel.json["error"]["message"]
    for body in ({"kind": "client", "name": "bank", "reason": "  "},
                 {"kind": "client", "name": "bank"},
                 {"kind": "route", "name": "bank", "reason": "x"},
                 {"kind": "client", "name": "b" * 300, "reason": "x"}):
        assert wang.post("/api/channels/suspend", body).status_code == 400, body
    assert hub.store.suspensions() == []


def test_a_whole_channel_is_suspended_only_by_an_operator_of_every_tenant(console, hub):
    body = {"kind": "channel", "name": "bank", "reason": "银行渠道接口异常"}
    scoped = _as(console, "wang").post("/api/channels/suspend", body)
    assert scoped.status_code == 403 and scoped.json["error"]["code"] == "tenant_forbidden"
    province = _as(console, "wang").post("/api/channels/suspend", {
        "kind": "client", "name": "province_window", "reason": "x"})
    assert province.status_code == 403  # it acts for 32*, not only the operator's 320684
    assert hub.store.suspensions() == []
    assert _as(console, "gao").post("/api/channels/suspend", body).status_code == 200
    doc = _as(console, "wang").get("/api/channels").json
    bank = next(ch for ch in doc["channels"] if ch["channel"] == "bank")
    assert bank["suspended"]["reason"] == "银行渠道接口异常"
    page = _as(console, "wang").get("/channels").get_data(as_text=True)
    assert "随渠道暂停" in page  # the bank client, held by its channel


# ------------------------------------------------------------------ roles, tenants, escaping


def test_the_page_shows_counts_and_buttons_to_the_system_administrator(console, hub):
    hub.store.count_request(client="bank", channel="bank", tenant=TENANT, outcome="accepted",
                            at=console.clock())
    page = _as(console, "wang").get("/channels")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "渠道与客户端" in html and "近24小时" in html
    assert 'data-client="bank" data-accepted="1"' in html
    assert 'data-action="suspend" data-kind="client" data-name="bank"' in html
    assert "/static/channels.js" in html


def test_a_viewer_sees_the_page_without_buttons_and_is_refused_403(console, hub):
    sun = _as(console, "sun")
    html = sun.get("/channels").get_data(as_text=True)
    assert 'data-client="county_window"' in html
    assert "data-action" not in html
    for action in ("suspend", "resume"):
        answer = sun.post(f"/api/channels/{action}", {"kind": "client",
                                                      "name": "county_window", "reason": "x"})
        assert answer.status_code == 403 and answer.json["error"]["code"] == "forbidden"
    assert hub.store.suspensions() == []
    assert [e["action"] for e in hub.events("console.refused")] == ["channels.suspend"] * 2


@pytest.mark.parametrize("name", ["qian", "zhou"])
def test_the_audit_and_security_administrators_neither_see_nor_suspend(console, hub, name):
    admin = _as(console, name)
    assert admin.get("/channels").status_code == 403
    assert admin.get("/api/channels").status_code == 403
    assert admin.post("/api/channels/suspend", {"kind": "client", "name": "bank",
                                                "reason": "x"}).status_code == 403
    assert hub.store.suspensions() == []


def test_a_scoped_operator_sees_only_its_tenants_clients_and_counts(console, hub):
    at = console.clock()
    for tenant in (TENANT, OTHER, OTHER):
        hub.store.count_request(client="province_window", channel="province", tenant=tenant,
                                outcome="accepted", at=at)
    # Refused before a tenant was known: the province window acts for other tenants too.
    hub.store.count_request(client="province_window", channel="province", tenant="",
                            outcome="refused", code="bad_signature", at=at)
    hub.store.count_request(client="", channel="", tenant="", outcome="refused",
                            code="bad_signature", at=at)
    console.operators.add("ma", ROOT_PASSWORD, roles=["viewer"], tenants=[OTHER], by="root")

    wang = _as(console, "wang").get("/api/channels").json
    assert _counts(wang, "province_window") == (1, 0, 0)
    assert not any(c["client"] == "" for ch in wang["channels"] for c in ch["clients"])
    everyone = _as(console, "gao").get("/api/channels").json
    assert _counts(everyone, "province_window") == (3, 1, 0)
    assert _counts(everyone, "") == (0, 1, 0)
    ma = Browser(console)
    ma.login("ma", ROOT_PASSWORD)
    theirs = ma.get("/api/channels").json
    assert [c["client"] for ch in theirs["channels"] for c in ch["clients"]] == [
        "province_window"]  # county_window, bank … act for 320684 only
    assert _counts(theirs, "province_window") == (2, 0, 0)


def test_values_are_escaped_on_the_page(console, hub):
    hub.config["inbound"]["clients"]["bank"]["description"] = "<script>alert(1)</script>"
    hub.store.suspend("client", "bank", by="<b>ops</b>", reason="<img src=x onerror=alert(2)>",
                      at=console.clock())
    hub.store.count_request(client="bank", channel="bank", tenant=TENANT, outcome="refused",
                            code="<i>odd</i>", at=console.clock())
    html = _as(console, "wang").get("/channels").get_data(as_text=True)
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)" in html
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(2)&gt;" in html
    assert "<b>ops</b>" not in html and "<i>odd</i>" not in html
