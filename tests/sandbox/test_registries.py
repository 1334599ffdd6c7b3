"""The registries behind the shared-information checks, and the integrated
platform's face, e-signature and credit-code services, written from the README."""

from __future__ import annotations

import pytest
import requests

from bdchub.sandbox import Sandbox
from bdchub.sandbox.data import uscc_check_char

from .helpers import exchange_post

REGISTRIES = ("public_sector", "health", "justice", "finance")


def _data(reply: requests.Response):
    assert reply.status_code == 200, reply.text
    return reply.json()["data"]


@pytest.mark.parametrize("name", REGISTRIES)
def test_each_registry_is_behind_its_own_exchange_signature(sandbox, name):
    creds = sandbox.credentials[name]
    assert {"rid", "sid", "app_key", "current_secret"} <= set(creds)
    assert creds["current_secret"] not in {sandbox.credentials[o]["current_secret"]
                                           for o in ("gov", "civil", *REGISTRIES) if o != name}
    unsigned = requests.post(sandbox.url(name) + "/api/anything", json={}, timeout=5)
    assert unsigned.status_code in (401, 404)
    wrong = exchange_post(sandbox, name, "/api/finance/licences/query", {"uscc": "x"},
                          secret="0" * 40)
    assert wrong.status_code in (401, 404)


def test_registry_data_leaves_the_earlier_seeded_data_as_it_was():
    # The config's seed-42 defaults are the earlier draws: they must not move.
    with Sandbox(seed=42) as sb:
        assert sb.credentials["gov"]["initial_secret"] == "d59d103141ecaa29d79c94823e0cc9a6c21e9a9f"
        assert sb.data["companies"][2]["uscc"] == "91320684RXFKF0D3GW"


def test_public_sector_knows_institutions_by_credit_code_and_not_companies(sandbox):
    hospital = next(i for i in sandbox.data["institutions"] if i["org_type"] == "事业单位")
    found = _data(exchange_post(sandbox, "public_sector", "/api/public-sector/institutions/query",
                                {"uscc": hospital["uscc"]}))
    assert found["total"] == 1 and found["rows"][0]["name"] == hospital["name"]
    company = sandbox.data["companies"][0]["uscc"]
    assert _data(exchange_post(sandbox, "public_sector", "/api/public-sector/institutions/query",
                               {"uscc": company})) == {"total": 0, "rows": []}
    broken = hospital["uscc"][:-1] + ("0" if hospital["uscc"][-1] != "0" else "1")
    bad = exchange_post(sandbox, "public_sector", "/api/public-sector/institutions/query",
                        {"uscc": broken})
    assert (bad.status_code, bad.json()["code"]) == (400, "INVALID_USCC")


def test_civil_affairs_knows_social_organisations_and_standard_addresses(sandbox):
    charity = sandbox.data["social_organisations"][0]
    found = _data(exchange_post(sandbox, "civil", "/api/civil/social-organisations/query",
                                {"uscc": charity["uscc"]}))
    assert found["rows"][0]["org_type"] == "社会团体"
    here = _data(exchange_post(sandbox, "civil", "/api/civil/addresses/verify",
                               {"address": "江苏省南通市海门市海门街道长江南路88号3幢202室"}))
    assert (here["matched"], here["division_code"]) == (True, "320684")
    assert here["standard_address"].endswith("海门街道长江南路88号")
    elsewhere = _data(exchange_post(sandbox, "civil", "/api/civil/addresses/verify",
                                    {"address": "南通市崇川区青年中路1号"}))
    assert (elsewhere["matched"], elsewhere["division_code"]) == (True, "320602")
    unknown = _data(exchange_post(sandbox, "civil", "/api/civil/addresses/verify",
                                  {"address": "村口老槐树下"}))
    assert unknown["matched"] is False and unknown["division_code"] is None


def test_health_verifies_the_death_and_the_birth_certificates_of_the_seeded_family(sandbox):
    family = sandbox.data["families"][0]
    father = family["decedent"]
    death = _data(exchange_post(sandbox, "health", "/api/health/death-certificates/verify",
                                {"name": father["name"], "cert_num": father["cert_num"]}))
    assert (death["found"], death["consistent"]) == (True, True)
    assert death["certificate_no"] == family["death_certificate_no"]
    renamed = _data(exchange_post(sandbox, "health", "/api/health/death-certificates/verify",
                                  {"name": "某某", "cert_num": father["cert_num"]}))
    assert (renamed["found"], renamed["consistent"]) == (True, False)
    births = _data(exchange_post(sandbox, "health", "/api/health/birth-certificates/verify",
                                 {"parent_cert_num": father["cert_num"],
                                  "certificate_nos": [*family["birth_certificate_nos"], "P0000000000"]}))
    assert [(r["found"], r["parent_matches"]) for r in births["rows"]] == [
        (True, True), (True, True), (False, False)]
    assert births["consistent"] is False
    stranger = sandbox.data["people"][0]["cert_num"]
    other = _data(exchange_post(sandbox, "health", "/api/health/birth-certificates/verify",
                                {"parent_cert_num": stranger,
                                 "certificate_nos": family["birth_certificate_nos"]}))
    assert other["consistent"] is False


