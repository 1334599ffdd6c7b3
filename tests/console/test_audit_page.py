"""The console's audit page: the hub's audit log newest first, filtered and paged;
the export streamed and itself audited; the hash chain verified across the
rotated files (intact, or broken at the file, line and record); the bridge's
logs as sources of their own; only the audit administrator, and a
tenant-scoped one only sees their tenants' records."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from bdchub.console.accounts import Operators
from bdchub.console.audit_page import LIST_LIMIT, MAX_EXPORT_DAYS, sources
from bdchub.core.audit import DAY, AuditLog, Rotation, log_files
from bdchub.core.operators import OperatorStore

from .conftest import PASSWORDS, TENANT, Browser, Clock, StoreHub

pytestmark = pytest.mark.usefixtures("chinese")

KEY = b"audit-key-of-the-console-tests"
OTHER = "320623"  # 如东: outside the operators' scope


class LogHub(StoreHub):
    """A hub with a real, keyed, daily-rotated audit log (the console writes to it too)."""

    def __init__(self, folder: Path):
        super().__init__()
        self.config: dict[str, Any] = {"__dir__": str(folder)}
        self.clock = Clock(_noon(-3))
        self.log = AuditLog(folder / "data" / "audit.jsonl", key=KEY, clock=self.clock,
                            rotation=Rotation(max_bytes=None, daily=True, retention_days=None))

    def audit(self, event: str, **fields: Any) -> None:
        super().audit(event, **fields)
        self.log.record(event, str(fields.get("business_no") or ""), **fields)

    def audit_log(self) -> AuditLog:
        return self.log

    def audit_key(self) -> bytes:
        return KEY


def _noon(days: int) -> float:
    import time

    now = time.time()
    return now - now % DAY + 4 * 3600 + days * DAY  # 12:00 in China, ``days`` from today


@pytest.fixture
def hub(tmp_path, monkeypatch):
    monkeypatch.delenv("HUB_DATA_DIR", raising=False)
    found = LogHub(tmp_path)
    yield found
    found.store.close()


@pytest.fixture
def console(console):
    from bdchub.console.audit_page import install

    install(console)
    return console


@pytest.fixture
def cases(hub):
    """Three days of a county's requests, a case of 如东 and an operator's login,
    each day in a file of its own."""
    for day in range(3):
        hub.clock.now = _noon(day - 3)
        for i in range(3):
            hub.audit("inbound.accepted", business_no=f"HM{day}{i}", client="bank_1",
                      tenant=TENANT, id_hash="ab12")
        hub.audit("inbound.accepted", business_no=f"RD{day}", client="bank_2", tenant=OTHER)
        hub.audit("console.login", operator="wang", remote="127.0.0.1")
    hub.clock.now = _noon(0)
    hub.log.close()
    assert len(log_files(hub.log.path)) == 3
    return hub


def _everyone(hub) -> None:
    """钱 of every tenant: an audit administrator not scoped to one county."""
    Operators(OperatorStore(hub.store), hub.audit).add(
        "qian_all", "Shenji-Quanbu-2024", roles=["audit_admin"], tenants=["*"], by="root")


def _rows(answer) -> list[str]:
    import re

    return re.findall(r'<td class="business-no">([^<]*)</td>', answer.get_data(as_text=True))


def test_the_page_lists_the_records_newest_first_with_the_filters_in_a_form(browser, cases):
    _everyone(cases)
    browser.login("qian_all", "Shenji-Quanbu-2024")
    answer = browser.get("/audit")
    assert answer.status_code == 200
    page = answer.get_data(as_text=True)
    assert "审计日志" in page and 'id="audit-filters"' in page and 'id="verify"' in page
    assert page.split('<td class="event">', 1)[1].startswith("console.login<")  # 钱's own
    assert [r for r in _rows(answer) if r != "-"][:3] == ["RD2", "HM22", "HM21"]
    assert _rows(browser.get("/audit?business_no=HM11")) == ["HM11"]
    assert set(_rows(browser.get("/audit?actor=bank_2"))) == {"RD0", "RD1", "RD2"}
    only = browser.get("/audit?action=console.*").get_data(as_text=True)
    assert only.count('<td class="event">console.login</td>') == 4  # wang's and 钱's
    assert "inbound.accepted" not in only.split('id="audit-records"')[1]
    yesterday = browser.get("/audit?since=" + _day(-1) + "&until=" + _day(-1))
    assert sorted(_rows(yesterday)) == ["-", "HM20", "HM21", "HM22", "RD2"]
    missing = browser.get("/audit?business_no=NONE").get_data(as_text=True)
    assert "没有符合条件的审计记录" in missing


def _day(days: int) -> str:
    import datetime as dt

    return str(dt.date.today() + dt.timedelta(days=days))


def test_a_page_holds_at_most_the_limit_and_more_goes_on_below_it(browser, hub):
    for i in range(LIST_LIMIT + 5):
        hub.audit("inbound.accepted", business_no=f"N{i:03d}", client="bank_1", tenant=TENANT)
    browser.login("qian", PASSWORDS["qian"])
    first = browser.get("/audit?action=inbound.accepted")
    rows = _rows(first)
    assert len(rows) == LIST_LIMIT and rows[0] == f"N{LIST_LIMIT + 4:03d}"
    import html
    import re

    more = html.unescape(re.search(r'<a id="more" href="/console([^"]+)"',
                                   first.get_data(as_text=True)).group(1))
    assert "action=inbound.accepted" in more
    rest = browser.get(more)
    assert _rows(rest) == ["N004", "N003", "N002", "N001", "N000"]
    assert 'id="more"' not in rest.get_data(as_text=True)


def test_values_are_escaped_on_the_page(browser, hub):
    attack = '<script>window.x=1</script>'
    hub.audit("inbound.rejected", business_no=attack, client='"><img src=x onerror=1>',
              tenant=TENANT, error=attack)
    browser.login("qian", PASSWORDS["qian"])
    page = browser.get("/audit?business_no=" + attack).get_data(as_text=True)
    assert "<script>window.x" not in page and "<img src=x" not in page
    assert "&lt;script&gt;window.x=1&lt;/script&gt;" in page


def test_a_tenant_scoped_administrator_sees_only_their_tenants_records(browser, cases):
    browser.login("qian", PASSWORDS["qian"])  # scoped to 海门
    rows = _rows(browser.get("/audit"))
    assert sorted(rows) == sorted(f"HM{d}{i}" for d in range(3) for i in range(3))
    lines = browser.get(f"/api/audit/export?format=jsonl&since={_day(-5)}").get_data(
        as_text=True).splitlines()
    assert {json.loads(line)["fields"]["tenant"] for line in lines} == {TENANT}


def _wsgi(console, browser: Browser, path: str) -> tuple[str, dict[str, str], Any]:
    """The console's WSGI answer itself: what a server gets back to send."""
    from werkzeug.test import EnvironBuilder

    cookie = browser.raw.get_cookie("bdchub_console", path="/console")
    env = EnvironBuilder(path="/console" + path, environ_base={"REMOTE_ADDR": "10.0.0.7"},
                         headers={"Cookie": f"bdchub_console={cookie.value}"}).get_environ()
    started: dict[str, Any] = {}

    def start_response(status, headers, exc_info=None):
        started.update(status=status, headers=dict(headers))

    body = console(env, start_response)
    return started["status"], started["headers"], body


