"""Bad input of the county flows (issue #12, "Bad input"), sent the way each real
caller sends it to the shipped config.yaml running against the sandbox.

Each is refused with a clear error in Chinese (what a caller that asks for no
language gets), leaves a record in the hub's audit log saying what was refused
and why, and stores nothing partial: no change to the case's progress, no notice,
no payment, no verification record, no file passed on, nothing forwarded to a
department.

- a correction for an unknown or a closed case;
- a query without a purpose, or outside the client's tenant;
- a payment notification with a bad signature, or an amount that is not the order's;
- an application, or a correction, holding classified material;
- an e-certificate whose file does not hash to its metadata.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from ..demo.conftest import Flows, _flows
from ..demo.conftest import flows as flows  # noqa: F401 - the fixture, by name
from ..demo.test_e_certificates import _certified
from ..demo.test_loops import _notice

MATERIALS = "/api/v1/applications/{no}/materials"
OWN = "/api/v1/queries/own-properties"
UNIT = "/api/v1/queries/unit-status"
NOTIFY = "/api/v1/inbound/payment/notifications"
DOWNLOAD = "/api/v1/e-certificates/download"
SURVEY_FORM = {"materials": [{"name": "不动产权籍调查表", "type": "survey_report",
                              "sha256": hashlib.sha256(b"survey").hexdigest(), "size": 4096}],
               "reason": "按补正通知书补充不动产权籍调查表"}


@pytest.fixture(autouse=True)
def chinese_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hub's own default, not the test suite's English."""
    from bdchub.core import i18n

    monkeypatch.delenv("HUB_LANG", raising=False)
    i18n.set_language(None)


@pytest.fixture
def paid_flows(clean_sandbox: Any, tmp_path: Any) -> Iterator[Flows]:
    """Transfers must be paid before they are forwarded; the applicant pays when told."""
    clean_sandbox.endpoint("payment").auto_pay = None
    yield from _flows(clean_sandbox, tmp_path, env={"HUB_PAYMENT_REQUIRED_TYPES": "200"})


def _chinese(text: str) -> bool:
    return any("\u4e00" <= c <= "\u9fff" for c in text)


def _refused(flows: Flows, endpoint: str) -> list[dict[str, Any]]:
    return [r["fields"] for r in flows.hub.audit_log().records()
            if r["event"] == "inbound.rejected" and r["fields"].get("endpoint") == endpoint]


def _error(resp: requests.Response, status: int, code: str) -> str:
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert error["code"] == code
    assert _chinese(error["message"]), error["message"]
    return error["message"]


def _of(no: str):
    return lambda b: isinstance(b, dict) and (b.get("business_no") == no or b.get("YWH") == no)


def _forwarded_nothing(flows: Flows, no: str) -> None:
    """Nothing of ``no`` reached a department after the refusal (sb.received)."""
    for name in ("legacy", "tax", "trade", "gov", "window_county", "window_province",
                 "window_national", "payment"):
        assert not [r for r in flows.received(name, where=_of(no))], name


# -- a correction for an unknown or closed case ------------------------------------

def test_a_correction_for_an_unknown_or_closed_case_is_refused_audited_and_stores_nothing(
        flows: Flows):
    closed = flows.samples["refusal"]
    flows.submit("county_window", closed)
    no = closed["business_no"]
    # Closed: refused, its notice sent, nothing of its own flow still moving its stage.
    flows.wait(lambda: flows.received("window_county", path="/notices", where=lambda b: b.get(
        "business_no") == no and b.get("notice_type") == "refusal.notified"), what="notice")
    flows.wait(lambda: flows.stage(no) == "refusal", what="refusal")
    unknown = no.replace("W00003", "W00099")
    stage = (flows.progress(no)["stage"], flows.progress(no)["status"])

    answers = [flows.post("county_window", MATERIALS.format(no=n), SURVEY_FORM)
               for n in (unknown, no)]

    assert unknown in _error(answers[0], 404, "not_found")
    assert no in _error(answers[1], 409, "case_closed")
    refused = _refused(flows, "/api/v1/applications/{business_no}/materials")
    assert [(r["status"], r["reason"]) for r in refused] == [
        (404, "correction_unknown_case"), (409, "correction_closed_case")]
    time.sleep(0.3)  # what was handed over would have reached a route by now
    assert flows.progress(unknown) is None
    after = flows.progress(no)
    assert (after["stage"], after["status"]) == stage
    assert after["last_type"] != "application.materials_updated"
    assert not flows.received("legacy", operation="SupplementMaterials")
    _forwarded_nothing(flows, unknown)
    assert not [h for h in flows.trace(no) + flows.trace(unknown)
                if h["route"] == "material_corrections"]


