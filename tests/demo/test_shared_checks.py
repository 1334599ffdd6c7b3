"""Flow a's shared-information checks (guide §四(一)1, §四(一)3) and the bank
channel's licence check, through the real engine against the sandbox's registries.

A credit code goes to the registry of its registering department (the first
character of GB 32100): 1 to 机构编制, 5 to 民政, 9 to market regulation, the
rest to the national credit-code base at the integrated platform. Inheritance
checks the decedent's death and the heirs' birth medical certificates,
numbered notarial certificates are checked at the justice department, the
location at the place-name register, the mortgagee bank's financial licence at
the financial regulator. Each check is kept as a verification record.
"""

from __future__ import annotations

import copy
import hashlib
from typing import Any


def _of(no: str):
    return lambda body: isinstance(body, dict) and (
        body.get("business_no") == no or body.get("YWH") == no)


def _records(flows, no: str, *kinds: str) -> dict[str, dict[str, Any]]:
    """The verification records of ``no`` by kind, once all of ``kinds`` are there."""
    def ready():
        got = {r["kind"]: r for r in flows.hub.store.verifications_for(no)}
        return got if set(kinds) <= set(got) else None
    return flows.wait(ready, what=f"records {kinds} of {no}")


def _forwarded(flows, no: str) -> dict[str, Any]:
    return flows.wait(lambda: flows.received("legacy", operation="SubmitApplication",
                                             where=_of(no)), what=f"{no} at legacy")[0]["body"]


def _refusal(flows, no: str) -> dict[str, Any]:
    return flows.wait(lambda: flows.received(
        "window_county", path="/notices",
        where=lambda b: b.get("business_no") == no and b.get("notice_type") == "refusal.notified"),
        what=f"refusal of {no}")[0]["body"]


def _material(no: str, name: str, kind: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": kind, "sha256": hashlib.sha256(f"{no}/{name}".encode()).hexdigest(),
            "size": 90_000, "media_type": "application/pdf", **extra}


def _organisation_application(flows, key: str, organisation: dict[str, Any]) -> dict[str, Any]:
    """The demo's first registration, applied for by ``organisation`` instead."""
    body = copy.deepcopy(flows.samples["first"])
    body["business_no"] = body["business_no"].replace("W00002", key)
    body["applicants"] = [{"name": organisation["name"], "id_type": "8",
                           "id_number": organisation["uscc"], "co_ownership": "0"}]
    return body


def _inheritance(flows, key: str) -> dict[str, Any]:
    """The seeded family: two children inherit their late father's flat."""
    sb = flows.sb
    family = sb.data["families"][0]
    father = family["decedent"]
    no = flows.samples["first"]["business_no"].replace("W00002", key)
    heirs = [{"name": c["name"], "id_type": "1", "id_number": c["cert_num"], "co_ownership": "2",
              "share": "50%", "role": "heir"} for c in family["children"]]
    notarial = next(n for n in sb.data["notarial_certificates"] if n["matter"] == "继承权公证")
    return {
        "business_no": no, "tenant": "320684", "registration_type": "200", "right_type": "4",
        "cause": "inheritance", "unit_codes": [sb.data["units"][14]],
        "location": f"{sb.data['county']['name']}三厂街道东洲路18号5幢101室",
        "applicants": heirs,
        "obligors": [{"name": father["name"], "id_type": "1", "id_number": father["cert_num"]}],
        "decedent": {"name": father["name"], "id_number": father["cert_num"]},
        "materials": [
            _material(no, "不动产登记申请书", "application_form"),
            _material(no, "申请人身份证明", "identity_document"),
            _material(no, "不动产权证书", "ownership_document"),
            _material(no, "继承协议", "contract"),
            _material(no, "死亡医学证明", "death_certificate",
                      document_no=family["death_certificate_no"]),
            *[_material(no, f"出生医学证明（{c['name']}）", "birth_certificate", document_no=n)
              for c, n in zip(family["children"], family["birth_certificate_nos"], strict=True)],
            _material(no, "继承权公证书", "notarial_certificate",
                      document_no=notarial["certificate_no"]),
        ],
        "channel": "county_window", "submitted_at": flows.samples["first"]["submitted_at"],
    }