def test_the_export_is_streamed_as_a_download_and_audited(console, browser, cases):
    browser.login("qian", PASSWORDS["qian"])
    status, headers, body = _wsgi(console, browser,
                                  f"/api/audit/export?format=csv&since={_day(-5)}"
                                  "&business_no=HM11")
    assert status.startswith("200")
    assert headers["Content-Type"].startswith("text/csv")
    assert headers["Content-Disposition"] == f'attachment; filename="audit-hub-{_day(-5)}.csv"'
    assert "Content-Length" not in headers  # sent as it is read
    assert not isinstance(body, list | bytes)  # a generator: the file is never held whole
    rows = list(csv.reader(io.StringIO(b"".join(body).decode("utf-8-sig"))))
    assert rows[0][:5] == ["序号", "时间", "事件", "操作者", "业务号"]
    assert [r[4] for r in rows[1:]] == ["HM11"]
    exported = cases.events("audit.exported")
    assert exported == [{"operator": "qian", "source": "hub", "format": "csv",
                         "since": _day(-5), "until": "", "actor": "", "action": "",
                         "business_no": "HM11", "remote": "10.0.0.7"}]
    jsonl = browser.get(f"/api/audit/export?format=jsonl&since={_day(-5)}&actor=bank_1")
    assert jsonl.headers["Content-Disposition"].endswith('.jsonl"')
    assert len(jsonl.get_data(as_text=True).splitlines()) == 9


def test_an_export_without_a_start_or_over_the_limit_is_refused_clearly(browser, cases):
    browser.login("qian", PASSWORDS["qian"])
    empty = browser.get("/api/audit/export?format=csv&since=")
    assert empty.status_code == 400 and "需要起始日期" in empty.json["error"]["message"]
    huge = browser.get("/api/audit/export?format=csv&since=2020-01-01&until=2026-12-31")
    assert huge.status_code == 400
    assert huge.json["error"]["code"] == "export_range_too_long"
    assert str(MAX_EXPORT_DAYS) in huge.json["error"]["message"]
    assert browser.get("/api/audit/export?format=xml&since=2026-01-01").status_code == 400
    assert browser.get("/api/audit/export?since=yesterday").json["error"]["code"] == "bad_time"
    assert not cases.events("audit.exported")


def test_the_chain_verifies_intact_across_the_rotated_files(browser, cases):
    browser.login("qian", PASSWORDS["qian"])  # today: a fourth file
    records, files = len(cases.log.records()), log_files(cases.log.path)
    assert len(files) == 4
    answer = browser.raw.get("/console/api/audit/verify",
                             environ_base={"REMOTE_ADDR": "10.0.0.7"})
    assert answer.status_code == 200
    doc = answer.json
    assert doc["ok"] is True and doc["problems"] == []
    assert doc["records"] == records and doc["files"] == [f.name for f in files]
    assert doc["first"] == pytest.approx(_noon(-3)) and doc["last"] == pytest.approx(_noon(0))
    assert doc["summary"].startswith(f"完整：{records} 条记录")
    assert cases.events("audit.verified")[-1] == {
        "operator": "qian", "source": "hub", "ok": True, "records": records, "problems": 0,
        "remote": "10.0.0.7"}