def test_justice_verifies_notarial_certificates_written_with_either_bracket(sandbox):
    valid, _, revoked = sandbox.data["notarial_certificates"]
    full_width = valid["certificate_no"].replace("(", "（").replace(")", "）")
    got = _data(exchange_post(sandbox, "justice", "/api/justice/notarial-certificates/verify",
                              {"certificate_nos": [full_width]}))
    assert (got["valid"], got["rows"][0]["matter"]) == (True, "继承权公证")
    got = _data(exchange_post(sandbox, "justice", "/api/justice/notarial-certificates/verify",
                              {"certificate_nos": [valid["certificate_no"], revoked["certificate_no"]]}))
    assert got["valid"] is False and got["rows"][1]["status"] == "撤销"
    empty = exchange_post(sandbox, "justice", "/api/justice/notarial-certificates/verify",
                          {"certificate_nos": []})
    assert (empty.status_code, empty.json()["code"]) == (400, "BAD_FIELD")


def test_finance_answers_the_licence_of_the_county_bank(sandbox):
    got = _data(exchange_post(sandbox, "finance", "/api/finance/licences/query",
                              {"uscc": "91320614MA1P8K6W29"}))
    assert got["total"] == 1 and got["rows"][0]["status"] == "有效"
    closed = next(x for x in sandbox.data["financial_licences"] if x["status"] == "注销")
    by_number = _data(exchange_post(sandbox, "finance", "/api/finance/licences/query",
                                    {"licence_no": closed["licence_no"]}))
    assert by_number["rows"][0]["uscc"] == closed["uscc"]
    missing = exchange_post(sandbox, "finance", "/api/finance/licences/query", {})
    assert (missing.status_code, missing.json()["code"]) == (400, "MISSING_FIELD")


def test_a_face_comparison_is_kept_and_answered_by_its_verification_number(sandbox):
    person = sandbox.data["people"][0]
    spoof = next(p for p in sandbox.data["people"] if p["cert_num"] in sandbox.data["face_spoof"])
    compared = {}
    for p in (person, spoof):
        compared[p["cert_num"]] = _data(exchange_post(
            sandbox, "gov", "/api/face/compare",
            {"name": p["name"], "cert_num": p["cert_num"], "image": "aGVsbG8="}))
    assert compared[person["cert_num"]]["liveness_passed"] is True
    assert compared[spoof["cert_num"]]["liveness_passed"] is False
    asked = [{"verification_id": compared[person["cert_num"]]["verification_id"],
              "cert_num": person["cert_num"]},
             {"verification_id": compared[person["cert_num"]]["verification_id"],
              "cert_num": spoof["cert_num"]},
             {"verification_id": "FACE-NONE-000", "cert_num": person["cert_num"]}]
    rows = _data(exchange_post(sandbox, "gov", "/api/face/verifications/query",
                               {"verifications": asked}))["rows"]
    assert [(r["found"], r["consistent"]) for r in rows] == [(True, True), (True, False),
                                                            (False, False)]
    assert rows[0]["passed"] is True


def test_signatures_are_verified_against_the_signers_certificate_and_the_digest(sandbox):
    gov = sandbox.endpoint("gov")
    person = sandbox.data["people"][0]
    revoked = sandbox.data["signature_revoked"][0]
    digest = "ab" * 32
    good = {"signer_cert_num": person["cert_num"], "digest": digest,
            **gov.sign(person["cert_num"], digest)}
    tampered = {**good, "digest": "cd" * 32}
    someone_elses = {**good, "signer_cert_num": sandbox.data["people"][1]["cert_num"]}
    of_revoked = {"signer_cert_num": revoked, "digest": digest, **gov.sign(revoked, digest)}
    got = _data(exchange_post(sandbox, "gov", "/api/signature/verify",
                              {"signatures": [good, tampered, someone_elses, of_revoked]}))
    assert [r["result_code"] for r in got["rows"]] == ["00", "01", "04", "02"]
    assert got["valid"] is False
    signed = _data(exchange_post(sandbox, "gov", "/api/signature/sign",
                                 {"cert_num": person["cert_num"], "digest": digest}))
    assert signed["signature_value"] == good["signature_value"]


def test_the_national_credit_code_base_names_each_codes_registering_department(sandbox):
    collective = next(c for c in sandbox.data["companies"] if c["uscc"].startswith("N"))
    hospital = sandbox.data["institutions"][1]
    for uscc, dept in ((collective["uscc"], "农业农村"), (hospital["uscc"], "机构编制")):
        row = _data(exchange_post(sandbox, "gov", "/api/credit-codes/query", {"uscc": uscc}))["rows"][0]
        assert row["dept_name"] == dept
    lawyers = "31320684" + "A" * 9
    lawyers += uscc_check_char(lawyers)
    assert _data(exchange_post(sandbox, "gov", "/api/credit-codes/query",
                               {"uscc": lawyers})) == {"total": 0, "rows": []}


@pytest.mark.parametrize("name", REGISTRIES)
def test_every_registry_takes_the_fault_knobs(clean_sandbox, name):
    clean_sandbox.faults(name).set(outage_for=30)
    try:
        down = requests.get(clean_sandbox.url(name) + "/_sandbox/health", timeout=5)
        assert down.status_code == 503
    finally:
        clean_sandbox.clear_faults(name)
    assert requests.get(clean_sandbox.url(name) + "/_sandbox/health", timeout=5).status_code == 200


def test_a_registry_secret_expires_and_is_refreshed_like_gov(clean_sandbox):
    sb = clean_sandbox
    sb.expire_secret("finance")
    body = {"uscc": "91320614MA1P8K6W29"}
    expired = exchange_post(sb, "finance", "/api/finance/licences/query", body)
    assert (expired.status_code, expired.json()["code"]) == (401, "SECRET_EXPIRED")
    fresh = _data(exchange_post(sb, "finance", "/api/exchange/refresh-secret", {}))["app_secret"]
    assert _data(exchange_post(sb, "finance", "/api/finance/licences/query", body,
                               secret=fresh))["total"] == 1