# -- credit codes by registering department -------------------------------------

def test_an_institutions_code_is_checked_at_the_public_sector_registry_not_market(flows):
    hospital = next(i for i in flows.sb.data["institutions"]
                    if i["org_type"] == "事业单位" and i["status"] == "正常")
    body = _organisation_application(flows, "G00001", hospital)
    no = body["business_no"]
    flows.submit("county_window", body)

    _forwarded(flows, no)
    asked = flows.received("public_sector", path="/api/public-sector/institutions/query")
    assert [r["body"] for r in asked if r["body"]["uscc"] == hospital["uscc"]] == [
        {"uscc": hospital["uscc"]}]
    assert not flows.received("market", where=lambda b: b.get("uscc") == hospital["uscc"])
    records = _records(flows, no, "institution_registration", "registered_name")
    checked = records["institution_registration"]
    assert checked["connector"] == "public_sector"
    assert checked["result"]["rows"][0]["org_type"] == "事业单位"
    assert records["registered_name"]["result"] == {
        "match": True, "given": hospital["name"], "registered": hospital["name"]}
    assert not [d for d in flows.hub.dlq_list() if d["business_no"] == no]


def test_a_social_organisations_code_is_checked_at_civil_affairs(flows):
    charity = flows.sb.data["social_organisations"][0]
    body = _organisation_application(flows, "G00002", charity)
    no = body["business_no"]
    flows.submit("county_window", body)

    _forwarded(flows, no)
    assert flows.received("civil", path="/api/civil/social-organisations/query",
                          where=lambda b: b.get("uscc") == charity["uscc"])
    assert not flows.received("market", where=lambda b: b.get("uscc") == charity["uscc"])
    record = _records(flows, no, "social_organisation")["social_organisation"]
    assert (record["connector"], record["result"]["rows"][0]["org_type"]) == ("civil", "社会团体")


def test_an_enterprises_code_is_still_checked_at_market_regulation(flows):
    body = flows.samples["first"]  # a developer: a 9 code
    no = body["business_no"]
    uscc = body["applicants"][0]["id_number"]
    flows.submit("national_window", body)

    _forwarded(flows, no)
    assert flows.received("market", where=lambda b: b.get("uscc") == uscc)
    assert not flows.received("public_sector")
    assert not flows.received("civil", path="/api/civil/social-organisations/query")
    assert _records(flows, no, "business_licence")["business_licence"]["connector"] == "market"


def test_a_village_collectives_code_is_checked_at_the_national_base_not_market(flows):
    collective = next(c for c in flows.sb.data["companies"] if c["uscc"].startswith("N"))
    body = _organisation_application(
        flows, "G00003", {"name": collective["company_name"], "uscc": collective["uscc"]})
    no = body["business_no"]
    flows.submit("county_window", body)

    _forwarded(flows, no)
    assert flows.received("gov", path="/api/credit-codes/query",
                          where=lambda b: b.get("uscc") == collective["uscc"])
    assert not flows.received("market", where=lambda b: b.get("uscc") == collective["uscc"])
    row = _records(flows, no, "credit_code")["credit_code"]["result"]["rows"][0]
    assert (row["dept_name"], row["org_type"]) == ("农业农村", "村级集体经济组织")


