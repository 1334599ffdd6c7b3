"""The overview's throughput and error rate (read from the store's ``processed``
records with one indexed GROUP BY, per minute for the last hour and per quarter
hour for the last day, for the whole hub or one route) and its recent warnings
(a bounded ring of each process's warnings, masked, riding in its status report
and merged across processes, newest first, narrowed to the operator's tenants)."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest

from bdchub.app.status import RecentWarnings, StatusReporter, recent_warnings
from bdchub.console import throughput
from bdchub.core.masking import Masker
from bdchub.core.store import Finish, Store

from .conftest import PASSWORDS, TENANT, StoreHub
from .test_statistics import console  # noqa: F401 - the console with its pages

NOW = 1_800_000_000.0  # a whole quarter hour: slots end on NOW
ID_NUMBER = "320684199001011234"


def _handled(store: Store, route: str, at: float, outcome: str = "completed",
             n: int = 1) -> None:
    for i in range(n):
        store.finish(Finish(message_id=f"{route}-{at}-{outcome}-{i}", route=route,
                            outcome=outcome, tenant=TENANT, business_no="", type="t", at=at))


@pytest.fixture
def store():
    found = Store("sqlite://")
    yield found
    found.close()


# ------------------------------------------------------------------ throughput

def test_the_last_hour_counts_each_minute_its_messages_and_those_that_failed(store):
    _handled(store, "tax_application", NOW - 30, n=3)                 # the current minute
    _handled(store, "tax_application", NOW - 20, "parked")
    _handled(store, "court_order", NOW - 10, "dead_letter")
    _handled(store, "court_order", NOW - 61 * 60 + 5, "completed")    # minute 0 of the hour
    _handled(store, "court_order", NOW - 30 * 60, "fallback")
    _handled(store, "court_order", NOW - 30 * 60 + 1, "filtered")     # handled, not failed
    _handled(store, "court_order", NOW - 61 * 60 - 1, "parked")       # before the hour
    found = throughput.throughput(store, "hour", NOW - 1)
    assert found["slot_seconds"] == 60 and len(found["points"]) == 60
    assert found["until"] == NOW and found["since"] == NOW - 3600
    by_slot = {p["at"]: (p["handled"], p["failed"]) for p in found["points"] if p["handled"]}
    assert by_slot == {NOW - 60: (5, 2), NOW - 1800: (2, 1)}
    assert (found["handled"], found["failed"]) == (7, 3)


def test_an_hour_without_messages_is_sixty_empty_minutes(store):
    _handled(store, "court_order", NOW - 2 * 86400, "parked")
    found = throughput.throughput(store, "hour", NOW - 1)
    assert [p["handled"] for p in found["points"]] == [0] * 60
    assert (found["handled"], found["failed"]) == (0, 0)
    assert [p["at"] for p in found["points"]][:2] == [NOW - 3600, NOW - 3540]


def test_the_last_day_counts_per_quarter_hour_and_one_route_alone(store):
    _handled(store, "tax_application", NOW - 23 * 3600, "parked", n=2)
    _handled(store, "tax_application", NOW - 23 * 3600 + 600, n=2)
    _handled(store, "court_order", NOW - 23 * 3600 + 60, "dead_letter")
    _handled(store, "tax_application", NOW - 25 * 3600)  # more than a day ago
    day = throughput.throughput(store, "day", NOW - 1)
    assert day["slot_seconds"] == 900 and len(day["points"]) == 96
    assert (day["handled"], day["failed"]) == (5, 3)
    tax = throughput.throughput(store, "day", NOW - 1, route="tax_application")
    assert tax["route"] == "tax_application"
    assert [(p["at"], p["handled"], p["failed"]) for p in tax["points"] if p["handled"]] == [
        (NOW - 23 * 3600, 4, 2)]


def test_the_count_is_one_indexed_group_by_over_the_window_alone(store):
    since, until, width, slots = throughput.window_bounds("day", NOW - 1)
    statement = throughput.query(store, since, until, width, "court_order").compile(
        store.engine, compile_kwargs={"literal_binds": True})
    with store.engine.connect() as conn:
        plan = " ".join(str(r[-1]) for r in conn.exec_driver_sql(
            f"EXPLAIN QUERY PLAN {statement}"))
    assert "USING INDEX" in plan and "processed_at" in plan, plan  # no full scan
    # However many messages, the answer is a row per busy slot at most.
    for minute in range(0, 24 * 60, 7):
        _handled(store, "court_order", NOW - minute * 60 - 1, n=2)
    with store.engine.connect() as conn:
        rows = conn.execute(throughput.query(store, since, until, width)).all()
    assert len(rows) == slots


# ------------------------------------------------------------------ the endpoint

class OverviewHub(StoreHub):
    """A hub with routes (one answering in the request), a config and a broker."""

    def __init__(self) -> None:
        super().__init__()
        self.tenant = TENANT
        self.config = {"connectors": {}}
        self.routes = {"court_order": SimpleNamespace(sync=False, queue="q.court"),
                       "tax_application": SimpleNamespace(sync=False, queue="q.tax"),
                       "own_properties_query": SimpleNamespace(sync=True, queue="")}
        self.broker = SimpleNamespace(queue_size=lambda queue: 0)


@pytest.fixture
def hub():
    found = OverviewHub()
    yield found
    found.store.close()


def test_the_throughput_endpoint_answers_the_window_and_route_asked(browser, hub):
    import time

    now = time.time()
    _handled(hub.store, "court_order", now - 5, "dead_letter")
    _handled(hub.store, "tax_application", now - 5, n=2)
    browser.login("sun", PASSWORDS["sun"])
    whole = browser.get("/api/overview/throughput")
    assert whole.status_code == 200
    assert whole.json["window"] == "hour" and len(whole.json["points"]) == 60
    assert (whole.json["handled"], whole.json["failed"]) == (3, 1)
    assert whole.json["routes"] == ["court_order", "tax_application"]  # queued routes only
    court = browser.get("/api/overview/throughput?window=day&route=court_order").json
    assert (court["window"], len(court["points"]), court["handled"], court["failed"]) == (
        "day", 96, 1, 1)


@pytest.mark.parametrize("query, code", [("window=week", "bad_window"),
                                         ("route=no_such_route", "bad_route"),
                                         ("route=" + "x" * 5000, "bad_route")])
def test_a_window_or_route_it_does_not_know_is_refused(browser, query, code):
    browser.login("sun", PASSWORDS["sun"])
    answer = browser.get("/api/overview/throughput?" + query)
    assert answer.status_code == 400 and answer.json["error"]["code"] == code


def test_the_audit_administrator_may_not_read_the_throughput(browser):
    browser.login("qian", PASSWORDS["qian"])
    assert browser.get("/api/overview/throughput").status_code == 403


def test_the_page_offers_the_periods_and_the_queued_routes_and_loads_its_script(browser,
                                                                              chinese):
    browser.login("sun", PASSWORDS["sun"])
    page = browser.get("/overview").get_data(as_text=True)
    for element in ('id="throughput-chart"', 'id="throughput-window"', 'id="warnings"',
                    '<option value="court_order">', "/static/overview.js", "吞吐量与错误率",
                    "最近告警"):
        assert element in page
    assert "own_properties_query" not in page
    assert browser.get("/static/overview.js").status_code == 200


# ------------------------------------------------------------------ recent warnings

def _record(name: str, message: str, *, level: int = logging.WARNING, at: float = NOW,
            **extra: Any) -> logging.LogRecord:
    record = logging.LogRecord(name, level, __file__, 1, message, (), None)
    record.created = at
    record.__dict__.update(extra)
    return record


def test_a_process_keeps_its_last_warnings_only_masked_and_only_the_hubs():
    ring = RecentWarnings(size=3, mask=Masker().text)
    for i in range(5):
        ring.handle(_record("bdchub.connectors.resilience", f"circuit {i}", at=NOW + i,
                            event="breaker.changed"))
    ring.handle(_record("bdchub.sandbox.court", "the simulated court is down"))
    ring.handle(_record("urllib3", "a library's warning"))
    ring.handle(_record("bdchub.routes.engine", "details", level=logging.INFO))
    ring.handle(_record("bdchub.web.intake", f"refused the signature of {ID_NUMBER}",
                        at=NOW + 9, event="signature.refused", tenant=TENANT))
    kept = ring.recent()
    assert [w["message"] for w in kept[:2]] == ["circuit 3", "circuit 4"]
    assert len(kept) == 3
    assert kept[-1]["event"] == "signature.refused" and kept[-1]["tenant"] == TENANT
    assert ID_NUMBER not in kept[-1]["message"] and "3206" in kept[-1]["message"]


def test_the_reporter_catches_what_the_hub_logs_while_it_runs_into_its_report():
    reporter = StatusReporter(SimpleNamespace(masking=Masker()))
    root = logging.getLogger()
    root.addHandler(reporter.warnings)  # what start() does
    try:
        logging.getLogger("bdchub.routes.engine").warning(
            "route court_order: message parked at step 2:to", extra={"event": "message.parked"})
    finally:
        root.removeHandler(reporter.warnings)
    logging.getLogger("bdchub.routes.engine").warning("after the process stopped")
    assert [w["event"] for w in reporter.warnings.recent()] == ["message.parked"]


def _report(process: str, pid: int, warnings: list[dict[str, Any]]) -> dict[str, Any]:
    return {"process": process, "started_at": NOW - 100, "reported_at": NOW,
            "report": {"host": "hub-1", "pid": pid, "warnings": warnings}}


def _warning(at: float, message: str, tenant: str = "") -> dict[str, Any]:
    return {"at": at, "level": "WARNING", "logger": "bdchub", "message": message,
            "event": "", "route": "", "tenant": tenant}


def test_the_warnings_of_two_processes_are_merged_newest_first_and_bounded():
    reports = [_report("hub-1:11:1", 11, [_warning(NOW - 30, "a"), _warning(NOW - 10, "c")]),
               _report("hub-1:12:1", 12, [_warning(NOW - 20, "b"), _warning(NOW - 5, "d")])]
    merged = recent_warnings(reports)
    assert [(w["message"], w["pid"]) for w in merged] == [("d", 12), ("c", 11), ("b", 12),
                                                          ("a", 11)]
    assert merged[0]["process"] == "hub-1:12:1"
    assert [w["message"] for w in recent_warnings(reports, limit=2)] == ["d", "c"]


def test_the_overview_shows_the_warnings_of_the_operators_tenants_alone(browser, hub):
    hub.store.report_process("hub-1:11:1", started_at=NOW, at=NOW, report={
        "host": "hub-1", "pid": 11, "every": 5.0, "connectors": {}, "in_flight": {},
        "warnings": [_warning(NOW, "海门's case", TENANT), _warning(NOW + 1, "如东's case",
                                                                     "320623"),
                     _warning(NOW + 2, "the court poller failed")]})
    browser.login("sun", PASSWORDS["sun"])  # a viewer of 海门 (TENANT) alone
    doc = browser.get("/api/overview").json
    assert [w["message"] for w in doc["warnings"]] == ["the court poller failed", "海门's case"]
