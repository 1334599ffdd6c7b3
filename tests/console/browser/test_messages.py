"""The console's messages pages in a real browser (headless Chromium driven by
Selenium) against a hub running the shipped config on the sandbox.

A system administrator searches an application the hub handled by its business
number, opens its trace and sees its hops and verification records; the
registration system is made to fail so a court order parks, and with the fault
gone the administrator retries it now, with a reason: the order is registered
and the court acknowledged long before the message was due. Screenshots:
messages.png, trace.png, parked.png.
"""

from __future__ import annotations

import copy
import random
import time
from typing import Any

import pytest

from tests.demo.conftest import Flows

from .drive import WAIT, By, login, only_the_hub, until

pytestmark = pytest.mark.slow


def _submitted_application(hub: Flows) -> str:
    body = copy.deepcopy(hub.samples["transfer"])
    for material in body["materials"]:
        material["tax_related"] = False  # straight to the registration system
    no = body["business_no"]
    hub.submit("county_window", body)
    hub.wait(lambda: hub.received("legacy", operation="SubmitApplication",
                                  where=lambda b: b.get("YWH") == no),
             timeout=WAIT, what="the application at the registration system")
    return no


def _parked_court_order(hub: Flows) -> tuple[dict[str, Any], dict[str, Any]]:
    """A seizure the court hands over while the registration system answers 503:
    its court_order run retries, then parks (due in 30 s)."""
    from bdchub.sandbox.data import make_unit_code

    sb = hub.sb
    person = sb.data["people"][13]
    unit = make_unit_code(random.Random(), sb.data["county"]["code"])  # a unit of its own
    sb.faults("legacy").set(error_rate=1.0)
    try:
        order = sb.court_add_seizure(unit, RespondentName=person["name"],
                                     RespondentIdNumber=person["cert_num"],
                                     CaseNo=f"(2026)苏0684执{time.monotonic_ns() % 10000}号")
        parked = hub.wait(lambda: [p for p in hub.hub.store.parked_list()
                                   if p["business_no"] == order["OrderId"]],
                          timeout=WAIT, what="the court order parked")[0]
    finally:
        sb.faults("legacy").clear()
    return order, parked


def _registered_at(hub: Flows, order_id: str) -> float | None:
    done = [h["started_at"] for h in hub.trace(order_id)
            if h["route"] == "court_order" and h["step"].endswith(":to") and h["outcome"] == "ok"]
    return done[0] if done else None


def test_a_system_administrator_traces_a_case_and_retries_a_parked_message_now(
        hub, browser, shots, chinese):
    url = hub.service.url
    no = _submitted_application(hub)
    hub.wait(lambda: hub.hub.store.verifications_for(no), timeout=WAIT, what="its records")
    login(browser, url, "wang")

    browser.find_element(By.CSS_SELECTOR, 'nav a[href="/console/messages"]').click()
    until(lambda: browser.find_element(By.ID, "search"), "the search form").send_keys(no)
    browser.find_element(By.CSS_SELECTOR, "#message-search button[type=submit]").click()
    row = until(lambda: browser.find_element(
        By.CSS_SELECTOR, f'#cases tr[data-business-no="{no}"]'), "the case in the results")
    assert hub.hub.tenant in row.text
    browser.save_screenshot(str(shots / "messages.png"))
    only_the_hub(browser, url)

    row.find_element(By.TAG_NAME, "a").click()
    until(lambda: browser.find_element(By.ID, "trace"), "the case's trace")
    assert browser.find_element(By.ID, "case-business-no").text == no
    routes = {r.get_attribute("data-route")
              for r in browser.find_elements(By.CSS_SELECTOR, "#trace tbody tr")}
    assert "online_application" in routes
    kinds = {r.get_attribute("data-kind")
             for r in browser.find_elements(By.CSS_SELECTOR, "#verifications tbody tr")}
    assert "identity" in kinds
    # The applicant's ID number nowhere on the page: masked as the hub keeps it.
    applicant = hub.samples["transfer"]["applicants"][0]["id_number"]
    assert applicant not in browser.page_source
    browser.save_screenshot(str(shots / "trace.png"))
    only_the_hub(browser, url)

    order, parked = _parked_court_order(hub)
    assert _registered_at(hub, order["OrderId"]) is None
    browser.find_element(By.CSS_SELECTOR, 'nav a[href="/console/parked"]').click()
    row = until(lambda: browser.find_element(
        By.CSS_SELECTOR, f'#parked tr[data-id="{parked["id"]}"]'), "the parked order")
    assert "court_order" in row.text and order["OrderId"] in row.text
    browser.save_screenshot(str(shots / "parked.png"))
    only_the_hub(browser, url)

    row.find_element(By.TAG_NAME, "a").click()
    until(lambda: browser.find_element(By.ID, "retry-now"), "the retry-now button").click()
    browser.find_element(By.ID, "retry-reason").send_keys("登记系统已恢复，立即重试")
    browser.save_screenshot(str(shots / "parked-retry.png"))
    browser.find_element(By.ID, "retry-ok").click()
    until(lambda: browser.find_element(By.ID, "retry-message").get_attribute("data-done")
           == "retry", "the retry's answer")
    only_the_hub(browser, url)

    hub.wait(lambda: order["OrderId"] in hub.sb.court_acked(), timeout=WAIT,
             what="the retried order registered and the court acknowledged")
    registered = _registered_at(hub, order["OrderId"])
    assert registered is not None and registered < parked["due_at"]
    audited = [r["fields"] for r in hub.hub.audit_log().records()
               if r["event"] == "parked.retried"]
    assert audited and audited[-1]["operator"] == "wang"
    assert audited[-1]["reason"] == "登记系统已恢复，立即重试"
    assert audited[-1]["business_no"] == order["OrderId"]
