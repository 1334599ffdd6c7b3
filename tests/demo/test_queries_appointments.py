"""Flows j (queries of the register) and k (appointments) of config.yaml, through the
real engine and inbound server, against the sandbox's registration system and windows.

Queries answer in the request: each says its purpose (422 without), is allowed by the
client's ``sends`` and tenants (403), is answered masked and leaves an ``inbound.query``
audit record that names who asked, why and about whom, never with the ID number in
clear. Appointments are booked at the registration system and the slot (or why not,
with other slots) goes back to the window that asked.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import uuid
from pathlib import Path
from typing import Any

import requests
import rfc8785

from bdchub.core.masking import mask_name
from bdchub.schemas import catalog

OWN = "/api/v1/queries/own-properties"
UNIT = "/api/v1/queries/unit-status"
NO_PROPERTY = "/api/v1/queries/no-property-certificates"
APPOINTMENTS = "/api/v1/appointments"


def _post(flows, client: str, path: str, body: dict[str, Any],
          headers: dict[str, str] | None = None) -> requests.Response:
    from bdchub.web.signing import signed_headers

    raw = json.dumps(body, ensure_ascii=False).encode("utf-8")
    c = flows.config["inbound"]["clients"][client]
    return requests.post(flows.service.url + path, data=raw, timeout=30, headers={
        "Content-Type": "application/json; charset=utf-8", **(headers or {}),
        **signed_headers(c["app_key"], c["app_secret"], "POST", path, raw)})


def _person(p: dict[str, Any]) -> dict[str, str]:
    return {"name": p["name"], "id_type": "1", "id_number": p["cert_num"]}


def _audit(flows) -> list[dict[str, Any]]:
    """The audit log's records as {event, **fields}."""
    path = Path(flows.config["__dir__"]) / "data" / "audit.jsonl"
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return [{"event": r["event"], **(r.get("fields") or {})} for r in records]


def _audit_text(flows) -> str:
    return (Path(flows.config["__dir__"]) / "data" / "audit.jsonl").read_text(encoding="utf-8")


def _queries(flows, **match: Any) -> list[dict[str, Any]]:
    return [r for r in _audit(flows) if r.get("event") == "inbound.query"
            and all(r.get(k) == v for k, v in match.items())]


def _register(flows) -> dict[str, dict[str, Any]]:
    return {p["unit_code"]: p for p in flows.sb.data["register"]["properties"]}


# -- j. queries ---------------------------------------------------------------

def test_a_person_asks_for_their_own_properties_and_gets_them_masked(flows):
    people = flows.sb.data["people"]
    owner = people[0]  # holds a home with their spouse (mortgaged) and one alone
    answer = _post(flows, "county_window", OWN,
                   {"query_no": "CX-OWN-1", "purpose": "购房资格审核", "person": _person(owner)})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert catalog.validate("register_extract", body) == []
    assert body["kind"] == "own_properties" and body["total"] == 2
    assert owner["cert_num"] not in answer.text and people[1]["cert_num"] not in answer.text
    assert body["person"]["id_number"] == owner["cert_num"][:6] + "*" * 8 + owner["cert_num"][-4:]
    assert body["person"]["name"] == owner["name"][0] + "*" * (len(owner["name"]) - 1)
    joint = next(u for u in body["units"] if len(u["holders"]) == 2)
    [mortgage] = joint["restrictions"]
    assert joint["restricted"] is True and mortgage["kind"] == "mortgage"
    assert mortgage["proof_no"] == _register(flows)[joint["unit_code"]]["restrictions"][0]["proof_no"]
    [asked] = flows.received("legacy", operation="QueryProperties",
                             where=lambda b: b["ZJH"] == owner["cert_num"])
    assert asked["body"]["QXDM"] == "320684"