# -- a query without a purpose or outside the client's tenant ----------------------

def test_a_query_without_a_purpose_is_refused_audited_and_asks_nothing(flows: Flows):
    owner = flows.sb.data["people"][0]
    asked = len(flows.received("legacy", operation="QueryProperties"))

    answer = flows.post("county_window", OWN, {"person": {
        "name": owner["name"], "id_type": "1", "id_number": owner["cert_num"]}})

    assert "查询目的" in _error(answer, 422, "schema_violation")
    [refused] = _refused(flows, OWN)
    assert (refused["reason"], refused["violations"]) == ("purpose_missing", ["$.purpose"])
    assert len(flows.received("legacy", operation="QueryProperties")) == asked
    assert owner["cert_num"] not in json.dumps(flows.hub.audit_log().records(),
                                               ensure_ascii=False)


def test_a_query_outside_the_clients_tenant_is_refused_and_audited(flows: Flows):
    unit = flows.sb.data["units"][1]
    elsewhere = "320611" + unit[6:]
    asked = len(flows.received("legacy", operation="QueryUnit"))

    # Acting for another county: refused at the door.
    other_tenant = requests.post(  # signed like flows.post, with the tenant it claims
        flows.service.url + UNIT, timeout=30, **_signed(flows, "bank_jhrcb", UNIT, {
            "purpose": "贷前审查", "unit_code": elsewhere}, {"X-Tenant": "320611"}))
    # Another county's unit asked of this one: the route answers 404 itself.
    other_unit = flows.post("bank_jhrcb", UNIT, {"purpose": "贷前审查", "unit_code": elsewhere})

    assert "320611" in _error(other_tenant, 403, "tenant_forbidden")
    assert _error(other_unit, 404, "not_found")
    refused = _refused(flows, UNIT)
    assert [(r["status"], r["code"]) for r in refused] == [(403, "tenant_forbidden"),
                                                          (404, "not_found")]
    assert refused[1]["reason"] == "route_refused"
    assert (refused[1]["route"], refused[1]["type"], refused[1]["client"]) == (
        "unit_status_query", "query.unit_status", "bank_jhrcb")
    assert len(flows.received("legacy", operation="QueryUnit")) == asked


def _signed(flows: Flows, client: str, path: str, body: dict[str, Any],
            headers: dict[str, str]) -> dict[str, Any]:
    from bdchub.web.signing import signed_headers

    raw = json.dumps(body, ensure_ascii=False).encode("utf-8")
    c = flows.config["inbound"]["clients"][client]
    return {"data": raw, "headers": {"Content-Type": "application/json; charset=utf-8",
                                     **headers, **signed_headers(c["app_key"], c["app_secret"],
                                                                 "POST", path, raw)}}


# -- a payment notification with a bad signature or another amount ------------------

def test_a_payment_notice_badly_signed_or_for_another_amount_is_refused_and_pays_nothing(
        paid_flows: Flows):
    flows = paid_flows
    body = copy.deepcopy(flows.samples["transfer"])
    no = body["business_no"]
    flows.submit("county_window", body)
    platform = flows.sb.endpoint("payment")
    order = flows.wait(lambda: platform.order_of(no), what="payment order")
    flows.wait(lambda: _waiting_for_payment(flows, no), what="the wait for payment")
    before = flows.progress(no)
    notice = {"business_no": no, "order_no": order["order_no"], "amount": order["total"],
              "paid_at": "2024-05-07T10:00:00+08:00", "trade_no": "20240507000000000001",
              "pay_channel": "wechat", "pay_state": "paid"}

    forged = requests.post(flows.service.url + NOTIFY, timeout=30, **_forged(flows, notice))
    # The applicant paid; the platform's notice says 1 yuan where the order is 90.
    assert platform.pay(no, amount="1.00")["status"] == 422
    other_amount = flows.post("payment", NOTIFY, {**notice, "amount": "1.00"})

    assert _error(forged, 401, "bad_signature")
    assert "amount_matches" in _error(other_amount, 422, "schema_violation")
    refused = _refused(flows, NOTIFY)
    assert [(r["code"], r.get("violations")) for r in refused] == [
        ("bad_signature", None), ("schema_violation", ["$.amount_matches"]),
        ("schema_violation", ["$.amount_matches"])]
    assert refused[2]["business_no"] == no and refused[2]["route"] == "payment_notification"
    # Nothing paid: no receipt kept, the case still waits, the register heard nothing.
    assert "payment" not in {r["kind"] for r in flows.hub.store.verifications_for(no)}
    assert _waiting_for_payment(flows, no)
    assert flows.progress(no)["stage"] == before["stage"]
    assert not flows.received("legacy", operation="SubmitApplication", where=_of(no))