def test_an_institution_unknown_or_dissolved_at_its_registry_is_refused_not_dead_lettered(flows):
    sb = flows.sb
    from bdchub.sandbox.data import uscc_check_char

    known = sb.data["institutions"][1]["uscc"]
    unknown = known[:-3] + "00" + uscc_check_char(known[:-3] + "00")
    dissolved = next(i for i in sb.data["institutions"] if i["status"] == "撤销")
    cases = {"G00004": ({"name": "海门市某某事业单位", "uscc": unknown},
                        "申请单位统一社会信用代码在其登记管理部门查无登记"),
             "G00005": (dissolved, "申请单位已注销、撤销或吊销")}
    for key, (organisation, _reason) in cases.items():
        flows.submit("county_window", _organisation_application(flows, key, organisation))
    for key, (_organisation, reason) in cases.items():
        no = _organisation_application(flows, key, {"name": "-", "uscc": "-"})["business_no"]
        assert _refusal(flows, no)["reason"] == reason
        flows.wait(lambda no=no: flows.stage(no) == "refusal", what=f"progress of {no}")
        assert not flows.received("legacy", where=_of(no))
        assert not [d for d in flows.hub.dlq_list() if d["business_no"] == no]
        assert _records(flows, no, "institution_registration")


def test_an_enterprise_market_regulation_does_not_know_is_refused_not_dead_lettered(flows):
    from bdchub.sandbox.data import uscc_check_char

    stem = "91320684MA1Q0XXX1"
    unknown = stem + uscc_check_char(stem)
    assert unknown not in flows.sb.endpoint("market").companies
    body = _organisation_application(flows, "G00006", {"name": "海门市某某贸易有限公司",
                                                       "uscc": unknown})
    no = body["business_no"]
    flows.submit("county_window", body)

    # Market answers 404 NOT_FOUND: an answer ("not on file"), as the other registries'
    # total 0 is, so the applicant gets a refusal notice instead of a dead letter.
    assert _refusal(flows, no)["reason"] == "申请单位统一社会信用代码在其登记管理部门查无登记"
    assert flows.received("market", where=lambda b: b.get("uscc") == unknown)
    record = _records(flows, no, "business_licence")["business_licence"]
    assert (record["connector"], record["result"]) == ("market", {"found": False})
    flows.wait(lambda: flows.stage(no) == "refusal", what=f"progress of {no}")
    assert not [d for d in flows.hub.dlq_list() if d["business_no"] == no]
    assert not flows.received("legacy", where=_of(no))


def test_every_organisation_party_is_checked_at_its_own_registry(flows):
    hospital = next(i for i in flows.sb.data["institutions"]
                    if i["org_type"] == "事业单位" and i["status"] == "正常")
    charity = flows.sb.data["social_organisations"][0]
    body = _organisation_application(flows, "G00007", hospital)
    body["applicants"].append({"name": charity["name"], "id_type": "8",
                               "id_number": charity["uscc"], "co_ownership": "0"})
    no = body["business_no"]
    flows.submit("county_window", body)

    _forwarded(flows, no)
    assert flows.received("public_sector", where=lambda b: b.get("uscc") == hospital["uscc"])
    assert flows.received("civil", path="/api/civil/social-organisations/query",
                          where=lambda b: b.get("uscc") == charity["uscc"])
    _records(flows, no, "institution_registration", "social_organisation")
    names = [r["result"]["given"] for r in flows.hub.store.verifications_for(no)
             if r["kind"] == "registered_name"]
    assert sorted(names) == sorted([hospital["name"], charity["name"]])


# -- inheritance: death and birth medical certificates, notarial certificate ------

def test_inheritance_checks_death_and_birth_certificates_and_the_notarial_certificate(flows):
    body = _inheritance(flows, "H00001")
    no = body["business_no"]
    family = flows.sb.data["families"][0]
    flows.submit("county_window", body)

    _forwarded(flows, no)
    records = _records(flows, no, "death_certificate", "birth_certificate",
                       "notarial_certificate", "address")
    death = records["death_certificate"]
    assert death["connector"] == "health" and death["result"]["consistent"] is True
    assert death["result"]["certificate_no"] == family["death_certificate_no"]
    birth = records["birth_certificate"]["result"]
    assert birth["consistent"] is True
    assert [r["certificate_no"] for r in birth["rows"]] == family["birth_certificate_nos"]
    assert {r["father_name"] for r in birth["rows"]} == {family["decedent"]["name"]}
    notarial = records["notarial_certificate"]
    assert notarial["connector"] == "justice" and notarial["result"]["valid"] is True
    assert records["address"]["result"]["matched"] is True