def test_a_query_is_audited_with_who_asked_why_and_about_whom_never_the_id(flows):
    owner = flows.sb.data["people"][0]
    tag = uuid.uuid4().hex[:8]
    purpose = f"购房资格审核 {tag}"
    assert _post(flows, "province_window", OWN,
                 {"purpose": purpose, "person": _person(owner)}).status_code == 200
    [record] = _queries(flows, purpose=purpose)
    assert record["client"] == "province_window" and record["channel"] == "province"
    assert record["type"] == "query.own_properties" and record["tenant"] == "320684"
    assert record["status"] == 200 and record["total"] == 2
    assert record["subject"]["person"]["id_number"] == (
        owner["cert_num"][:6] + "*" * 8 + owner["cert_num"][-4:])
    assert owner["cert_num"] not in _audit_text(flows)


def test_unit_status_by_code_certificate_or_location_shows_its_restrictions(flows):
    units = flows.sb.data["units"]
    register = _register(flows)
    mortgaged = register[units[1]]
    by_code = _post(flows, "bank_jhrcb", UNIT, {"purpose": "抵押贷款贷前审查",
                                                "unit_code": units[1]})
    assert by_code.status_code == 200, by_code.text
    [unit] = by_code.json()["units"]
    assert catalog.validate("register_extract", by_code.json()) == []
    [mortgage] = unit["restrictions"]
    assert mortgage["kind"] == "mortgage" and mortgage["amount"].startswith(
        mortgaged["restrictions"][0]["amount"].split(".")[0])
    assert mortgage["right_holder"]["id_number"] == "913206********6W29"
    # The mortgagee is a bank (ID type 8): its name is not personal data and reads in full
    # (masking.organisations); the holders, people, keep only their surnames.
    bank = mortgaged["restrictions"][0]["holder"]
    assert mortgage["right_holder"]["name"] == bank["name"] and "*" not in bank["name"]
    assert [h["name"] for h in unit["holders"]] == [
        mask_name(h["name"]) for h in mortgaged["holders"]]
    assert mortgaged["holders"][0]["id_number"] not in by_code.text

    # 异议 and 预告 by certificate number (full-width brackets as printed), a unit by location
    for code, kind in ((units[3], "objection"), (units[2], "advance_notice")):
        cert = register[code]["certificate_no"].replace("(", "（").replace(")", "）")
        answer = _post(flows, "county_window", UNIT, {"purpose": "交易前核实", "certificate_no": cert})
        assert answer.status_code == 200, answer.text
        assert [r["kind"] for r in answer.json()["units"][0]["restrictions"]] == [kind]
    street = register[units[4]]["location"][:8]
    answer = _post(flows, "county_window", UNIT, {"purpose": "交易前核实", "location": street})
    assert units[4] in {u["unit_code"] for u in answer.json()["units"]}
    free = next(u for u in answer.json()["units"] if u["unit_code"] == units[4])
    assert free == {**free, "restricted": False, "restrictions": []}


def test_a_seizure_the_court_sent_shows_in_the_units_status(flows):
    unit = flows.sb.data["units"][11]
    flows.sb.court_add_seizure(unit, RespondentName=flows.sb.data["people"][12]["name"],
                               RespondentIdNumber=flows.sb.data["people"][12]["cert_num"])
    flows.wait(lambda: flows.received("legacy", operation="ReceiveCourtOrder",
                                      where=lambda b: b["BDCDYH"] == unit), what="seizure")
    answer = _post(flows, "bank_jhrcb", UNIT, {"purpose": "抵押贷款贷前审查", "unit_code": unit})
    assert answer.status_code == 200, answer.text
    seizures = [r for r in answer.json()["units"][0]["restrictions"] if r["kind"] == "seizure"]
    assert seizures and seizures[0]["authority"].endswith("人民法院")