def _archive(hub) -> Path:
    return log_files(hub.log.path)[1]  # the middle day's file


def test_a_tampered_line_in_a_rotated_file_shows_where_and_why(browser, cases):
    archive = _archive(cases)
    lines = archive.read_text().splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if '"HM11"' in line)
    lines[at] = lines[at].replace('"HM11"', '"HM99"')
    archive.write_text("".join(lines))
    browser.login("qian", PASSWORDS["qian"])
    doc = browser.get("/api/audit/verify").json
    assert doc["ok"] is False
    problem = doc["problems"][0]
    assert (problem["file"], problem["line"]) == (archive.name, at + 1)
    assert problem["seq"] == json.loads(lines[at])["seq"]
    assert problem["reason"] == "记录被改动：哈希与内容不符"
    assert problem["text"].startswith(f"{archive.name}，第 {at + 1} 行")
    assert doc["summary"].startswith("已损坏")
    assert cases.events("audit.verified")[-1]["ok"] is False


def test_a_removed_line_in_a_rotated_file_shows_where_and_why(browser, cases):
    archive = _archive(cases)
    lines = archive.read_text().splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if '"HM11"' in line)
    gone = json.loads(lines.pop(at))
    archive.write_text("".join(lines))
    browser.login("qian", PASSWORDS["qian"])
    doc = browser.get("/api/audit/verify").json
    assert doc["ok"] is False
    first = doc["problems"][0]
    assert first["file"] == archive.name and first["line"] == at + 1
    assert first["seq"] == gone["seq"] + 1  # the record after the one removed
    assert any(str(gone["seq"]) in p["reason"] for p in doc["problems"])  # the gap named


@pytest.mark.parametrize("name", ["wang", "zhou", "sun"])
def test_only_the_audit_administrator_reads_exports_and_verifies(browser, cases, name):
    browser.login(name, PASSWORDS[name])
    assert browser.get("/audit").status_code == 403
    assert browser.get(f"/api/audit/export?format=csv&since={_day(-5)}").status_code == 403
    assert browser.get("/api/audit/verify").status_code == 403
    refused = cases.events("console.refused")
    assert {r["action"] for r in refused} == {"audit.read", "audit.export"}
    assert not cases.events("audit.exported") and not cases.events("audit.verified")


def test_the_bridge_logs_are_sources_of_their_own_and_rotate_as_the_hubs(hub, tmp_path,
                                                                         console):
    (tmp_path / "gate.key").write_text("ab" * 32)
    hub.config.update(
        bridge={"ferry_inbox": {"path": "arrivals", "key": "ferry.pub.pem"}},
        connectors={"internal_gate": {"type": "diode", "host": "127.0.0.1", "port": 1,
                                      "audit_log": "gate/audit.jsonl",
                                      "audit_key_file": "gate.key"},
                    "tax": {"type": "rest", "base_url": "http://127.0.0.1:1"}})
    found = sources(hub)
    assert list(found) == ["hub", "ferry", "diode:internal_gate", "calls"]
    gate = found["diode:internal_gate"].log
    assert gate.path == tmp_path / "gate" / "audit.jsonl" and gate.key == bytes.fromhex("ab" * 32)
    assert gate.rotation == Rotation()  # daily, 64 MiB, 400 days: the hub's defaults
    clock = Clock(_noon(-2))
    gate.clock = clock
    for day in range(2):
        clock.now = _noon(day - 2)
        gate.record("sent", f"obj-{day}", name=f"materials-{day}.zip", business_no=f"G{day}")
    gate.close()
    assert len(log_files(gate.path)) == 2  # rotated when the day changed
    browser = Browser(console)
    browser.login("qian", PASSWORDS["qian"])
    page = browser.get("/audit?source=diode:internal_gate")
    assert page.status_code == 200 and _rows(page) == []  # no tenant on a crossing
    _everyone(hub)
    browser.login("qian_all", "Shenji-Quanbu-2024")
    assert _rows(browser.get("/audit?source=diode:internal_gate")) == ["G1", "G0"]
    doc = browser.get("/api/audit/verify?source=diode:internal_gate").json
    assert doc["ok"] is True and doc["records"] == 2 and len(doc["files"]) == 2
    assert browser.get("/api/audit/verify?source=nowhere").status_code == 404


def test_the_console_sends_other_answers_whole(browser, cases):
    """Only an export streams: the page and the verification carry their length."""
    browser.login("qian", PASSWORDS["qian"])
    for path in ("/audit", "/api/audit/verify"):
        answer = browser.get(path)
        assert answer.headers["Content-Length"] == str(len(answer.get_data()))
