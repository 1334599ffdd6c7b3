"""config.province.yaml (the province hub) and examples/province/county.yaml (a
county hub's side) pass `hub check`; the province's routes, run on fakes, send
each department result to its county hub, keep the county's acknowledgement per
message, answer the court once the county has the order, and dead-letter a code
of no county; the county's province-link blocks also fit into config.yaml."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from bdchub.core.config import check_text, load
from bdchub.routes.middleware import MetricsMiddleware
from bdchub.routes.runtime import Hub

from .helpers import Clock, Sleeps, fake

ROOT = Path(__file__).resolve().parents[2]
PROVINCE = ROOT / "config.province.yaml"
COUNTY = ROOT / "examples" / "province" / "county.yaml"
COUNTIES = ("320684", "320682", "320681")


def hub_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "hub.py"), "--lang", "en", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=60, env=env)


def test_the_province_config_passes_hub_check():
    result = hub_cli("check", "-c", str(PROVINCE))
    assert result.returncode == 0, result.stderr
    assert "configuration is valid" in result.stdout


@pytest.mark.parametrize("county", COUNTIES)
def test_the_county_example_passes_hub_check_for_each_county(county):
    import os

    result = hub_cli("check", "-c", str(COUNTY), env={**os.environ, "HUB_TENANT": county})
    assert result.returncode == 0, result.stderr
    assert f"tenant {county}" in result.stdout


def test_the_county_example_province_link_fits_into_the_shipped_county_config():
    """The four blocks county.yaml marks 【接省级枢纽】, added to config.yaml as its
    header says, with the province's windows left to the province."""
    config = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    county = yaml.safe_load(COUNTY.read_text(encoding="utf-8"))
    client = config["inbound"]["clients"]["province_hub"] = county["inbound"]["clients"][
        "province_hub"]
    # config.yaml's own routes publish tax.cleared (from its tax bureau's push): a hub
    # event there, which the province may send only as one it owns (county.yaml says so)
    client.update(tenants=[config["tenant"]], owns=["tax.cleared"],
                  sends=["court.order_received", "application.submitted"])
    config["connectors"]["province"] = county["connectors"]["province"]
    config["routes"]["progress_to_province"] = county["routes"]["progress_to_province"]
    config["pollers"]["court_orders"]["enabled"] = False
    config["routes"]["court_ack"]["enabled"] = False
    fanout = config["routes"]["progress_fanout"]["steps"][-1]["to"]
    fanout["recipients"] = [r for r in fanout["recipients"] if r["connector"] == "window_county"]

    report = check_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False),
                        file="config.yaml", environ={"HUB_METRICS_LISTEN": "127.0.0.1:9108"})

    assert ("province", "hub") in report.connectors


@pytest.fixture
def province():
    connectors = {f"county_{c}": fake(f"county_{c}", lambda op, payload, ctx: {
        "id": ctx.message_id, "status": "accepted", "hub": ctx.tenant}) for c in COUNTIES}
    connectors["court"] = fake("court", Ack={"Acknowledged": 1})
    connectors["window_province"] = fake("window_province", report_progress={"ok": True})
    connectors["window_national"] = fake("window_national", report_progress={"ok": True},
                                         send_result={"ok": True})
    hub = Hub.from_config(load(PROVINCE, environ={}), broker="memory://", store="sqlite://",
                          connectors=connectors, metrics=MetricsMiddleware(CollectorRegistry()),
                          clock=Clock(), sleep=Sleeps())
    yield hub, connectors
    hub.kill()


def clear_tax(hub: Hub, business_no: str) -> None:
    """The province's tax bureau cleared ``business_no``; the province hub runs."""
    hub.send("tax.cleared", {"business_no": business_no, "status": "paid"}, tenant="320000",
             business_no=business_no)
    hub.run_until_idle()


def called(connectors: dict[str, Any], name: str) -> list[tuple[str, str, str]]:
    return [(op, ctx.tenant, ctx.business_no) for op, _payload, ctx in connectors[name].calls]


def test_a_tax_clearance_goes_to_the_county_of_its_business_number_with_its_ack_kept(province):
    hub, connectors = province
    clear_tax(hub, "3206822026000007")

    assert called(connectors, "county_320682") == [("tax.cleared", "320682", "3206822026000007")]
    assert not connectors["county_320684"].calls and not connectors["county_320681"].calls
    [ack] = [r for r in hub.store.verifications_for("3206822026000007")
             if r["kind"] == "county_ack"]
    assert ack["connector"] == "county_320682" and ack["result"]["status"] == "accepted"


def test_a_code_of_haimen_after_2020_reaches_the_hub_configured_under_its_former_code(province):
    hub, connectors = province
    clear_tax(hub, "3206142026000001")

    assert called(connectors, "county_320684") == [("tax.cleared", "320684", "3206142026000001")]


def test_a_court_order_goes_to_the_county_of_its_unit_and_the_court_is_answered_after(province):
    hub, connectors = province
    order = {"OrderId": "FY320000000001", "Kind": "SEIZURE", "CaseNo": "（2026）苏06执1号",
             "CourtName": "南通市中级人民法院", "UnitCode": "320681413201GB90001F00000001"}
    hub.send("court.order_received", order, tenant="320000", business_no="FY320000000001")
    hub.run_until_idle()

    assert called(connectors, "county_320681") == [
        ("court.order_received", "320681", "FY320000000001")]
    [(op, payload, _ctx)] = connectors["court"].calls
    assert (op, payload) == ("Ack", {"OrderId": ["FY320000000001"]})


def test_an_unknown_division_code_is_dead_lettered_with_its_reason_and_sent_nowhere(province):
    hub, connectors = province
    clear_tax(hub, "9999992026000001")

    assert not any(connectors[f"county_{c}"].calls for c in COUNTIES)
    [dead] = hub.dlq_list("tax_cleared_down")
    assert "999999 (from '9999992026000001') is not a GB/T 2260 code" in dead["last_error"]


def test_progress_from_a_county_reaches_the_province_and_national_windows(province):
    hub, connectors = province
    progress = {"business_no": "3206812026000003", "tenant": "320681", "stage": "application",
                "status": "in_progress", "time": "2026-05-08T09:00:00+08:00",
                "organisation": {"name": "启东市不动产登记中心"}}
    hub.send("progress.reported", progress, tenant="320681", business_no="3206812026000003")
    hub.run_until_idle()

    for window in ("window_province", "window_national"):
        assert called(connectors, window) == [
            ("report_progress", "320681", "3206812026000003")]