def test_a_no_property_certificate_carries_its_number_content_and_hash(flows):
    data = flows.sb.data
    nobody = next(p for p in data["people"] if p["cert_num"] in data["register"]["no_property"])
    answer = _post(flows, "county_window", NO_PROPERTY,
                   {"purpose": "申请公共租赁住房", "person": _person(nobody)})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert catalog.validate("no_property_certificate", body) == []
    assert body["issued"] is True and body["certificate_no"] == body["document"]["certificate_no"]
    # Whoever holds the document checks it: SHA-256 of its canonical JSON (RFC 8785).
    assert body["document_sha256"] == hashlib.sha256(rfc8785.dumps(body["document"])).hexdigest()
    assert nobody["cert_num"] not in answer.text
    [record] = _queries(flows, type="query.no_property", certificate_no=body["certificate_no"])
    assert record["document_sha256"] == body["document_sha256"]

    owner = data["people"][0]
    refused = _post(flows, "county_window", NO_PROPERTY,
                    {"purpose": "申请公共租赁住房", "person": _person(owner)}).json()
    assert refused["issued"] is False and refused["property_count"] == 2
    assert "document" not in refused and refused["reason"]


def _get(flows, client: str, path: str) -> requests.Response:
    from bdchub.web.signing import signed_headers

    c = flows.config["inbound"]["clients"][client]
    return requests.get(flows.service.url + path, timeout=30,
                        headers=signed_headers(c["app_key"], c["app_secret"], "GET", path, b""))


def test_a_no_property_certificate_is_rendered_as_a_pdf_kept_for_the_platform_that_asked(flows):
    from pypdf import PdfReader

    data = flows.sb.data
    nobody = next(p for p in data["people"] if p["cert_num"] in data["register"]["no_property"])
    body = _post(flows, "province_window", NO_PROPERTY,
                 {"purpose": "申请购房资格", "person": _person(nobody)}).json()
    assert catalog.validate("no_property_certificate", body) == []
    document = body["document_file"]
    assert (document["media_type"], document["url"]) == (
        "application/pdf", f"/api/v1/applications/{document['id'].replace('-', '')}"
                           f"/notices/{document['id']}")

    # The platform that asked fetches the file, signed, and checks it by its SHA-256.
    fetched = _get(flows, "province_window", document["url"])
    assert fetched.status_code == 200, fetched.text
    assert fetched.headers["Content-Type"] == "application/pdf"
    assert hashlib.sha256(fetched.content).hexdigest() == document["sha256"]
    assert fetched.headers["X-Content-SHA256"] == document["sha256"]
    assert len(fetched.content) == document["size"]
    # The same renderer as the decision notices, in the embedded CJK font: the text reads
    # back, the person de-identified as in the answer.
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(fetched.content)).pages)
    assert "无房证明" in text.replace("\n", "") and body["certificate_no"] in text
    assert nobody["cert_num"] not in text and body["person"]["id_number"] in text
    # Another platform does not get it: as unknown as a missing one.
    assert _get(flows, "county_window", document["url"]).status_code == 404


def test_a_query_without_a_purpose_is_422_asks_nothing_and_is_audited(flows):
    owner = flows.sb.data["people"][0]
    before = len(flows.received("legacy", operation="QueryProperties"))
    answer = _post(flows, "county_window", OWN, {"person": _person(owner)})
    assert answer.status_code == 422
    assert answer.json()["error"]["violations"][0]["path"] == "$.purpose"
    assert len(flows.received("legacy", operation="QueryProperties")) == before
    rejected = [r for r in _audit(flows) if r.get("event") == "inbound.rejected"
                and r.get("endpoint") == OWN and r.get("code") == "schema_violation"]
    assert rejected and owner["cert_num"] not in _audit_text(flows)


def test_a_query_outside_the_clients_tenant_is_refused(flows):
    units = flows.sb.data["units"]
    # The bank acts for 320684 only.
    other = _post(flows, "bank_jhrcb", UNIT, {"purpose": "贷前审查",
                                              "unit_code": "320611" + units[1][6:]},
                  headers={"X-Tenant": "320611"})
    assert other.status_code == 403 and other.json()["error"]["code"] == "tenant_forbidden"
    # Another county's unit asked of this county: not in its register.
    elsewhere = _post(flows, "bank_jhrcb", UNIT, {"purpose": "贷前审查",
                                                  "unit_code": "320611" + units[1][6:]})
    assert elsewhere.status_code == 404
    # A bank checks units, never a person's holdings.
    person = _post(flows, "bank_jhrcb", OWN, {"purpose": "贷前审查",
                                              "person": _person(flows.sb.data["people"][0])})
    assert person.status_code == 403 and person.json()["error"]["code"] == "type_forbidden"


