"""The console's statistics: the JSON the page reads (applications by registration
type, channel and outcome; time at each stage; department calls with failure
rates) narrowed to the operator's tenants, and the CSV and XLSX downloads, for
the roles that may; the page itself in Chinese with the chart's element."""

from __future__ import annotations

import csv
import datetime as dt
import io
import time

import pytest

from bdchub.console.accounts import Operators
from bdchub.core.envelope import Hop
from bdchub.core.operators import OperatorStore
from bdchub.core.store import Finish, Store

from .conftest import PASSWORDS, TENANT, Browser

pytestmark = pytest.mark.usefixtures("chinese")

OTHER = "320623"  # 如东: outside the operators' scope
H = 3600.0
NOW = time.time()
TODAY = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date()


def _move(store: Store, tenant: str, no: str, at: float, stage: str, *, reg: str = "",
          channel: str = "", hops: tuple = ()) -> None:
    progress = {"stage": stage, "status": "in_progress", "registration_type": reg}
    if channel:
        progress.update(submitted_by=f"{channel}_1", submitted_channel=channel)
    store.finish(Finish(message_id=f"{no}-{stage}-{at}", route="r", outcome="ok", tenant=tenant,
                        business_no=no, type="legacy.stage_changed", progress=progress,
                        hops=hops, at=at))


@pytest.fixture
def console(console):
    """The console with its pages (the conftest's has the API alone)."""
    from bdchub.console.pages import install

    install(console)
    return console


@pytest.fixture
def cases(hub):
    """Three cases of 海门 in the last days, one of 如东, and one of 海门 long ago."""
    start = NOW - 3 * 86400
    call = Hop(route="to_register", step="2:to", started_at=start, duration_ms=5.0)
    failed = Hop(route="to_register", step="2:to", started_at=start + 1, duration_ms=5.0,
                 outcome="error")
    _move(hub.store, TENANT, "A1", start, "application", reg="200", channel="bank",
          hops=(call,))
    _move(hub.store, TENANT, "A1", start + 2 * H, "acceptance")
    _move(hub.store, TENANT, "A1", start + 6 * H, "archive")
    _move(hub.store, TENANT, "A2", start + 60, "application", reg="200", channel="bank",
          hops=(failed,))
    _move(hub.store, TENANT, "A3", start + 120, "application", reg="100",
          channel="county_window")
    _move(hub.store, TENANT, "A3", start + 120 + H, "refusal")
    _move(hub.store, OTHER, "B1", start, "application", reg="300", channel="agency")
    _move(hub.store, TENANT, "OLD", NOW - 90 * 86400, "application", reg="400", channel="bank")
    return hub


def test_the_data_counts_the_operators_tenants_by_type_channel_and_outcome(browser, cases):
    browser.login("sun", PASSWORDS["sun"])
    answer = browser.get("/api/statistics")
    assert answer.status_code == 200
    doc = answer.json
    assert doc["until"].startswith(str(TODAY + dt.timedelta(days=1)))  # today counts whole
    assert doc["total"] == 3  # not 如东's case, not the one of 90 days ago
    assert doc["applications"]["type"] == [{"type": "100", "applications": 1},
                                           {"type": "200", "applications": 2}]
    assert doc["applications"]["channel"] == [{"channel": "bank", "applications": 2},
                                              {"channel": "county_window", "applications": 1}]
    assert doc["applications"]["outcome"] == [{"outcome": "closed", "applications": 1},
                                              {"outcome": "in_progress", "applications": 1},
                                              {"outcome": "refused", "applications": 1}]
    stages = {r["stage"]: r for r in doc["stage_times"]}
    assert stages["application"]["cases"] == 2 and stages["acceptance"]["p50_s"] == 4 * H
    assert doc["calls"] == [{"route": "to_register", "step": "2:to", "calls": 2, "failed": 1,
                             "failure_rate": 0.5}]
    longer = browser.get(f"/api/statistics?since={TODAY - dt.timedelta(days=120)}")
    assert longer.json["total"] == 4


def test_a_city_wide_operator_counts_every_tenant_of_the_city(console, cases):
    Operators(OperatorStore(cases.store), cases.audit).add(
        "li", PASSWORDS["sun"], roles=["viewer"], tenants=["3206*"], by="test")
    city = Browser(console)
    city.login("li", PASSWORDS["sun"])
    assert city.get("/api/statistics").json["total"] == 4


def test_a_bad_range_is_refused_in_chinese(browser, cases):
    browser.login("wang", PASSWORDS["wang"])
    answer = browser.get("/api/statistics?since=2026-05-01&until=2026-04-01")
    assert answer.status_code == 400
    assert answer.json["error"]["code"] == "bad_range"
    not_a_day = browser.get("/api/statistics?since=yesterday")
    assert not_a_day.status_code == 400 and "不是日期" in not_a_day.json["error"]["message"]


