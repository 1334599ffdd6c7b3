"""The console in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``) driven by Selenium against a hub running the shipped
config with the sandbox's departments behind it.

A system administrator logs in, watches a department go down and come back on
the overview, finds a dead letter the registration system refused, replays it
with a reason once the fault is gone, and it completes; a viewer and an audit
administrator get no replay button and a 403 for the request itself; a search
holding a script is shown as text. Every page loads only what the hub serves. Screenshots of
each page go to ``$BDCHUB_SCREENSHOTS`` (default: the test's tmp folder).

Locally, without Chromium, these tests are skipped loudly; under ``CI=true``
they fail.
"""

from __future__ import annotations

import calendar
import time
from typing import Any

import pytest

from tests.demo.conftest import Flows

from .drive import WAIT, By, login, only_the_hub, post, until

pytestmark = pytest.mark.slow

def _connector_row(driver: Any, name: str) -> Any:
    return driver.find_element(By.CSS_SELECTOR, f'#connectors tr[data-connector="{name}"]')


def _dead_letter(hub: Flows) -> dict[str, Any]:
    """A court order without the respondent's ID number: the court poller takes it
    and the order is dead-lettered (as tests/demo/test_flows.py shows)."""
    sb = hub.sb
    order = sb.court_add_seizure(sb.data["units"][11], RespondentName="无证件号",
                                 CaseNo=f"(2026)苏0684执{time.monotonic_ns() % 10000}号")
    return hub.wait(lambda: [d for d in hub.hub.dlq_list()
                             if d["business_no"] == order["OrderId"]],
                    timeout=WAIT, what="the court order's dead letter")[0]


def _refused_by_the_register(hub: Flows) -> dict[str, Any]:
    """A seizure the registration system refuses with a SOAP Client fault (dead-lettered
    with its words, not retried); with the fault gone, a replay registers it."""
    import random

    from bdchub.sandbox.data import make_unit_code

    sb = hub.sb
    person = sb.data["people"][13]
    # A unit of its own: the session's registration system is shared, and the seeded
    # units carry other tests' rules (refused, sent back for correction …).
    unit = make_unit_code(random.Random(), sb.data["county"]["code"])
    sb.faults("legacy").set(soap_fault="client")
    try:
        order = sb.court_add_seizure(unit, RespondentName=person["name"],
                                     RespondentIdNumber=person["cert_num"],
                                     CaseNo=f"(2026)苏0684执{time.monotonic_ns() % 10000}号")
        return hub.wait(lambda: [d for d in hub.hub.dlq_list()
                                 if d["business_no"] == order["OrderId"]],
                        timeout=WAIT, what="the refused order's dead letter")[0]
    finally:
        sb.faults("legacy").clear()


def _registered_and_acknowledged(hub: Flows, order_id: str) -> bool:
    return any(h["route"] == "court_ack" and str(h["step"]).endswith(":to")
               and h["outcome"] == "ok" for h in hub.trace(order_id))


def test_a_system_administrator_watches_a_department_go_down_and_replays_a_dead_letter(
        hub, browser, shots, chinese):
    url = hub.service.url
    login(browser, url, "wang")
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "zh-CN"
    assert "概览" in browser.page_source
    until(lambda: _connector_row(browser, "tax"), "the overview's connectors")
    until(lambda: browser.find_element(By.ID, "overview").get_attribute("data-chart"),
           "the chart")
    # overview.png is test_overview.py's (throughput and warnings); this is the top.
    browser.save_screenshot(str(shots / "overview-connectors.png"))
    only_the_hub(browser, url)

    # The court's listener closes: the hub's court poller fails and its breaker opens.
    hub.sb.down("court")
    try:
        down = until(lambda: _connector_row(browser, "court").get_attribute("data-breaker")
                      == "open", "the court's breaker open on the page")
        assert _connector_row(browser, "court").get_attribute("data-health") == "down"
        assert "已打开" in _connector_row(browser, "court").text  # the breaker, in words
        browser.save_screenshot(str(shots / "overview-court-down.png"))
    finally:
        hub.sb.up("court")
    # Back: the breaker's wait over (its clock moved on), the poller's trial call closes it.
    breaker = hub.hub.connectors["court"].breaker
    breaker._clock = lambda: time.monotonic() + 3600
    until(lambda: _connector_row(browser, "court").get_attribute("data-breaker") == "closed",
           "the court back on the page")
    assert down is not None

    letter = _refused_by_the_register(hub)
    assert not _registered_and_acknowledged(hub, letter["business_no"])
    browser.get(url + "/console/dead-letters?q=" + letter["business_no"])
    row = browser.find_element(By.CSS_SELECTOR, f'#dead-letters tr[data-id="{letter["id"]}"]')
    assert letter["route"] in row.text
    browser.save_screenshot(str(shots / "dead-letters.png"))
    only_the_hub(browser, url)
    row.find_element(By.TAG_NAME, "a").click()
    until(lambda: browser.find_element(By.ID, "replay"), "the replay button").click()
    browser.find_element(By.ID, "confirm-reason").send_keys("登记系统故障已排除，重新登记查封")
    browser.save_screenshot(str(shots / "dead-letter-replay.png"))
    browser.find_element(By.ID, "confirm-ok").click()
    until(lambda: browser.find_element(By.ID, "action-message").get_attribute("data-done")
           == "replay", "the replay's answer")
    only_the_hub(browser, url)

    hub.wait(lambda: hub.hub.store.dead_letter(letter["id"])["status"] == "replayed",
             what="the dead letter marked replayed")
    audited = [fields for event, fields in _audit(hub) if event == "dead_letter.replayed"]
    assert audited and audited[-1]["operator"] == "wang"
    assert audited[-1]["reason"] == "登记系统故障已排除，重新登记查封"
    # And the replayed message completes: the register takes the seizure, the court is told.
    hub.wait(lambda: _registered_and_acknowledged(hub, letter["business_no"]), timeout=WAIT,
             what="the replayed seizure registered and acknowledged")