def _waiting_for_payment(flows: Flows, no: str) -> bool:
    waiting = flows.hub.store.waiting_correlations(flows.hub.tenant, no)
    return any("payment.confirmed" in (json.loads(w["types"]) if isinstance(w["types"], str)
                                       else w["types"]) for w in waiting)


def _forged(flows: Flows, body: dict[str, Any]) -> dict[str, Any]:
    """The platform's notice signed with a secret that is not its push secret."""
    from bdchub.web.signing import signed_headers

    raw = json.dumps(body, ensure_ascii=False).encode("utf-8")
    key = flows.config["inbound"]["clients"]["payment"]["app_key"]
    return {"data": raw, "headers": {"Content-Type": "application/json; charset=utf-8",
                                     **signed_headers(key, "not-the-push-secret-0123456789",
                                                      "POST", NOTIFY, raw)}}


# -- classified material -------------------------------------------------------------

def test_an_application_holding_classified_material_is_refused_audited_and_checks_nothing(
        flows: Flows):
    body = copy.deepcopy(flows.samples["first"])
    body["materials"].append({"name": "宗地图.dxf", "type": "spatial_data", "classified": True,
                              "sha256": hashlib.sha256(b"dxf").hexdigest(), "size": 3})
    no = body["business_no"]
    flows.submit("county_window", body)

    notice = _notice(flows, "window_county", no, "refusal.notified")
    assert "宗地图.dxf" in notice["reason"] and "现场提交" in notice["reason"]
    [audited] = flows.wait(lambda: [r["fields"] for r in flows.hub.audit_log().records()
                                    if r["event"] == "application.refused"
                                    and r["fields"]["business_no"] == no], what="the audit")
    assert (audited["reason"], audited["materials"], audited["route"]) == (
        "classified_material", ["宗地图.dxf"], "online_application")
    # No department checked anything; the refusal itself is offered for evaluation (好差评).
    assert {r["kind"] for r in flows.hub.store.verifications_for(no)} <= {"evaluation_request"}
    assert not flows.received("legacy", where=_of(no))


def test_a_correction_holding_classified_material_is_refused_and_the_case_keeps_waiting(
        flows: Flows):
    body = copy.deepcopy(flows.samples["first"])
    body["business_no"] = body["business_no"].replace("W00002", "W00052")
    body["unit_codes"] = [flows.sb.data["legacy"]["correction_units"][0]]
    no = body["business_no"]
    flows.submit("county_window", body)
    flows.wait(lambda: flows.stage(no) == "correction", what="stage correction")
    drawing = {"name": "宗地图.dxf", "type": "spatial_data", "classified": True,
               "sha256": hashlib.sha256(b"dxf").hexdigest(), "size": 3}

    answer = flows.post("county_window", MATERIALS.format(no=no),
                        {"materials": [drawing], "reason": "补充宗地图"})

    message = _error(answer, 422, "classified_material")
    assert "宗地图.dxf" in message and "现场提交" in message
    [refused] = _refused(flows, "/api/v1/applications/{business_no}/materials")
    assert refused["reason"] == "classified_material"
    assert refused["violations"] == ["$.materials[0].classified"]
    time.sleep(0.3)
    assert flows.stage(no) == "correction"
    assert flows.progress(no)["last_type"] != "application.materials_updated"
    assert not flows.received("legacy", operation="SupplementMaterials", where=_of(no))


# -- an e-certificate whose file differs from its metadata ---------------------------

def test_an_e_certificate_file_that_differs_from_its_hash_is_refused_and_not_passed_on(
        flows: Flows):
    licence = _certified(flows)
    flows.sb.endpoint("gov").tamper_file(licence["license_id"], "ofd")

    answer = flows.post("county_window", DOWNLOAD, {"licence_number": licence["license_no"]})

    assert "SHA-256" in _error(answer, 502, "file_hash_mismatch")
    assert answer.headers.get("X-Content-SHA256") is None
    [refused] = _refused(flows, DOWNLOAD)
    assert refused["business_no"] == licence["business_no"]
    assert refused["expected_sha256"] == licence["files"]["ofd"]["sha256"]
    assert refused["actual_sha256"] not in ("", refused["expected_sha256"])
    assert not [r for r in flows.hub.audit_log().records() if r["event"] == "inbound.file_sent"]
