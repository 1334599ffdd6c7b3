"""Direct channels (guide §三(一)6) through config.yaml and the sandbox: developers and
agencies submit batches like the bank; every channel is counted; an operator suspends
a client or a channel (``hub channel suspend``) and every hub on the store refuses it
until it is resumed.
"""

from __future__ import annotations

import copy
import json
import random
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from bdchub.demo.samples import material, now_iso, person

ROOT = Path(__file__).resolve().parents[2]


def _numbers() -> tuple[str, str]:
    """A tag for this test's business numbers (the session sandbox remembers them all)."""
    tag = uuid.uuid4().hex[:4].upper()
    return tag, f"320684{now_iso()[:4]}{tag}"


def _unit() -> str:
    # A code of its own: no seeded filing, court order or refusal rule applies to it.
    return f"320684413219GB{random.randrange(10_000, 99_999)}F{random.randrange(10**7, 10**8)}"


def _developer(flows) -> dict[str, Any]:
    company = flows.sb.data["companies"][2]  # a developer with a licence at market (存续)
    return {"name": company["company_name"], "id_type": "8", "id_number": company["uscc"],
            "co_ownership": "0"}


def _application(no: str, registration_type: str, applicants: list, *, obligors=None,
                 kinds=("application_form", "identity_document"), channel: str) -> dict:
    names = {"application_form": "不动产登记申请书", "identity_document": "申请人身份证明",
             "ownership_document": "权属来源证明", "contract": "买卖合同",
             "certificate": "不动产权证书"}
    body = {"business_no": no, "tenant": "320684", "registration_type": registration_type,
            "right_type": "4", "unit_codes": [_unit()], "applicants": applicants,
            "materials": [material(no, names[k], "ownership_document" if k == "certificate"
                                   else k) for k in kinds],
            "channel": channel, "submitted_at": now_iso()}
    if obligors:
        body["obligors"] = obligors
    return body


def _first(flows, no: str, channel: str) -> dict:
    return _application(no, "100", [_developer(flows)], channel=channel,
                        kinds=("application_form", "identity_document", "ownership_document"))


def _advance_notice(flows, no: str, channel: str) -> dict:
    buyer = person(flows.sb.data["people"][20])
    return _application(no, "700", [buyer], obligors=[_developer(flows)], channel=channel)


def _transfer(flows, no: str, channel: str) -> dict:
    people = flows.sb.data["people"]
    return _application(no, "200", [person(people[21])], obligors=[person(people[22])],
                        channel=channel, kinds=("application_form", "identity_document",
                                                "certificate", "contract"))


def _batch(no: str, *applications: dict) -> dict:
    return {"business_no": no, "tenant": "320684", "submitted_at": now_iso(),
            "applications": list(applications)}


def _of(no: str):
    return lambda body: isinstance(body, dict) and body.get("YWH") == no


def _channel_metrics(flows) -> dict[tuple[str, ...], float]:
    """The hub's own /metrics, by channel: (name, channel, outcome or code) -> value."""
    text = requests.get(flows.service.url + "/metrics", timeout=10).text
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("bdchub_inbound_channel_") and sample.name.endswith("_total"):
                labels = sample.labels
                found[(sample.name, labels["channel"],
                       labels.get("outcome") or labels.get("code"))] = sample.value
    return found


def _grown(before: dict, after: dict) -> dict:
    return {key: after[key] - before.get(key, 0.0) for key in after
            if after[key] != before.get(key, 0.0)}


@pytest.fixture
def refresh_now(flows):
    """The running hub reads the suspensions at every request: the tests say what a
    suspension does, not how long ``inbound.suspension_refresh`` lets it take
    (tests/web/test_channel_suspension.py holds that)."""
    flows.service.inbound_app.intake.suspensions.refresh = 0
    return flows


