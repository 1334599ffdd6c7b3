"""The shipped config.yaml run in-process against the session sandbox.

``flows`` starts a hub from config.yaml (real engine, embedded SQLite broker
and store in the test's folder, inbound endpoints on a free port, the court
poller) with the sandbox's departments behind it, wires the sandbox's
callbacks to the hub and stops everything after the test. Business numbers
carry a per-test tag: the session sandbox's registration system remembers
every application it was given.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config.yaml"


class Flows:
    def __init__(self, sb: Any, service: Any, config: dict[str, Any], samples: dict[str, Any]):
        self.sb = sb
        self.service = service
        self.hub = service.hub
        self.config = config
        self.samples = samples

    def post(self, client: str, path: str, body: dict[str, Any]) -> requests.Response:
        from bdchub.web.signing import signed_headers

        raw = json.dumps(body, ensure_ascii=False).encode("utf-8")
        c = self.config["inbound"]["clients"][client]
        headers = {"Content-Type": "application/json; charset=utf-8",
                   **signed_headers(c["app_key"], c["app_secret"], "POST", path, raw)}
        return requests.post(self.service.url + path, data=raw, headers=headers, timeout=30)

    def submit(self, client: str, body: dict[str, Any]) -> None:
        resp = self.post(client, "/api/v1/applications", body)
        assert resp.status_code == 202, resp.text

    def received(self, name: str, *, path: str | None = None, operation: str | None = None,
                 where: Callable[[Any], bool] | None = None) -> list[dict[str, Any]]:
        out = []
        for r in self.sb.received(name):
            if path is not None and r["path"] != path:
                continue
            if operation is not None and r["operation"] != operation:
                continue
            if where is not None and not where(r["body"]):
                continue
            out.append(r)
        return out

    def progress(self, business_no: str) -> dict[str, Any] | None:
        return self.hub.store.progress(self.hub.tenant, business_no)

    def stage(self, business_no: str) -> str:
        return str((self.progress(business_no) or {}).get("stage") or "")

    def trace(self, business_no: str) -> list[dict[str, Any]]:
        return self.hub.trace(business_no, self.hub.tenant)

    @staticmethod
    def wait(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what or predicate}")
            time.sleep(0.05)


def prepare_departments(sb: Any, samples: dict[str, Any]) -> None:
    """The contract filing at trade and the bank at market (as the demo does)."""
    filing = samples["filing"]
    trade = sb.endpoint("trade")
    with trade.lock:
        # The session sandbox keeps earlier tests' filings: one contract per unit here.
        for no in [n for n, f in trade.filings.items() if f["unit_code"] == filing["unit_code"]]:
            del trade.filings[no]
        trade.filings[filing["filing_no"]] = dict(filing)
    bank = samples["bank"]
    market = sb.endpoint("market")
    with market.lock:
        market.companies[bank["id_number"]] = {
            "uscc": bank["id_number"], "company_name": bank["name"], "legal_rep": "王建国",
            "status": "存续", "reg_date": "2006-03-18", "reg_capital": "分支机构",
            "address": "南通市海门区人民中路1号", "reg_authority": "南通市海门区市场监督管理局"}


@pytest.fixture
def flows(clean_sandbox: Any, tmp_path: Path) -> Iterator[Flows]:
    yield from _flows(clean_sandbox, tmp_path)


@pytest.fixture
def polled_flows(clean_sandbox: Any, tmp_path: Path) -> Iterator[Flows]:
    """``flows`` with a registration system that does not call back: the shipped
    per-case poller (``pollers.legacy_progress``) enabled instead, every 0.2 s."""
    yield from _flows(clean_sandbox, tmp_path, legacy_callback=False,
                      env={"HUB_LEGACY_POLL_SECONDS": "0.2"},
                      enable=("pollers", "legacy_progress"))


def _flows(sb: Any, tmp_path: Path, *, legacy_callback: bool = True,
           env: dict[str, str] | None = None,
           enable: tuple[str, ...] = ()) -> Iterator[Flows]:
    from bdchub.app.service import HubService
    from bdchub.core.config import load
    from bdchub.demo import samples as samples_mod
    from bdchub.demo.environment import free_port, sandbox_environ

    sb.configure(auto_advance=0.1, tax_clearance_delay=0.3)
    environ = sandbox_environ(sb, inbound_port=free_port(), data_dir=tmp_path / "data",
                              HUB_COURT_POLL_SECONDS="0.2", **(env or {}))
    (tmp_path / "data").mkdir()
    config = load(CONFIG, environ=environ)
    config["__dir__"] = str(tmp_path)
    if enable:
        block = config
        for key in enable:
            block = block[key]
        block["enabled"] = True
    # The shipped config against the sandbox: its clients sign with the demo secrets.
    service = HubService.from_config(config, tick_interval=0.1, demo_secrets=True)
    service.start()
    try:
        if legacy_callback:
            sb.legacy_set_callback(service.url + "/api/v1/inbound/legacy/stage-changes")
        sb.tax_set_callback(service.url + "/api/v1/inbound/tax/clearances")
        samples = samples_mod.build(sb.data, tag=uuid.uuid4().hex[:4].upper())
        prepare_departments(sb, samples)
        yield Flows(sb, service, config, samples)
    finally:
        sb.legacy_set_callback(None)
        sb.tax_set_callback(None)
        service.stop(timeout=5.0)