def _audit(hub: Flows) -> list[tuple[str, dict[str, Any]]]:
    return [(r["event"], r["fields"]) for r in hub.hub.audit_log().records()]


@pytest.mark.parametrize("name", ["sun", "qian"])
def test_a_viewer_and_an_audit_administrator_cannot_replay(hub, browser, shots, name):
    url = hub.service.url
    letter = _dead_letter(hub)
    login(browser, url, name)
    browser.get(f"{url}/console/dead-letters/show?id={letter['id']}")
    assert not browser.find_elements(By.ID, "replay")
    assert not browser.find_elements(By.ID, "drop")
    browser.save_screenshot(str(shots / f"dead-letter-{name}.png"))
    only_the_hub(browser, url)
    for action in ("replay", "drop"):
        assert post(browser, f"/console/api/dead-letters/{action}",
                     {"id": letter["id"], "reason": "试试"}) == 403
    assert hub.hub.store.dead_letter(letter["id"])["status"] == "dead"


def test_a_search_holding_a_script_is_shown_as_text_and_never_runs(hub, browser):
    from urllib.parse import quote

    url = hub.service.url
    login(browser, url, "wang")
    attack = '"><script>window.__injected = 1</script><img src=x onerror="window.__injected=2">'
    browser.get(f"{url}/console/dead-letters?q={quote(attack)}")
    assert browser.find_element(By.ID, "searched").text == attack
    assert browser.find_element(By.ID, "search").get_attribute("value") == attack
    assert browser.execute_script("return window.__injected === undefined") is True
    only_the_hub(browser, url)


def test_the_statistics_page_charts_the_applications_and_exports_them_as_csv(
        hub, browser, shots, chinese):
    from tests.console.test_statistics import _move

    store, tenant = hub.hub.store, hub.hub.tenant
    # Cases like the demo's, in January (the running hub's own cases are of today):
    # transfers from the bank, a first registration from the county window refused,
    # a mortgage still in progress.
    now = calendar.timegm((2026, 1, 15, 2, 0, 0)) + 86400.0
    for i, (no, reg, channel, stages) in enumerate([
            ("TJ-1", "200", "bank", ["application", "acceptance", "archive"]),
            ("TJ-2", "200", "bank", ["application", "acceptance"]),
            ("TJ-3", "100", "county_window", ["application", "refusal"]),
            ("TJ-4", "400", "internet", ["application"])]):
        for j, stage in enumerate(stages):
            _move(store, tenant, no, now - 86400 + i * 60 + j * 3600, stage,
                  **({"reg": reg, "channel": channel} if j == 0 else {}))
    url = hub.service.url
    login(browser, url, "wang")
    browser.find_element(By.CSS_SELECTOR, 'nav a[href="/console/statistics"]').click()
    until(lambda: browser.find_element(By.CSS_SELECTOR, '#statistics[data-chart]'),
           "the statistics page")
    browser.get(url + "/console/statistics?since=2026-01-01&until=2026-01-31")
    section = until(lambda: browser.find_element(By.CSS_SELECTOR,
                                                  '#statistics[data-chart="outcome"]'),
                     "the statistics chart")
    assert browser.find_element(By.TAG_NAME, "h1").text == "统计"
    assert section.find_elements(By.CSS_SELECTOR, "#stats-chart canvas")
    assert browser.find_element(By.ID, "total").text == "4"
    by_type = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#by-type tbody tr")]
    assert "200 转移登记 2" in by_type and "100 首次登记 1" in by_type  # the code and its name
    assert browser.find_elements(By.CSS_SELECTOR, "#stage-times tbody tr")
    by_division = [r.text for r in browser.find_elements(By.CSS_SELECTOR,
                                                         "#by-division tbody tr")]
    assert any(row.startswith(hub.hub.tenant) for row in by_division), by_division
    assert browser.find_elements(By.CSS_SELECTOR, "#by-period tbody tr")
    assert "共 4 件申请" in browser.find_element(By.ID, "summary").text
    # Over time, as a line.
    browser.find_element(By.CSS_SELECTOR, '#chart-by option[value="period"]').click()
    until(lambda: browser.find_element(By.CSS_SELECTOR, '#statistics[data-chart="period"]'),
          "the chart by period")
    browser.save_screenshot(str(shots / "statistics.png"))
    only_the_hub(browser, url)

    download = browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        fetch(document.getElementById('export-csv').href, {credentials: 'same-origin'})
          .then(r => r.text().then(t => done([r.status, r.headers.get('Content-Disposition'),
                                              r.headers.get('Content-Type'), t])));
    """)
    status, disposition, kind, text = download
    assert status == 200 and kind.startswith("text/csv")
    assert disposition.startswith('attachment; filename="statistics-')
    assert "200 转移登记,bank 银行网点,已办结（归档）,1" in text
    only_the_hub(browser, url)