@pytest.fixture
def cli(flows, monkeypatch):
    """``hub …`` as an operator runs it on the hub's host: config.yaml, the same store,
    broker and data folder (key, audit log) as the running hub."""
    from bdchub.core import i18n
    from bdchub.hub import cli as hub_cli

    monkeypatch.setenv("HUB_STORE_URL", flows.config["store"]["url"])
    monkeypatch.setenv("HUB_BROKER_URL", flows.config["broker"]["url"])
    monkeypatch.setenv("HUB_DATA_DIR", str(Path(flows.config["__dir__"]) / "data"))
    runner = CliRunner()

    def run(*args: str) -> Any:
        try:
            return runner.invoke(hub_cli, ["--lang", "en", *args, "-c",
                                           str(ROOT / "config.yaml")], catch_exceptions=False)
        finally:
            i18n.set_language(None)  # --lang is the process's: the running hub's too
    return run


# -- batches -------------------------------------------------------------------

def test_a_developers_batch_is_split_and_each_case_is_registered_under_the_developer_channel(
        flows):
    tag, prefix = _numbers()
    first, advance = _first(flows, f"{prefix}D00001", "developer"), \
        _advance_notice(flows, f"{prefix}D00002", "developer")
    resp = flows.post("developer_hm", "/api/v1/developer/batches",
                      _batch(f"KF-{tag}-01", first, advance))
    assert resp.status_code == 202, resp.text
    receipt = resp.json()
    assert receipt == {"batch_no": f"KF-{tag}-01", "channel": "developer",
                       "submitter": "developer_hm", "accepted": 2,
                       "business_nos": [first["business_no"], advance["business_no"]],
                       "refused": []}
    for body in (first, advance):
        no = body["business_no"]
        sent = flows.wait(lambda no=no: flows.received("legacy", operation="SubmitApplication",
                                                       where=_of(no)), what=f"legacy {no}")
        assert sent[0]["body"]["DJLX"] == body["registration_type"]
        flows.wait(lambda no=no: flows.stage(no) == "archive", what=f"archive {no}")
        # The developer is the case's submitter: it reads the case, as its own.
        assert flows.hub.store.progress(flows.hub.tenant, no, client="developer_hm",
                                        channel="developer")
    # An advance notice ends in a proof, a first registration in a certificate.
    assert "不动产证明" in flows.sb.legacy_application(advance["business_no"])["BDCQZH"]
    assert "不动产权第" in flows.sb.legacy_application(first["business_no"])["BDCQZH"]
    # The batch's trace lists the hand-over of each application.
    trace = flows.trace(f"KF-{tag}-01")
    assert [h["route"] for h in trace if h["step"].endswith(":publish")] == [
        "direct_batch_item", "direct_batch_item"]


def test_an_agencys_batch_goes_through_and_what_an_agency_may_not_submit_is_listed_refused(
        flows):
    tag, prefix = _numbers()
    transfer, first = _transfer(flows, f"{prefix}Z00001", "agency"), \
        _first(flows, f"{prefix}Z00002", "agency")
    resp = flows.post("agency_hm", "/api/v1/agency/batches",
                      _batch(f"ZJ-{tag}-01", transfer, first))
    assert resp.status_code == 202, resp.text
    receipt = resp.json()
    assert (receipt["channel"], receipt["accepted"]) == ("agency", 1)
    assert receipt["business_nos"] == [transfer["business_no"]]
    assert receipt["refused"] == [{"business_no": first["business_no"], "registration_type": "100",
                                   "reason": "本渠道不能直接申报该登记类型"}]
    no = transfer["business_no"]
    flows.wait(lambda: flows.received("legacy", operation="SubmitApplication", where=_of(no)),
               what="the transfer at legacy")
    flows.wait(lambda: flows.stage(no) == "archive", what="archive")
    assert not flows.received("legacy", where=_of(first["business_no"]))

    # Nothing the agency may submit: the whole batch is refused, nothing goes anywhere.
    only_first = _first(flows, f"{prefix}Z00003", "agency")
    refused = flows.post("agency_hm", "/api/v1/agency/batches", _batch(f"ZJ-{tag}-02", only_first))
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "registration_type_not_allowed"
    # Another channel's batch endpoint is not the agency's to use.
    other = flows.post("agency_hm", "/api/v1/developer/batches",
                       _batch(f"ZJ-{tag}-03", _advance_notice(flows, f"{prefix}Z00004", "agency")))
    assert other.status_code == 403 and other.json()["error"]["code"] == "type_forbidden"
    assert not flows.received("legacy", where=_of(only_first["business_no"]))


