"""What the audit covers beyond operator actions and inbound requests (issue #13,
item 1 "Audit"): a message parked or dead-lettered is a record of the hub's
hash-chained audit log (its error masked as the log masks it), found on the audit
page by its business number; the outbound calls to departments are a source of the
page of their own, read from the store's trace (not chained, and the page says so),
filtered by time, business number, connector and operation or outcome, and exported
like the logs, for the audit administrator alone and within their tenants."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import time
from typing import Any

import pytest

from bdchub.console.api import ConsoleApp
from bdchub.console.audit_page import install
from bdchub.core.errors import RecoverableError
from tests.routes.helpers import Clock, application, echo, fake, make_hub

from .conftest import PASSWORDS, ROLE_OF, TENANT, Browser, cheap_passwords, console_config

pytestmark = pytest.mark.usefixtures("chinese")

OTHER = "320623"  # 如东: outside the operators' scope
ID_NUMBER = "320684198503120313"


class Tax:
    """The tax bureau: down (its error quoting the ID number it refused) until up."""

    def __init__(self) -> None:
        self.up = False

    def __call__(self, op: str, payload: Any, ctx: Any) -> Any:
        if not self.up:
            raise RecoverableError(f"证件号 {ID_NUMBER} 核验服务不可用", connector="tax",
                                   operation=op)
        return {"accepted": True}


ROUTES = {"tax": {"from": "application.submitted",
                  "on_error": {"retry": {"attempts": 1}, "park_for": 30, "park_max": 1},
                  "steps": [{"enrich": {"connector": "gov", "operation": "verify_identity",
                                        "into": "identity"}},
                            {"to": {"connector": "tax", "operation": "declare"}}]}}


@pytest.fixture
def tax() -> Tax:
    return Tax()


@pytest.fixture
def hub(tmp_path, monkeypatch, tax):
    """A real hub whose audit log is in ``tmp_path``, its clock at the real time (the
    audit log's records carry the real time too)."""
    monkeypatch.setenv("HUB_DATA_DIR", str(tmp_path))
    found = make_hub(ROUTES, {"gov": fake("gov", echo), "tax": fake("tax", tax)},
                     clock=Clock(time.time()))
    yield found
    found.close()


@pytest.fixture
def console(hub) -> ConsoleApp:
    app = ConsoleApp(hub, console_config(), clock=Clock(time.time()),
                     passwords=cheap_passwords())
    install(app)
    for name, password in PASSWORDS.items():
        app.operators.add(name, password, roles=[ROLE_OF[name]], tenants=[TENANT], by="root")
    return app


def _as(console: ConsoleApp, name: str) -> Browser:
    browser = Browser(console)
    assert browser.login(name, PASSWORDS[name]).status_code == 200
    return browser


def _records(hub, event: str) -> list[dict[str, Any]]:
    return [r["fields"] for r in hub.audit_log().records() if r["event"] == event]


def _park_then_dead_letter(hub) -> None:
    """C-1 parks at tax; when due it fails again and, parked once already, is dead-lettered."""
    hub.send("application.submitted", application("C-1"))
    hub.run_until_idle()
    hub.engine.clock.advance(31)
    hub.tick()
    hub.run_until_idle()


def test_a_parked_and_a_dead_lettered_message_are_each_one_record_with_the_error_masked(hub):
    _park_then_dead_letter(hub)
    [parked] = _records(hub, "message.parked")
    [dead] = _records(hub, "message.dead_lettered")
    [letter] = hub.dlq_list()
    for record in (parked, dead):
        assert (record["route"], record["step"], record["tenant"], record["business_no"]) == (
            "tax", "1:to", TENANT, "C-1")
        assert ID_NUMBER not in record["error"] and "320684********0313" in record["error"]
        assert record["error"].startswith("RecoverableError: 证件号")
    assert parked["reason"] == "recoverable" and parked["park_count"] == 1
    assert parked["message_id"] != dead["message_id"]  # the parked copy came back as its own
    assert dead["reason"] == "park_max" and dead["dead_letter"] == letter["id"]
    assert dead["message_id"] == letter["message_id"]


def test_a_failing_audit_log_loses_and_doubles_no_message(hub, caplog):
    def broken(event: str, **fields: Any) -> None:
        raise OSError("disk full")

    hub.engine.audit = broken
    hub.send("application.submitted", application("C-2"))
    hub.run_until_idle()
    [row] = hub.parked_list()
    assert row["business_no"] == "C-2"
    assert hub.broker.pending() == 0  # acked, not left to be redelivered
    assert hub.store.count("processed", route="tax") == 1
    assert "未能写入审计日志" in caplog.text


def test_the_audit_page_lists_the_exceptions_of_a_case_by_its_business_number(hub, console):
    _park_then_dead_letter(hub)
    page = _as(console, "qian").get("/audit?business_no=C-1").get_data(as_text=True)
    events = re.findall(r'<td class="event">([^<]*)</td>', page)
    assert events == ["message.dead_lettered", "message.parked"]
    assert ID_NUMBER not in page


def _day(days: int = 0) -> str:
    return str(dt.date.today() + dt.timedelta(days=days))


def _calls(page: str) -> list[tuple[str, str, str]]:
    """(actor, event, business number) of each row of the records' table."""
    return [(actor, event, no) for event, actor, no in re.findall(
        r'<td class="event">([^<]*)</td>\s*<td class="actor">([^<]*)</td>\s*'
        r'<td class="business-no">([^<]*)</td>', page)]


def _cases(hub, tax: Tax) -> None:
    tax.up = True
    hub.send("application.submitted", application("C-3"))
    hub.send("application.submitted", application("C-4"))
    hub.send("application.submitted", application("R-1", tenant=OTHER), tenant=OTHER)
    hub.run_until_idle()


def test_outbound_calls_are_a_source_of_the_store_s_trace_found_by_business_number(
        hub, tax, console):
    _cases(hub, tax)
    browser = _as(console, "qian")
    answer = browser.get("/audit?source=calls&business_no=C-3")
    assert answer.status_code == 200
    page = answer.get_data(as_text=True)
    assert _calls(page) == [("tax", "declare/ok", "C-3"), ("gov", "verify_identity/ok", "C-3")]
    assert 'id="not-chained"' in page and 'id="verify"' not in page
    assert _calls(browser.get("/audit?source=calls&actor=tax").get_data(as_text=True)) == [
        ("tax", "declare/ok", "C-4"), ("tax", "declare/ok", "C-3")]  # 如东's R-1 not shown
    assert len(_calls(browser.get("/audit?source=calls&action=verify_identity")
                      .get_data(as_text=True))) == 2
    assert _calls(browser.get("/audit?source=calls&action=declare/error")
                  .get_data(as_text=True)) == []
    assert _calls(browser.get(f"/audit?source=calls&until={_day(-1)}")
                  .get_data(as_text=True)) == []
    assert browser.get("/api/audit/verify?source=calls").json["error"]["code"] == "not_chained"


def test_the_calls_of_a_case_are_exported_as_csv_and_the_export_audited(hub, tax, console):
    _cases(hub, tax)
    browser = _as(console, "qian")
    answer = browser.get(f"/api/audit/export?source=calls&format=csv&since={_day()}"
                         "&business_no=C-4")
    assert answer.status_code == 200
    assert answer.headers["Content-Disposition"] == \
        f'attachment; filename="audit-calls-{_day()}.csv"'
    rows = list(csv.reader(io.StringIO(answer.get_data().decode("utf-8-sig"))))
    assert rows[0][:5] == ["序号", "时间", "事件", "操作者", "业务号"]
    assert [(r[2], r[3], r[4]) for r in rows[1:]] == [
        ("verify_identity/ok", "gov", "C-4"), ("declare/ok", "tax", "C-4")]
    [exported] = [r for r in _records(hub, "audit.exported") if r["source"] == "calls"]
    assert exported["operator"] == "qian" and exported["business_no"] == "C-4"


@pytest.mark.parametrize("name", ["wang", "zhou", "sun"])
def test_only_the_audit_administrator_reads_and_exports_the_calls(hub, tax, console, name):
    _cases(hub, tax)
    browser = _as(console, name)
    assert browser.get("/audit?source=calls").status_code == 403
    assert browser.get(f"/api/audit/export?source=calls&format=csv&since={_day()}"
                       ).status_code == 403


def test_a_store_made_before_the_calls_were_recorded_gets_their_columns(tmp_path):
    import sqlite3

    from bdchub.core.store import Store

    path = tmp_path / "store.db"
    Store(f"sqlite:///{path}").close()
    with sqlite3.connect(path) as db:  # as a store of the release before
        db.execute("ALTER TABLE hops DROP COLUMN connector")
        db.execute("ALTER TABLE hops DROP COLUMN operation")
        db.execute("INSERT INTO hops (tenant, business_no, message_id, type, route, step, "
                   "started_at, duration_ms, outcome, detail) VALUES "
                   "('320684', 'OLD-1', 'm', 't', 'r', '0:to', 1.0, 1.0, 'ok', '')")
    store = Store(f"sqlite:///{path}")
    try:
        assert store.calls() == []  # its old hops named no call: not listed, still there
        assert [h["business_no"] for h in store.trace("OLD-1")] == ["OLD-1"]
    finally:
        store.close()
