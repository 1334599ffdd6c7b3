"""What every browser test of the console shares: headless Chromium (Debian's
``chromium`` and ``chromium-driver``) driven by Selenium, a hub running the
shipped config on the sandbox with one operator of each role, and the helpers a
test uses to log in, wait and post as the page would.

The fixtures (``browser``, ``hub``, ``shots``) are in this folder's conftest.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import IN_CI

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402

PASSWORDS = {"wang": ("system_admin", "Xitong-Guanli-2024"),
             "zhou": ("security_admin", "Anquan-Guanli-2024"),
             "qian": ("audit_admin", "Shenji-Guanli-2024"),
             "sun": ("viewer", "Zhidu-Chakan-2024")}
WAIT = 40.0
#: role -> where its login lands: the audit administrator has no overview to read.
LANDING = {"system_admin": "/console/overview", "security_admin": "/console/overview",
           "viewer": "/console/overview", "audit_admin": "/console/audit"}


def unavailable(message: str) -> None:
    if IN_CI:
        pytest.fail(message + " (CI=true: the browser tests need chromium and chromium-driver)")
    pytest.skip("SKIPPED LOUDLY: " + message)


def until(condition: Callable[[], Any], what: str, seconds: float = WAIT) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        try:
            value = condition()
        except Exception:  # noqa: BLE001 - the page is between two renderings
            value = None
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def only_the_hub(driver: Any, origin: str) -> None:
    """Every resource the page loaded came from the hub itself."""
    urls = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
        ".concat([location.href])")
    assert urls and all(u.startswith(origin + "/") for u in urls), urls


def login(driver: Any, url: str, name: str) -> None:
    driver.delete_all_cookies()
    driver.get(url + "/console/login")
    driver.find_element(By.ID, "username").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(PASSWORDS[name][1])
    driver.find_element(By.ID, "login-button").click()
    until(lambda: driver.current_url.endswith(LANDING[PASSWORDS[name][0]])
           or driver.find_element(By.ID, "login-message").text, f"{name}'s login")
    # Each role lands on the first page of the navigation it may read.
    assert driver.current_url.endswith(LANDING[PASSWORDS[name][0]]), \
        driver.find_element(By.ID, "login-message").text


def post(driver: Any, path: str, body: dict[str, Any]) -> int:
    """A POST from the page with the session and its CSRF token: the request a
    button would make, made without the button."""
    return driver.execute_async_script("""
        const [path, body, done] = arguments;
        fetch(path, {method: 'POST', credentials: 'same-origin',
                     headers: {'Content-Type': 'application/json',
                               'X-CSRF-Token': document.querySelector(
                                   'meta[name=csrf-token]').content},
                     body: JSON.stringify(body)}).then(r => done(r.status));
    """, path, body)