def test_every_channel_is_counted_by_the_hubs_metrics_and_by_hub_channel_list(flows, cli):
    tag, prefix = _numbers()
    before = _channel_metrics(flows)
    bad = copy.deepcopy(_advance_notice(flows, f"{prefix}C00002", "developer"))
    bad["applicants"][0]["id_number"] = bad["applicants"][0]["id_number"][:-1] + (
        "0" if bad["applicants"][0]["id_number"][-1] != "0" else "1")  # a wrong check digit
    refused_unit = _first(flows, f"{prefix}C00001", "developer")
    refused_unit["unit_codes"] = [flows.sb.data["legacy"]["refuse_units"][0]]
    assert flows.post("developer_hm", "/api/v1/developer/batches",
                      _batch(f"KF-{tag}-02", refused_unit, bad)).status_code == 202
    assert flows.post("agency_hm", "/api/v1/developer/batches",
                      _batch(f"ZJ-{tag}-04", _transfer(flows, f"{prefix}C00003", "agency"))
                      ).status_code == 403
    flows.wait(lambda: flows.stage(refused_unit["business_no"]) == "refusal", what="refusal")
    flows.wait(lambda: flows.hub.dlq_list(route="online_application"), what="dead letter")

    grown = _grown(before, _channel_metrics(flows))
    assert grown[("bdchub_inbound_channel_requests_total", "developer", "accepted")] == 1
    assert grown[("bdchub_inbound_channel_requests_total", "agency", "refused")] == 1
    assert grown[("bdchub_inbound_channel_rejected_total", "agency", "type_forbidden")] == 1

    result = cli("channel", "list", "--json")
    assert result.exit_code == 0, result.output
    channels = {c["channel"]: c for c in json.loads(result.output)["channels"]}
    developer = {m["client"]: m for m in channels["developer"]["clients"]}["developer_hm"]
    assert developer["cases"] >= 2 and developer["refused"] >= 1
    assert developer["dead_letters"] >= 1 and developer["suspended"] is None
    assert {"county", "bank", "developer", "agency"} <= set(channels)


# -- suspension ------------------------------------------------------------------

def test_a_suspended_client_is_refused_with_403_audited_and_taken_again_once_resumed(
        refresh_now, cli):
    flows = refresh_now
    tag, prefix = _numbers()
    result = cli("channel", "suspend", "agency_hm", "--reason", "代办材料造假，暂停受理",
                 "--by", "ops-wang")
    assert result.exit_code == 0, result.output
    assert "suspended" in result.output

    batch = _batch(f"ZJ-{tag}-05", _transfer(flows, f"{prefix}S00001", "agency"))
    refused = flows.post("agency_hm", "/api/v1/agency/batches", batch)
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert error["code"] == "channel_suspended"
    assert "已被暂停" in error["message"]  # Chinese by default
    assert not flows.received("legacy", where=_of(f"{prefix}S00001"))
    # Reading is refused too; a client of another channel is not affected.
    read = _signed(flows, flows.service.url, "agency_hm", "GET", f"/api/v1/progress/{prefix}S00001")
    assert read.status_code == 403 and read.json()["error"]["code"] == "channel_suspended"
    assert flows.post("developer_hm", "/api/v1/developer/batches", _batch(
        f"KF-{tag}-05", _advance_notice(flows, f"{prefix}S00002", "developer"))).status_code == 202

    records = [r for r in flows.hub.audit_log().records()
               if r["event"] in ("channel.suspended", "inbound.rejected", "channel.resumed")]
    suspended = [r["fields"] for r in records if r["event"] == "channel.suspended"]
    assert suspended[-1]["name"] == "agency_hm" and suspended[-1]["by"] == "ops-wang"
    assert suspended[-1]["reason"] == "代办材料造假，暂停受理"
    rejected = [r["fields"] for r in records if r["event"] == "inbound.rejected"
                and r["fields"].get("code") == "channel_suspended"]
    assert rejected[-1]["client"] == "agency_hm" and rejected[-1]["suspended_by"] == "ops-wang"

    listed = json.loads(cli("channel", "list", "--json").output)["channels"]
    agency = {m["client"]: m for c in listed for m in c["clients"]}["agency_hm"]
    assert agency["suspended"]["reason"] == "代办材料造假，暂停受理"

    assert cli("channel", "resume", "agency_hm", "--reason", "整改完毕").exit_code == 0
    again = flows.post("agency_hm", "/api/v1/agency/batches", batch)
    assert again.status_code == 202, again.text
    flows.wait(lambda: flows.received("legacy", where=_of(f"{prefix}S00001")),
               what="the application after the resumption")
    resumed = [r["fields"] for r in flows.hub.audit_log().records()
               if r["event"] == "channel.resumed"]
    assert resumed[-1]["name"] == "agency_hm" and resumed[-1]["reason"] == "整改完毕"