def test_the_csv_export_downloads_the_tables_with_chinese_names(browser, cases):
    browser.login("wang", PASSWORDS["wang"])
    answer = browser.get("/api/statistics/export?format=csv")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/csv")
    disposition = answer.headers["Content-Disposition"]
    assert disposition.startswith("attachment; filename=\"statistics-") and ".csv" in disposition
    rows = list(csv.reader(io.StringIO(answer.data.decode("utf-8-sig"))))
    assert ["to_register", "2:to", "2", "1", "0.5"] in rows
    assert any(r[0] == "320684 海门市" and r[2:] == ["200 转移登记", "bank 银行网点",
                                                    "已办结（归档）", "1"] for r in rows), rows
    assert not any("300" in c for r in rows for c in r)  # 如东's case stays out
    [exported] = cases.events("statistics.exported")
    assert (exported["operator"], exported["format"]) == ("wang", "csv")


def test_the_xlsx_export_holds_a_sheet_per_table(browser, cases):
    from openpyxl import load_workbook

    browser.login("wang", PASSWORDS["wang"])
    answer = browser.get("/api/statistics/export?format=xlsx")
    assert answer.status_code == 200
    assert answer.headers["Content-Disposition"].endswith('.xlsx"')
    book = load_workbook(io.BytesIO(answer.data))
    assert len(book.sheetnames) == 3
    calls = list(book.worksheets[2].values)
    assert calls[1][:4] == ("to_register", "2:to", 2, 1)


def test_only_roles_with_statistics_export_may_export_or_read(console, cases):
    viewer, auditor = Browser(console), Browser(console)
    viewer.login("sun", PASSWORDS["sun"])
    auditor.login("qian", PASSWORDS["qian"])
    assert viewer.get("/api/statistics/export?format=csv").status_code == 403
    assert 'id="export-csv"' not in viewer.get("/statistics").get_data(as_text=True)
    assert auditor.get("/api/statistics").status_code == 403
    assert auditor.get("/statistics").status_code == 403
    assert Browser(console).get("/api/statistics").status_code == 401


def test_the_page_is_chinese_with_the_range_form_the_chart_and_export_links(browser, cases):
    browser.login("wang", PASSWORDS["wang"])
    text = browser.get("/statistics").get_data(as_text=True)
    assert "统计" in text and 'id="stats-chart"' in text
    assert f'value="{TODAY - dt.timedelta(days=29)}"' in text and f'value="{TODAY}"' in text
    assert 'id="export-csv"' in text and 'id="export-xlsx"' in text
    assert 'href="/console/statistics"' in text  # the navigation's link
    attack = '"><script>x()</script>'
    from urllib.parse import quote

    assert "<script>x()" not in browser.get(
        "/statistics?since=" + quote(attack)).get_data(as_text=True)
    assert "Statistics" in browser.get("/statistics?lang=en").get_data(as_text=True)


def test_the_data_counts_by_division_and_period_and_says_it_in_a_sentence(console, cases):
    Operators(OperatorStore(cases.store), cases.audit).add(
        "li", PASSWORDS["sun"], roles=["viewer"], tenants=["3206*"], by="test")
    city = Browser(console)
    city.login("li", PASSWORDS["sun"])
    doc = city.get("/api/statistics").json
    assert doc["period"] == "day"
    assert doc["applications"]["division"] == [{"division": "320623", "applications": 1},
                                               {"division": "320684", "applications": 3}]
    assert doc["names"]["division"] == {"320623": "如东县", "320684": "海门市"}
    start = dt.datetime.fromtimestamp(NOW - 3 * 86400, dt.timezone(dt.timedelta(hours=8)))
    days = {r["period"]: r["applications"] for r in doc["applications"]["period"]}
    assert days[start.strftime("%Y-%m-%d")] >= 3 and sum(days.values()) == 4
    # The sentence: the range, the total, the divisions and the busiest of each.
    assert "共 4 件申请" in doc["summary"] and "2 个行政区" in doc["summary"], doc["summary"]
    assert "200 转移登记（2）" in doc["summary"]
    by_month = city.get("/api/statistics?period=month").json["applications"]["period"]
    assert all(len(r["period"]) == 7 for r in by_month)  # YYYY-MM
    refused = city.get("/api/statistics?period=hour")
    assert refused.status_code == 400 and refused.json["error"]["code"] == "bad_period"


def test_an_empty_range_says_there_were_no_applications(browser, cases):
    browser.login("wang", PASSWORDS["wang"])
    doc = browser.get("/api/statistics?since=2020-01-01&until=2020-01-31").json
    assert doc["total"] == 0 and "没有申请" in doc["summary"]
