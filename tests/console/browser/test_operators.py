"""The operators page in a real browser: the security administrator adds a viewer
with a reason (a weak password first, refused in the dialog in Chinese), the new
viewer logs in and sees only the viewer's pages, the security administrator
disables the account, and the viewer's next login is refused. Screenshot
``operators.png``.
"""

from __future__ import annotations

from typing import Any

import pytest

from bdchub.console.frame import NAV
from bdchub.console.roles import allowed

from .drive import By, login, only_the_hub, until

pytestmark = pytest.mark.slow

NEW = "zhao"
PASSWORD = "Chuangkou-Renyuan-2025"


def _row(driver: Any, name: str) -> Any:
    return driver.find_element(By.CSS_SELECTOR, f'#operators tr[data-username="{name}"]')


def _confirm(driver: Any, reason: str) -> None:
    reason_box = driver.find_element(By.ID, "operator-reason")
    reason_box.clear()
    reason_box.send_keys(reason)
    driver.find_element(By.ID, "operator-ok").click()


def _log_in_as_the_new_viewer(driver: Any, url: str) -> str:
    """Log in as the account the test made: the URL reached, or the refusal's words."""
    driver.delete_all_cookies()
    driver.get(url + "/console/login")
    driver.find_element(By.ID, "username").send_keys(NEW)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.ID, "login-button").click()
    return until(lambda: driver.current_url if "/login" not in driver.current_url
                 else driver.find_element(By.ID, "login-message").text,
                 "the new viewer's login")


def _audited(hub: Any, event: str) -> list[dict[str, Any]]:
    return [r["fields"] for r in hub.hub.audit_log().records() if r["event"] == event]


def test_the_security_administrator_adds_a_viewer_and_disables_them(hub, browser, shots,
                                                                     chinese):
    from selenium.webdriver.support.ui import Select

    url, tenant = hub.service.url, hub.hub.tenant
    login(browser, url, "zhou")
    browser.find_element(By.CSS_SELECTOR, 'nav a[href="/console/operators"]').click()
    until(lambda: browser.find_element(By.ID, "add-operator"), "the operators page").click()
    browser.find_element(By.ID, "new-username").send_keys(NEW)
    Select(browser.find_element(By.ID, "new-role")).select_by_value("viewer")
    browser.find_element(By.ID, "operator-tenants").send_keys(tenant)
    browser.find_element(By.ID, "operator-password").send_keys("zhao12345")
    _confirm(browser, "新入职窗口人员，只读查看进度")
    refusal = until(lambda: browser.find_element(By.ID, "operator-error").text,
                    "the weak password's refusal")
    assert "密码" in refusal  # in Chinese, in the dialog still open
    browser.find_element(By.ID, "operator-password").clear()
    browser.find_element(By.ID, "operator-password").send_keys(PASSWORD)
    browser.save_screenshot(str(shots / "operators-add.png"))
    _confirm(browser, "新入职窗口人员，只读查看进度")
    until(lambda: browser.find_element(By.ID, "operators-message").get_attribute("data-done")
          == "add", "the account added")
    assert "只读用户" in _row(browser, NEW).text and tenant in _row(browser, NEW).text
    browser.save_screenshot(str(shots / "operators.png"))
    only_the_hub(browser, url)
    [added] = [f for f in _audited(hub, "operator.added") if f["username"] == NEW]
    assert added["by"] == "zhou" and added["reason"] == "新入职窗口人员，只读查看进度"
    assert added["remote"] == "127.0.0.1"

    # The new viewer logs in and sees the viewer's pages, and only them.
    assert _log_in_as_the_new_viewer(browser, url).endswith("/console/overview")
    links = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR,
                                                                    "header nav a")]
    assert links == [f"{url}/console/{href}" for href, _l, action in NAV
                     if allowed(["viewer"], action)]
    browser.get(url + "/console/operators")
    assert browser.find_element(By.ID, "refusal").text

    # The security administrator disables the account; the next login is refused.
    login(browser, url, "zhou")
    browser.get(url + "/console/operators")
    _row(browser, NEW).find_element(By.CSS_SELECTOR, 'button[data-action="disable"]').click()
    assert NEW in browser.find_element(By.ID, "operator-question").text
    _confirm(browser, "调离窗口岗位")
    until(lambda: _row(browser, NEW).get_attribute("data-state") == "disabled",
          "the account disabled")
    assert "已停用" in _row(browser, NEW).text
    only_the_hub(browser, url)
    [disabled] = [f for f in _audited(hub, "operator.disabled") if f["username"] == NEW]
    assert disabled["by"] == "zhou" and disabled["reason"] == "调离窗口岗位"
    assert "停用" in _log_in_as_the_new_viewer(browser, url)
    assert "/console/login" in browser.current_url