def test_a_whole_channel_is_suspended_and_an_unknown_name_is_refused_by_the_command(
        refresh_now, cli):
    flows = refresh_now
    tag, prefix = _numbers()
    assert cli("channel", "suspend", "developer", "--channel", "--reason", "集中整治").exit_code == 0
    try:
        resp = flows.post("developer_hm", "/api/v1/developer/batches", _batch(
            f"KF-{tag}-06", _first(flows, f"{prefix}W00001", "developer")))
        assert resp.status_code == 403
        assert resp.json()["error"]["code"] == "channel_suspended"
        # The county window is of another channel: untouched.
        assert requests.get(flows.service.url + "/api/v1/health", timeout=10).status_code == 200
    finally:
        assert cli("channel", "resume", "developer", "--channel").exit_code == 0
    unknown = cli("channel", "suspend", "agency_hmm", "--reason", "x")
    assert unknown.exit_code == 2 and "agency_hm" in unknown.output  # did you mean


def test_two_hubs_on_one_store_both_refuse_a_suspended_client(flows, cli, tmp_path):
    from bdchub.app.service import HubService
    from bdchub.demo.environment import free_port

    config = copy.deepcopy(flows.config)
    config["inbound"]["listen"]["port"] = free_port()
    # The second hub keeps the documented staleness, shortened so the test does not wait.
    config["inbound"]["suspension_refresh"] = 0.2
    second = HubService.from_config(config, tick_interval=0.1, pollers=False, demo_secrets=True)
    second.start()
    flows.service.inbound_app.intake.suspensions.refresh = 0.2
    tag, prefix = _numbers()
    try:
        assert cli("channel", "suspend", "agency_hm", "--reason", "双机测试").exit_code == 0
        for i, url in enumerate((flows.service.url, second.url)):
            batch = _batch(f"ZJ-{tag}-{i}", _transfer(flows, f"{prefix}T0000{i}", "agency"))
            flows.wait(lambda url=url, batch=batch: _signed(
                flows, url, "agency_hm", "POST", "/api/v1/agency/batches", batch
            ).status_code == 403, what=f"refused at {url}")
        assert cli("channel", "resume", "agency_hm").exit_code == 0
        batch = _batch(f"ZJ-{tag}-9", _transfer(flows, f"{prefix}T00009", "agency"))
        flows.wait(lambda: _signed(flows, second.url, "agency_hm", "POST",
                                   "/api/v1/agency/batches", batch).status_code == 202,
                   what="taken again at the second hub")
    finally:
        second.stop(timeout=5.0)


def _signed(flows, base: str, client: str, method: str, path: str,
            body: dict | None = None) -> requests.Response:
    from bdchub.web.signing import signed_headers

    raw = b"" if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
    c = flows.config["inbound"]["clients"][client]
    headers = {"Content-Type": "application/json; charset=utf-8",
               **signed_headers(c["app_key"], c["app_secret"], method, path, raw)}
    return requests.request(method, base + path, data=raw or None, headers=headers, timeout=30)
