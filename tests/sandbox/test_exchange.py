"""gov and civil behind the national data-exchange signature."""

from __future__ import annotations

import time

import pytest
import requests

from bdchub.sandbox import Sandbox
from bdchub.sandbox.signing import exchange_headers, exchange_sign

from .helpers import exchange_post


def test_signature_is_hex_hmac_sha256_of_rid_sid_rtime_joined_by_newlines():
    import hashlib
    import hmac

    expected = hmac.new(b"s3cret", b"R\nS\n1700000000000", hashlib.sha256).hexdigest()
    assert exchange_sign("s3cret", "R", "S", 1700000000000) == expected


def test_identity_matches_for_a_seeded_person(sandbox):
    person = sandbox.data["people"][0]
    reply = exchange_post(sandbox, "gov", "/api/identity/verify",
                          {"name": person["name"], "cert_num": person["cert_num"]})
    assert reply.status_code == 200
    assert reply.json()["data"]["match"] is True


def test_identity_mismatch_for_wrong_name_listed_id_or_bad_checksum(sandbox):
    person = sandbox.data["people"][0]
    cases = [(person["name"] + "某", person["cert_num"], "01"),
             ("张三", sandbox.data["identity_mismatch"][0], "01"),
             ("张三", person["cert_num"][:-1] + ("0" if person["cert_num"][-1] != "0" else "1"), "02")]
    for name, cert, code in cases:
        data = exchange_post(sandbox, "gov", "/api/identity/verify",
                             {"name": name, "cert_num": cert}).json()["data"]
        assert (data["match"], data["result_code"]) == (False, code)


def test_identity_of_an_unknown_but_valid_id_matches(sandbox):
    data = exchange_post(sandbox, "gov", "/api/identity/verify",
                         {"name": "张三", "cert_num": "11010519491231002X"}).json()["data"]
    assert data["match"] is True


def test_face_comparison_scores_high_for_most_and_low_for_seeded_mismatches(sandbox):
    good = sandbox.data["people"][0]
    bad = next(p for p in sandbox.data["people"] if p["cert_num"] in sandbox.data["face_mismatch"])
    scores = {}
    for person in (good, bad):
        data = exchange_post(sandbox, "gov", "/api/face/compare",
                             {"name": person["name"], "cert_num": person["cert_num"],
                              "image": "aGVsbG8="}).json()["data"]
        scores[person["cert_num"]] = data
    assert scores[good["cert_num"]]["passed"] is True
    assert scores[bad["cert_num"]]["passed"] is False
    assert 0 <= scores[bad["cert_num"]]["score"] < scores[good["cert_num"]]["score"] <= 100


def test_face_comparison_without_image_is_a_bad_request(sandbox):
    person = sandbox.data["people"][0]
    reply = exchange_post(sandbox, "gov", "/api/face/compare",
                          {"name": person["name"], "cert_num": person["cert_num"]})
    assert reply.status_code == 400 and reply.json()["code"] == "MISSING_FIELD"


def test_elicence_issue_is_idempotent_and_queryable(sandbox):
    person = sandbox.data["people"][1]
    body = {"license_no": "苏(2026)海门市不动产权第0009999号", "holder_name": person["name"],
            "holder_cert_num": person["cert_num"], "unit_code": sandbox.data["units"][1]}
    first = exchange_post(sandbox, "gov", "/api/elicense/issue", body).json()["data"]
    again = exchange_post(sandbox, "gov", "/api/elicense/issue", body).json()["data"]
    assert first["license_id"] == again["license_id"] and again["duplicate"] is True
    rows = exchange_post(sandbox, "gov", "/api/elicense/query",
                         {"holder_cert_num": person["cert_num"]}).json()["data"]["rows"]
    assert [r["license_no"] for r in rows] == [body["license_no"]]
    creds = sandbox.credentials["gov"]
    got = requests.get(f"{sandbox.url('gov')}/api/elicense/{first['license_id']}",
                       headers=exchange_headers(creds["rid"], creds["sid"], creds["current_secret"]),
                       timeout=5)
    assert got.json()["data"]["holder_name"] == person["name"]


@pytest.mark.parametrize("override,code", [
    ({"gjgxjhpt_sign": "0" * 64}, "INVALID_SIGNATURE"),
    ({"gjgxjhpt_rid": "RID-OTHER"}, "UNKNOWN_RID"),
    ({"gjgxjhpt_sid": "SID-OTHER"}, "UNKNOWN_SID"),
    ({"gjgxjhpt_rtime": "yesterday"}, "BAD_RTIME"),
])
def test_bad_signature_headers_get_401_with_json_error(sandbox, override, code):
    reply = exchange_post(sandbox, "gov", "/api/identity/verify", {"name": "a", "cert_num": "b"},
                          **override)
    assert reply.status_code == 401
    assert reply.json()["code"] == code


