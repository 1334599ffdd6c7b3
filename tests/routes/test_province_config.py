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


def county_config_with_the_province_link() -> dict[str, Any]:
    """config.yaml with the five blocks county.yaml marks 【接省级枢纽】 added as its
    header says, and the province's and the nation's windows left to the province."""
    config = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    county = yaml.safe_load(COUNTY.read_text(encoding="utf-8"))
    client = config["inbound"]["clients"]["province_hub"] = county["inbound"]["clients"][
        "province_hub"]
    # config.yaml's own routes publish tax.cleared (from its tax bureau's push): a hub
    # event there, which the province may send only as one it owns (county.yaml says so)
    client.update(tenants=[config["tenant"]], owns=["tax.cleared"],
                  sends=["court.order_received", "application.submitted"])
    config["connectors"]["province"] = county["connectors"]["province"]
    for route in ("progress_to_province", "results_to_province", "e_certificates_to_province"):
        config["routes"][route] = county["routes"][route]
    config["pollers"]["court_orders"]["enabled"] = False
    for route in ("court_ack", "results_province", "results_national"):
        config["routes"][route]["enabled"] = False
    fanout = config["routes"]["progress_fanout"]["steps"][-1]["to"]
    fanout["recipients"] = [r for r in fanout["recipients"] if r["connector"] == "window_county"]
    return config


def test_the_county_example_province_link_fits_into_the_shipped_county_config():
    config = county_config_with_the_province_link()

    report = check_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False),
                        file="config.yaml", environ={"HUB_METRICS_LISTEN": "127.0.0.1:9108"})

    assert ("province", "hub") in report.connectors


def province_ack(op: str, payload: Any, ctx: Any) -> dict[str, Any]:
    """What the province hub answers an envelope (docs/federation.md)."""
    return {"id": ctx.message_id, "type": op, "tenant": ctx.tenant, "status": "accepted",
            "hub": "320000", "received_at": "2026-05-08T10:00:00+08:00"}


RESULT = {"business_no": "3206842026000011", "tenant": "320684", "registration_type": "200",
          "right_type": "4", "unit_codes": ["320684001002GB00105F00010001"],
          "registered_at": "2026-05-08T09:30:00+08:00",
          "certificate_numbers": ["苏（2026）海门市不动产权第0000011号"], "proof_numbers": []}
E_CERTIFICATE = {"business_no": "3206842026000011", "licence_type": "real_estate_certificate",
                 "licence_number": "苏（2026）海门市不动产权第0000011号", "licence_id": "EL-11"}


def test_a_linked_county_sends_its_results_to_the_province_hub_not_to_its_windows(tmp_path):
    """config.yaml with the province link: a registration result and its e-certificate
    go to the province hub (its acknowledgement kept per message) and to the county's
    own window; the province's and the nation's windows hear of them from the province."""
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(county_config_with_the_province_link(), allow_unicode=True,
                                   sort_keys=False), encoding="utf-8")
    config = load(path, environ={"HUB_METRICS_LISTEN": "127.0.0.1:9108"})
    connectors = {name: fake(name, lambda op, payload, ctx: {"ok": True})
                  for name in config["connectors"]}
    connectors["province"] = fake("province", province_ack)
    hub = Hub.from_config(config, broker="memory://", store="sqlite://", connectors=connectors,
                          metrics=MetricsMiddleware(CollectorRegistry()), clock=Clock(),
                          sleep=Sleeps())
    try:
        for type_, body in (("registration.result", RESULT),
                            ("e_certificate.issued", E_CERTIFICATE)):
            hub.send(type_, body, tenant="320684", business_no=RESULT["business_no"])
        hub.run_until_idle()

        assert sorted(op for op, _tenant, _no in called(connectors, "province")) == [
            "e_certificate.issued", "registration.result"]
        assert [op for op, *_ in called(connectors, "window_county")] == ["send_result"] * 2
        assert not connectors["window_province"].calls and not connectors["window_national"].calls
        acks = [r for r in hub.store.verifications_for(RESULT["business_no"])
                if r["kind"] == "province_ack"]
        assert sorted(a["result"]["type"] for a in acks) == [
            "e_certificate.issued", "registration.result"]
        assert {a["connector"] for a in acks} == {"province"}
    finally:
        hub.kill()


@pytest.fixture
def province():
    connectors = {f"county_{c}": fake(f"county_{c}", lambda op, payload, ctx: {
        "id": ctx.message_id, "status": "accepted", "hub": ctx.tenant}) for c in COUNTIES}
    connectors["court"] = fake("court", Ack={"Acknowledged": 1})
    connectors["window_province"] = fake("window_province", report_progress={"ok": True},
                                         send_result={"ok": True})
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


def test_a_countys_result_and_e_certificate_reach_both_windows_once_with_receipts(province):
    """What a county hub sends up (its tenant on the envelope) goes to the province's
    and the nation's window, each told the county and the level; the same envelope
    arriving again (the county sent it again under its id) is absorbed."""
    hub, connectors = province
    sent = [hub.send(type_, body, tenant="320684", business_no=RESULT["business_no"])
            for type_, body in (("registration.result", RESULT),
                                ("e_certificate.issued", E_CERTIFICATE))]
    hub.run_until_idle()
    hub.publish(sent[0])
    hub.run_until_idle()

    for window, level in (("window_province", "province"), ("window_national", "national")):
        calls = connectors[window].calls
        assert sorted(payload["result_type"] for _op, payload, _ctx in calls) == [
            "e_certificate.issued", "registration.result"], window
        for op, payload, ctx in calls:
            assert (op, payload["county"], payload["level"], ctx.tenant) == (
                "send_result", "320684", level, "320684")
    [result] = [p for _op, p, _ctx in connectors["window_national"].calls
                if p["result_type"] == "registration.result"]
    assert result["certificate_numbers"] == RESULT["certificate_numbers"]
    receipts = [r for r in hub.store.verifications_for(RESULT["business_no"])
                if r["kind"] == "result_receipt"]
    assert sorted(r["connector"] for r in receipts) == ["window_national"] * 2 + [
        "window_province"] * 2


@pytest.fixture(scope="module")
def province_config_tests() -> Any:
    """config.province.tests/, run as ``hub test -c config.province.yaml`` runs them."""
    from bdchub.app import configtest, configtest_spec

    files = configtest_spec.discover([], PROVINCE)
    offers: dict = {}
    return configtest.run([configtest_spec.load(f, PROVINCE, offers=offers) for f in files])


def test_the_province_config_passes_its_own_config_tests(province_config_tests):
    failed = [f"{r.file}::{r.name}: " + "; ".join(f"{f.location}: {f.message} {f.details}"
                                                   for f in r.failures)
              for r in province_config_tests.failed]
    assert not failed, "\n".join(failed)
    assert province_config_tests.count("passed") >= 20


def test_the_province_config_tests_run_every_route_of_the_province_config(
        province_config_tests):
    routes = set(load(PROVINCE, environ={}).get("routes") or {})
    ran = set().union(*(r.routes for r in province_config_tests.results))
    assert routes <= ran, f"routes no province config test runs: {sorted(routes - ran)}"


def test_hub_test_of_the_province_config_exits_0_with_every_case_passed():
    result = hub_cli("test", "-c", str(PROVINCE))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAILED" not in result.stdout and " passed in " in result.stdout