# -- k. appointments -------------------------------------------------------------

def _weekday(days_ahead: int = 1) -> str:
    day = dt.date.today() + dt.timedelta(days=days_ahead)
    while day.weekday() >= 5:
        day += dt.timedelta(days=1)
    return day.isoformat()


def _appointment(flows, start: str, end: str, **extra: Any) -> dict[str, Any]:
    p = flows.sb.data["people"][2]
    return {"request_no": f"YY-{uuid.uuid4().hex[:12]}", "applicant": _person(p),
            "service": "存量房转移登记", "service_code": "200",
            "office": {"name": "海门市不动产登记中心"}, "date": _weekday(),
            "time_slot": {"start": start, "end": end},
            "requested_at": dt.datetime.now().astimezone().replace(microsecond=0).isoformat(),
            **extra}


def _reply(flows, window: str, request_no: str) -> dict[str, Any]:
    return flows.wait(lambda: flows.received(
        window, path="/notices", where=lambda b: b.get("request_no") == request_no),
        what=f"appointment reply at {window}")[0]["body"]


def test_a_confirmed_appointment_goes_back_to_the_window_that_asked(flows):
    body = _appointment(flows, "14:00", "14:30")
    answer = _post(flows, "province_window", APPOINTMENTS, body)
    assert answer.status_code == 202, answer.text
    reply = _reply(flows, "window_province", body["request_no"])
    assert catalog.validate("appointment_reply", {k: v for k, v in reply.items()
                                                  if k not in ("notice_type", "receipt")}) == []
    assert reply["notice_type"] == "appointment.confirmed" and reply["outcome"] == "confirmed"
    assert reply["date"] == body["date"] and reply["time_slot"] == body["time_slot"]
    [booked] = flows.received("legacy", operation="BookAppointment",
                              where=lambda b: b["QQBH"] == body["request_no"])
    assert reply["appointment_no"].startswith("YY") and booked["body"]["QXDM"] == "320684"
    assert not flows.received("window_county", path="/notices",
                              where=lambda b: b.get("request_no") == body["request_no"])


def test_a_full_slot_is_answered_with_the_reason_and_other_slots(flows):
    body = _appointment(flows, "09:00", "09:30")  # the morning rush: always taken
    assert _post(flows, "county_window", APPOINTMENTS, body).status_code == 202
    reply = _reply(flows, "window_county", body["request_no"])
    assert reply["notice_type"] == "appointment.unavailable"
    assert reply["outcome"] == "unavailable" and "约满" in reply["reason"]
    assert "appointment_no" not in reply
    assert reply["alternatives"] and all(
        (a["date"], a["time_slot"]["start"]) > (body["date"], "09:00")
        for a in reply["alternatives"])


def test_an_appointment_for_a_case_is_in_its_progress_and_only_for_its_own_window(flows):
    body = flows.samples["correction"]
    no = body["business_no"]
    flows.submit("county_window", body)
    flows.wait(lambda: flows.stage(no) == "correction", what="progress correction")

    # Another window cannot book for a case it did not submit: as unknown as a missing one.
    stranger = _post(flows, "province_window", APPOINTMENTS,
                     _appointment(flows, "15:00", "15:30", business_no=no))
    assert stranger.status_code == 404

    mine = _appointment(flows, "15:00", "15:30", business_no=no)
    assert _post(flows, "county_window", APPOINTMENTS, mine).status_code == 202
    reply = _reply(flows, "window_county", mine["request_no"])
    assert reply["business_no"] == no and reply["outcome"] == "confirmed"
    # The case's progress lists the appointment; its stage is untouched.
    history = flows.wait(lambda: [h for h in flows.hub.progress_by_business_no(
        "320684", no)["history"] if h["type"] == "appointment.confirmed"], what="history")
    assert history[0]["route"] == "appointment_reply" and history[0]["outcome"] == "ok"
    assert flows.stage(no) == "correction"
