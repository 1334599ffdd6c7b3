"""The channels and clients page in a real browser, against a hub running the
shipped config on the sandbox: the system administrator suspends a client from the
page (confirming with a reason); that client's next signed request is refused with
the intake's Chinese error once the suspension reached the process
(``inbound.suspension_refresh``); the page counts the refusal; the administrator
resumes the client and its next request is accepted. A viewer sees the page
without buttons and is refused 403. Screenshot ``channels.png``."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.demo.conftest import Flows

from .drive import WAIT, By, login, only_the_hub, post, until

pytestmark = pytest.mark.slow

CLIENT = "county_window"


def _row(driver: Any, client: str) -> Any:
    return driver.find_element(By.CSS_SELECTOR, f'#channels tr[data-client="{client}"]')


def _confirm(driver: Any, action: str, reason: str) -> None:
    _row(driver, CLIENT).find_element(By.CSS_SELECTOR, f'button[data-action="{action}"]').click()
    until(lambda: driver.find_element(By.ID, "channel-confirm").get_attribute("open")
           is not None, "the confirmation dialog")
    assert CLIENT in driver.find_element(By.ID, "channel-question").text
    driver.find_element(By.ID, "channel-reason").send_keys(reason)
    driver.find_element(By.ID, "channel-ok").click()


def _state_on_reload(driver: Any, state: str) -> Any:
    def shown() -> bool:
        driver.refresh()
        return _row(driver, CLIENT).get_attribute("data-state") == state
    return until(shown, f"{CLIENT} {state} on the page")


def _application(hub: Flows, n: int) -> dict[str, Any]:
    body = copy.deepcopy(hub.samples["first"])
    body["business_no"] = body["business_no"].replace("W00002", f"W0009{n}")
    return body


def test_the_system_administrator_suspends_and_resumes_a_client_from_the_page(
        hub, browser, shots, chinese):
    url = hub.service.url
    login(browser, url, "wang")
    browser.get(url + "/console/channels?period=hour")
    assert "渠道与客户端" in browser.page_source
    assert _row(browser, CLIENT).get_attribute("data-state") == "open"
    only_the_hub(browser, url)

    _confirm(browser, "suspend", "代办材料造假，暂停受理")
    _state_on_reload(browser, "suspended")
    assert "代办材料造假，暂停受理" in _row(browser, CLIENT).text
    suspended = [f for e, f in _audit(hub) if e == "channel.suspended"]
    assert suspended and (suspended[-1]["operator"], suspended[-1]["name"]) == ("wang", CLIENT)

    # Within the suspension refresh every request of the client is refused, in Chinese.
    def refusal() -> list[Any]:  # a Response of a 403 is falsy: hand it over in a list
        answer = hub.post(CLIENT, "/api/v1/applications", _application(hub, 1))
        return [answer] if answer.status_code == 403 else []
    [refused] = hub.wait(refusal, timeout=WAIT, what="the suspended client's request refused")
    assert refused.json()["error"]["code"] == "channel_suspended"
    assert "已被暂停" in refused.json()["error"]["message"]

    def refusal_counted() -> bool:
        browser.refresh()
        return int(_row(browser, CLIENT).get_attribute("data-refused")) >= 1
    until(refusal_counted, "the refusal in the client's counts")
    assert "channel_suspended" in _row(browser, CLIENT).text
    browser.save_screenshot(str(shots / "channels.png"))
    only_the_hub(browser, url)

    _confirm(browser, "resume", "整改完毕，恢复受理")
    _state_on_reload(browser, "open")
    resumed = [f for e, f in _audit(hub) if e == "channel.resumed"]
    assert resumed and (resumed[-1]["operator"], resumed[-1]["reason"]) == (
        "wang", "整改完毕，恢复受理")
    hub.wait(lambda: hub.post(CLIENT, "/api/v1/applications",
                              _application(hub, 2)).status_code == 202,
             timeout=WAIT, what="the resumed client's request accepted")

    def acceptance_counted() -> bool:
        browser.refresh()
        return int(_row(browser, CLIENT).get_attribute("data-accepted")) >= 1
    until(acceptance_counted, "the accepted request in the client's counts")


def test_a_viewer_sees_the_channels_without_buttons_and_is_refused(hub, browser):
    url = hub.service.url
    login(browser, url, "sun")
    browser.get(url + "/console/channels")
    assert _row(browser, CLIENT)
    assert not browser.find_elements(By.CSS_SELECTOR, "#channels button[data-action]")
    only_the_hub(browser, url)
    assert post(browser, "/console/api/channels/suspend",
                {"kind": "client", "name": CLIENT, "reason": "试试"}) == 403
    assert hub.hub.store.suspensions() == []


def _audit(hub: Flows) -> list[tuple[str, dict[str, Any]]]:
    return [(r["event"], r["fields"]) for r in hub.hub.audit_log().records()]
