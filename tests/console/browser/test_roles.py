"""Each role in a real browser: the navigation shows exactly the pages the role may
read (``console.frame.NAV`` checked against ``console.roles.allowed``, so a page
added to either is checked too), each of those pages opens, and every other page
answers the 403 page. A page the navigation lists but no module serves yet (404)
is checked by its link alone.
"""

from __future__ import annotations

from typing import Any

import pytest

from bdchub.console.frame import NAV
from bdchub.console.roles import allowed

from .drive import PASSWORDS, By, login, only_the_hub

pytestmark = pytest.mark.slow


def status_of(driver: Any, path: str) -> int:
    """The status a GET of ``path`` answers in the browser's session."""
    return driver.execute_async_script("""
        const [path, done] = arguments;
        fetch(path, {credentials: 'same-origin', redirect: 'manual'}).then(r => done(r.status));
    """, path)


def test_each_role_sees_exactly_its_pages_and_is_refused_the_others(hub, browser, shots,
                                                                    chinese):
    url = hub.service.url
    for name, (role, _password) in PASSWORDS.items():
        login(browser, url, name)
        links = [a.get_attribute("href")
                 for a in browser.find_elements(By.CSS_SELECTOR, "header nav a")]
        mine = [href for href, _label, action in NAV if allowed([role], action)]
        assert links == [f"{url}/console/{href}" for href in mine], role
        assert len(mine) < len(NAV), f"{role} may read every page: nothing to refuse"
        for href, _label, _action in NAV:
            status = status_of(browser, f"/console/{href}")
            if status == 404:  # listed, not yet served: its link was checked above
                continue
            if href in mine:
                assert status == 200, (role, href, status)
                continue
            assert status == 403, (role, href, status)
            browser.get(f"{url}/console/{href}")
            assert browser.find_element(By.TAG_NAME, "h1").text == "无权访问", (role, href)
            assert browser.find_element(By.ID, "refusal").text, (role, href)
            # The 403 page keeps the role's own navigation, nothing more.
            assert len(browser.find_elements(By.CSS_SELECTOR, "header nav a")) == len(mine)
            only_the_hub(browser, url)
        browser.save_screenshot(str(shots / f"roles-{name}.png"))