def test_stale_rtime_gets_401_even_with_a_correct_signature(sandbox):
    creds = sandbox.credentials["gov"]
    old = int((time.time() - 301) * 1000)
    headers = exchange_headers(creds["rid"], creds["sid"], creds["current_secret"], rtime=old)
    reply = requests.post(sandbox.url("gov") + "/api/identity/verify", json={}, headers=headers,
                          timeout=5)
    assert reply.status_code == 401 and reply.json()["code"] == "STALE_TIMESTAMP"


def test_missing_signature_headers_get_401(sandbox):
    reply = requests.post(sandbox.url("civil") + "/api/civil/marriage/query", json={}, timeout=5)
    assert reply.status_code == 401 and reply.json()["code"] == "MISSING_SIGNATURE"


def test_secret_refresh_rotates_with_a_grace_period_for_the_old_secret():
    with Sandbox(seed=3, secret_grace=0.3) as sb:
        creds = sb.credentials["gov"]
        old = creds["initial_secret"]
        person = sb.data["people"][0]
        body = {"name": person["name"], "cert_num": person["cert_num"]}
        refreshed = exchange_post(sb, "gov", "/api/exchange/refresh-secret",
                                  {"app_key": creds["app_key"]}, secret=old)
        assert refreshed.status_code == 200
        new = refreshed.json()["data"]["app_secret"]
        assert new != old and refreshed.json()["data"]["expires_in"] == 86400
        assert sb.credentials["gov"]["current_secret"] == new
        assert exchange_post(sb, "gov", "/api/identity/verify", body, secret=old).status_code == 200
        time.sleep(0.35)
        late = exchange_post(sb, "gov", "/api/identity/verify", body, secret=old)
        assert late.status_code == 401 and late.json()["code"] == "SECRET_ROTATED"
        assert exchange_post(sb, "gov", "/api/identity/verify", body, secret=new).status_code == 200


def test_expired_secret_cannot_call_but_can_still_refresh():
    with Sandbox(seed=3) as sb:
        person = sb.data["people"][0]
        body = {"name": person["name"], "cert_num": person["cert_num"]}
        sb.expire_secret("gov")
        reply = exchange_post(sb, "gov", "/api/identity/verify", body)
        assert reply.status_code == 401 and reply.json()["code"] == "SECRET_EXPIRED"
        new = exchange_post(sb, "gov", "/api/exchange/refresh-secret", {}).json()["data"]["app_secret"]
        assert exchange_post(sb, "gov", "/api/identity/verify", body, secret=new).status_code == 200


def test_refresh_with_a_wrong_app_key_is_refused(sandbox):
    reply = exchange_post(sandbox, "civil", "/api/exchange/refresh-secret", {"app_key": "nope"})
    assert reply.status_code == 401


def test_marriage_query_by_one_party_returns_rows_with_the_exchange_fields(sandbox):
    row = sandbox.data["marriages"][0]
    data = exchange_post(sandbox, "civil", "/api/civil/marriage/query",
                         {"cert_num_man": row["cert_num_man"], "start": 0, "limit": 10}).json()["data"]
    assert data["total"] >= 1
    first = data["rows"][0]
    for key in ("op_type", "op_date", "dept_code", "dept_name", "cert_num_man", "cert_num_woman",
                "name_man", "name_woman"):
        assert key in first
    assert first["cert_num_woman"] == row["cert_num_woman"]


def test_marriage_query_pages_with_start_and_limit(sandbox):
    divorced = next(m for m in sandbox.data["marriages"] if m["op_type"] == "IB")
    query = {"name_man": divorced["name_man"], "cert_num_man": divorced["cert_num_man"],
             "name_woman": divorced["name_woman"], "cert_num_woman": divorced["cert_num_woman"]}
    whole = exchange_post(sandbox, "civil", "/api/civil/marriage/query",
                          {**query, "start": 0, "limit": 10}).json()["data"]
    assert [r["op_type"] for r in whole["rows"]] == ["IA", "IB"]
    page = exchange_post(sandbox, "civil", "/api/civil/marriage/query",
                         {**query, "start": 1, "limit": 1}).json()["data"]
    assert page["total"] == 2 and [r["op_type"] for r in page["rows"]] == ["IB"]


def test_marriage_query_without_any_party_is_a_bad_request(sandbox):
    reply = exchange_post(sandbox, "civil", "/api/civil/marriage/query", {"start": 0})
    assert reply.status_code == 400


def test_civil_has_its_own_secret_line(sandbox):
    gov = sandbox.credentials["gov"]
    reply = exchange_post(sandbox, "civil", "/api/civil/marriage/query",
                          {"cert_num_man": sandbox.data["marriages"][0]["cert_num_man"]},
                          secret=gov["initial_secret"])
    assert reply.status_code == 401
