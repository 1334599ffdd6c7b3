"""The audit page in a real browser (headless Chromium, the shipped config on the
sandbox): the audit administrator finds the records of a case a window submitted
by its business number, verifies the chain (intact) and downloads an export; a
log someone edited shows as broken, at its file and line. Screenshots
audit.png and audit-broken.png."""

from __future__ import annotations

import copy
import fcntl
import os
from typing import Any

import pytest

from tests.demo.conftest import Flows

from .drive import WAIT, By, login, only_the_hub, until

pytestmark = pytest.mark.slow


def _a_case(hub: Flows) -> str:
    """A transfer the county window submits, as the demo's first case."""
    body = copy.deepcopy(hub.samples["transfer"])
    hub.submit("county_window", body)
    no = body["business_no"]
    hub.wait(lambda: [r for r in hub.hub.audit_log().records()
                      if r["event"] == "inbound.accepted"
                      and r["fields"].get("business_no") == no], timeout=WAIT,
             what="the case's inbound.accepted record")
    return no


def _verified(driver: Any) -> Any:
    driver.find_element(By.ID, "verify").click()
    return until(lambda: driver.find_element(By.CSS_SELECTOR, "#verify-result[data-ok]"),
                 "the chain verified on the page")


def test_the_audit_administrator_finds_a_case_verifies_the_chain_and_exports(
        hub, browser, shots, chinese):
    no = _a_case(hub)
    url = hub.service.url
    login(browser, url, "qian")
    browser.find_element(By.CSS_SELECTOR, 'nav a[href="/console/audit"]').click()
    until(lambda: browser.find_element(By.ID, "audit-filters"), "the audit page")
    assert browser.find_element(By.TAG_NAME, "h1").text == "审计日志"
    browser.find_element(By.ID, "business-no").send_keys(no)
    browser.find_element(By.ID, "filter").click()
    rows = until(lambda: browser.find_elements(By.CSS_SELECTOR, "#audit-records tbody tr")
                 if f"business_no={no}" in browser.current_url else None, "the case's records")
    assert {r.find_element(By.CSS_SELECTOR, "td.business-no").text for r in rows} == {no}
    assert "inbound.accepted" in [r.find_element(By.CSS_SELECTOR, "td.event").text
                                  for r in rows]
    assert "county_window" in rows[-1].text

    result = _verified(browser)
    assert result.get_attribute("data-ok") == "true"
    assert result.text.startswith("完整：")
    browser.save_screenshot(str(shots / "audit.png"))
    only_the_hub(browser, url)

    status, disposition, kind, text = browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        fetch(document.getElementById('export-csv').href, {credentials: 'same-origin'})
          .then(r => r.text().then(t => done([r.status, r.headers.get('Content-Disposition'),
                                              r.headers.get('Content-Type'), t])));
    """)
    assert status == 200 and kind.startswith("text/csv")
    assert disposition.startswith('attachment; filename="audit-hub-')
    lines = text.lstrip("\ufeff").splitlines()
    assert lines[0].startswith("序号,时间,事件,操作者,业务号")
    assert lines[1:] and all(f",{no}," in line for line in lines[1:])
    only_the_hub(browser, url)
    exported = [r["fields"] for r in hub.hub.audit_log().records()
                if r["event"] == "audit.exported"]
    assert exported and exported[-1]["operator"] == "qian"
    assert exported[-1]["business_no"] == no and exported[-1]["remote"] == "127.0.0.1"


def _tamper(path: os.PathLike[str], old: bytes, new: bytes) -> None:
    """Edit one record in place, under the writers' lock (the hub keeps writing)."""
    assert len(old) == len(new)
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        raw = os.pread(fd, os.fstat(fd).st_size, 0)
        at = raw.index(old)
        os.pwrite(fd, new, at)
    finally:
        os.close(fd)  # releases the lock


def test_an_edited_log_shows_as_broken_at_its_file_and_line(hub, browser, shots, chinese):
    no = _a_case(hub)
    path = hub.hub.audit_log().path
    line = 1 + path.read_bytes().split(f'"business_no":"{no}"'.encode())[0].count(b"\n")
    _tamper(path, f'"business_no":"{no}"'.encode(), f'"business_no":"{no[:-1]}X"'.encode())
    url = hub.service.url
    login(browser, url, "qian")
    browser.get(url + "/console/audit")
    result = _verified(browser)
    assert result.get_attribute("data-ok") == "false"
    assert result.text.startswith("已损坏")
    problems = [p.text for p in browser.find_elements(By.CSS_SELECTOR, "#verify-problems li.problem")]
    assert problems[0].startswith(f"{path.name}，第 {line} 行")
    assert "记录被改动" in problems[0]
    browser.save_screenshot(str(shots / "audit-broken.png"))
    only_the_hub(browser, url)