def test_a_birth_certificate_that_names_other_parents_refuses_the_inheritance(flows):
    body = _inheritance(flows, "H00002")
    # Someone else's child: the decedent is not the parent on this certificate.
    stranger = flows.sb.data["people"][7]
    body["decedent"] = {"name": stranger["name"], "id_number": stranger["cert_num"]}
    no = body["business_no"]
    flows.submit("county_window", body)

    assert _refusal(flows, no)["reason"] in ("被继承人死亡医学证明核验不一致",
                                             "出生医学证明查无记录或所载父母不是被继承人")
    records = _records(flows, no, "death_certificate", "birth_certificate")
    assert records["death_certificate"]["result"]["found"] is False
    assert records["birth_certificate"]["result"]["consistent"] is False
    assert not flows.received("legacy", where=_of(no))


def test_a_revoked_notarial_certificate_is_refused(flows):
    body = _inheritance(flows, "H00003")
    revoked = next(n for n in flows.sb.data["notarial_certificates"] if n["status"] == "撤销")
    body["materials"][-1]["document_no"] = revoked["certificate_no"]
    no = body["business_no"]
    flows.submit("county_window", body)

    assert _refusal(flows, no)["reason"] == "公证书查无记录或已撤销"
    result = _records(flows, no, "notarial_certificate")["notarial_certificate"]["result"]
    assert (result["valid"], result["rows"][0]["status"]) == (False, "撤销")


# -- place-name address -----------------------------------------------------------

def test_a_location_in_another_district_is_refused_as_out_of_jurisdiction(flows):
    body = _inheritance(flows, "H00004")
    body["location"] = "南通市崇川区青年中路1号"
    no = body["business_no"]
    flows.submit("county_window", body)

    assert _refusal(flows, no)["reason"] == "不动产坐落不在本登记机构辖区"
    record = _records(flows, no, "address")["address"]
    assert (record["connector"], record["result"]["division_code"]) == ("civil", "320602")


def test_a_location_that_is_not_a_standard_address_is_recorded_and_goes_on(flows):
    body = _inheritance(flows, "H00005")
    body["location"] = "海门市老街口往东第三间"
    no = body["business_no"]
    flows.submit("county_window", body)

    _forwarded(flows, no)
    assert _records(flows, no, "address")["address"]["result"]["matched"] is False


# -- bank channel: the financial licence -----------------------------------------

def test_a_bank_batch_is_checked_for_the_banks_financial_licence_and_recorded(flows):
    batch = flows.samples["batch"]
    resp = flows.post("bank_jhrcb", "/api/v1/bank/batches", batch)
    assert resp.status_code == 202, resp.text

    asked = flows.received("finance", path="/api/finance/licences/query")
    assert [r["body"] for r in asked] == [{"uscc": flows.samples["bank"]["id_number"]}]
    record = _records(flows, batch["business_no"], "financial_licence")["financial_licence"]
    assert record["connector"] == "finance"
    assert record["result"]["rows"][0]["status"] == "有效"
    for application in batch["applications"]:
        _forwarded(flows, application["business_no"])


def test_a_bank_without_a_valid_financial_licence_has_its_batch_refused(flows):
    sb = flows.sb
    closed = next(licence for licence in sb.data["financial_licences"] if licence["status"] == "注销")
    batch = copy.deepcopy(flows.samples["batch"])
    batch["business_no"] += "X"
    for application in batch["applications"]:
        application["applicants"] = [{"name": closed["institution_name"], "id_type": "8",
                                      "id_number": closed["uscc"], "co_ownership": "0"}]
    resp = flows.post("bank_jhrcb", "/api/v1/bank/batches", batch)

    assert resp.status_code == 422, resp.text
    assert resp.json()["status"] == "refused"
    assert resp.json()["reason"] == "抵押权人银行未持有有效的金融许可证"
    assert _records(flows, batch["business_no"], "financial_licence")
    for application in batch["applications"]:
        assert flows.progress(application["business_no"]) is None
        assert not flows.received("legacy", where=_of(application["business_no"]))
