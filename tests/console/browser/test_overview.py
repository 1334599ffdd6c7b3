"""The overview's throughput and recent warnings in a real browser, against a hub
running the shipped config with the sandbox's departments behind it: after some
court orders the throughput chart has points (for the whole hub and for the court's
route), and when the court's department goes down the breaker's opening is among
the recent warnings, as the hub logged it. Screenshot ``overview.png``.
"""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

from tests.demo.conftest import Flows

from .drive import WAIT, By, login, only_the_hub, until

pytestmark = pytest.mark.slow


def _court_orders(hub: Flows, n: int) -> None:
    """``n`` seizures from the court: its poller takes them, ``court_order`` registers
    them, ``court_ack`` tells the court (as tests/demo/test_flows.py shows)."""
    import random

    from bdchub.sandbox.data import make_unit_code

    sb = hub.sb
    for i in range(n):
        person = sb.data["people"][i]
        # Units of their own: the session's registration system is shared, and the
        # seeded units carry other tests' rules (refused, sent back for correction …).
        unit = make_unit_code(random.Random(), sb.data["county"]["code"])
        order = sb.court_add_seizure(unit, RespondentName=person["name"],
                                     RespondentIdNumber=person["cert_num"],
                                     CaseNo=f"(2026)苏0684执{time.monotonic_ns() % 10000}号")
        hub.wait(lambda order=order: any(h["route"] == "court_order"
                                         for h in hub.trace(order["OrderId"])),
                 timeout=WAIT, what="the court order handled")


def _chart(driver: Any) -> Any:
    return driver.find_element(By.ID, "throughput-chart")


def _warning_rows(driver: Any, event: str) -> list[Any]:
    return driver.find_elements(By.CSS_SELECTOR, f'#warnings tr[data-event="{event}"]')


def test_the_overview_charts_the_traffic_and_lists_the_breaker_that_opened(
        hub, browser, shots, chinese):
    url = hub.service.url
    _court_orders(hub, 2)
    login(browser, url, "wang")
    until(lambda: int(_chart(browser).get_attribute("data-handled") or 0) > 0,
          "the throughput of the court orders")
    chart = _chart(browser)
    assert int(chart.get_attribute("data-points")) >= 1
    assert chart.get_attribute("data-window") == "hour"
    assert chart.find_elements(By.TAG_NAME, "canvas")  # ECharts drew it
    assert browser.find_element(By.ID, "throughput-handled").text == chart.get_attribute(
        "data-handled")

    # The pollers run under their lease in this process (the hub of the test).
    held = until(lambda: browser.find_elements(
        By.CSS_SELECTOR, '#singletons tr[data-held="yes"]'), "the singletons' holder")
    assert any(f":{os.getpid()}" in row.text for row in held), [r.text for r in held]

    # One route alone, then the last day: the page asks again at once.
    browser.find_element(By.CSS_SELECTOR, '#throughput-route option[value="court_order"]').click()
    until(lambda: _chart(browser).get_attribute("data-route") == "court_order",
          "the court's route alone")
    assert int(_chart(browser).get_attribute("data-handled")) >= 2
    browser.find_element(By.CSS_SELECTOR, '#throughput-window option[value="day"]').click()
    until(lambda: _chart(browser).get_attribute("data-window") == "day", "the last day")
    assert int(_chart(browser).get_attribute("data-points")) >= 1

    # The court's listener closes: its poller fails, the breaker opens and says so.
    hub.sb.down("court")
    try:
        row = until(lambda: _warning_rows(browser, "breaker.changed"),
                    "the breaker's warning on the page")[0]
        assert "court" in row.text
        assert row.find_element(By.CLASS_NAME, "warning-message").text
        browser.execute_script("document.getElementById('throughput-chart')"
                               ".scrollIntoView({block: 'center'})")
        browser.save_screenshot(str(shots / "overview.png"))
    finally:
        hub.sb.up("court")
        hub.hub.connectors["court"].breaker._clock = lambda: time.monotonic() + 3600
    poller = _warning_rows(browser, "poller.failed")
    assert not poller or "court" in poller[0].text
    only_the_hub(browser, url)
