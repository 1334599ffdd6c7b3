"""trade (OAuth2), police (Basic), market and one-window platforms (app-key HMAC)."""

from __future__ import annotations

import time

import pytest
import requests

from bdchub.sandbox import Sandbox

from .helpers import appkey_request


def _token(sb, **overrides):
    creds = sb.credentials["trade"]
    form = {"grant_type": "client_credentials", "client_id": creds["client_id"],
            "client_secret": creds["client_secret"], **overrides}
    return requests.post(creds["token_url"], data=form, timeout=5)


def test_trade_token_then_contract_filing_query(sandbox):
    token = _token(sandbox).json()
    assert token["token_type"] == "Bearer" and token["expires_in"] > 0
    filing = sandbox.data["contract_filings"][0]
    reply = requests.get(f"{sandbox.url('trade')}/api/contract-filings/{filing['filing_no']}",
                         headers={"Authorization": f"Bearer {token['access_token']}"}, timeout=5)
    assert reply.status_code == 200
    data = reply.json()["data"]
    assert data["price"] == filing["price"] and data["buyers"] == filing["buyers"]


def test_trade_token_via_basic_auth_works_and_bad_client_is_refused(sandbox):
    creds = sandbox.credentials["trade"]
    ok = requests.post(creds["token_url"], data={"grant_type": "client_credentials"},
                       auth=(creds["client_id"], creds["client_secret"]), timeout=5)
    assert ok.status_code == 200
    bad = _token(sandbox, client_secret="wrong")
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"


def test_trade_refuses_missing_and_expired_tokens():
    with Sandbox(seed=5, token_lifetime=0.3) as sb:
        url = sb.url("trade") + "/api/contract-filings?unit_code=" + sb.data["units"][0]
        missing = requests.get(url, timeout=5)
        assert missing.status_code == 401
        assert 'error="invalid_token"' in missing.headers["WWW-Authenticate"]
        token = _token(sb).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        assert requests.get(url, headers=auth, timeout=5).json()["data"]["total"] == 1
        time.sleep(0.35)
        expired = requests.get(url, headers=auth, timeout=5)
        assert expired.status_code == 401 and expired.json()["error"] == "invalid_token"


def test_trade_expire_tokens_forces_a_refresh(clean_sandbox):
    sb = clean_sandbox
    token = _token(sb).json()["access_token"]
    sb.expire_tokens()
    reply = requests.get(sb.url("trade") + "/api/contract-filings/x",
                         headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert reply.status_code == 401


def test_trade_filing_push_is_idempotent_and_conflicts_on_other_content(clean_sandbox):
    sb = clean_sandbox
    auth = {"Authorization": f"Bearer {_token(sb).json()['access_token']}"}
    person = sb.data["people"][2]
    filing = {"filing_no": "3206842026WQ999001", "unit_code": sb.data["units"][5], "price": 1.5e6,
              "area": 100.2, "sellers": [{"name": person["name"], "cert_num": person["cert_num"]}],
              "buyers": [{"name": "李四", "cert_num": "11010519491231002X"}]}
    url = sb.url("trade") + "/api/contract-filings"
    assert requests.post(url, json=filing, headers=auth, timeout=5).status_code == 201
    again = requests.post(url, json=filing, headers=auth, timeout=5)
    assert again.status_code == 200 and again.json()["data"]["duplicate"] is True
    other = requests.post(url, json={**filing, "price": 1}, headers=auth, timeout=5)
    assert other.status_code == 409
    bad = requests.post(url, json={**filing, "unit_code": "123"}, headers=auth, timeout=5)
    assert bad.status_code == 400
    got = requests.get(f"{url}/{filing['filing_no']}", headers=auth, timeout=5).json()["data"]
    assert got["price"] == 1.5e6
    assert [e["operation"] for e in sb.received("trade")] == \
        ["oauth.token", "filing.push", "filing.push", "filing.push", "filing.push", "filing.get"]


def test_police_household_check_with_basic_auth(sandbox):
    creds = sandbox.credentials["police"]
    household = next(h for h in sandbox.data["households"] if len(h["entries"]) > 1)
    member = household["entries"][1]["cert_num"]
    reply = requests.get(sandbox.url("police") + "/api/police/household",
                         params={"cert_num": member}, auth=(creds["username"], creds["password"]),
                         timeout=5)
    assert reply.status_code == 200
    data = reply.json()["data"]
    assert data["found"] and data["household_no"] == household["household_no"]
    assert [e["cert_num"] for e in data["entries"]] == [e["cert_num"] for e in household["entries"]]
    assert data["entries"][0]["relation"] == "户主"


def test_police_refuses_wrong_password_and_bad_id(sandbox):
    creds = sandbox.credentials["police"]
    url = sandbox.url("police") + "/api/police/household/query"
    wrong = requests.post(url, json={"cert_num": "11010519491231002X"},
                          auth=(creds["username"], "nope"), timeout=5)
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"].startswith("Basic")
    bad = requests.post(url, json={"cert_num": "123"}, auth=(creds["username"], creds["password"]),
                        timeout=5)
    assert bad.status_code == 400
    unknown = requests.post(url, json={"cert_num": "11010519491231002X"},
                            auth=(creds["username"], creds["password"]), timeout=5)
    assert unknown.json()["data"] == {"cert_num": "11010519491231002X", "found": False,
                                      "household_no": None, "entries": []}


def test_market_licence_check_signed_get_and_post(sandbox):
    company = next(c for c in sandbox.data["companies"] if c["uscc"].startswith("N"))
    got = appkey_request(sandbox, "market", "GET", f"/api/market/license?uscc={company['uscc']}")
    assert got.status_code == 200
    assert got.json()["data"]["company_name"] == company["company_name"]
    posted = appkey_request(sandbox, "market", "POST", "/api/market/license/query",
                            {"uscc": company["uscc"]})
    assert posted.json()["data"]["legal_rep"] == company["legal_rep"]
    assert posted.json()["data"]["status"] == "存续"


def test_market_unknown_and_invalid_codes(sandbox):
    company = sandbox.data["companies"][0]["uscc"]
    from bdchub.sandbox.data import uscc_check_char

    unknown = company[:-3] + "00" + uscc_check_char(company[:-3] + "00")
    assert appkey_request(sandbox, "market", "POST", "/api/market/license/query",
                          {"uscc": unknown}).status_code == 404
    broken = company[:-1] + ("0" if company[-1] != "0" else "1")
    assert appkey_request(sandbox, "market", "POST", "/api/market/license/query",
                          {"uscc": broken}).json()["code"] == "INVALID_USCC"


@pytest.mark.parametrize("case", ["replay", "skew", "wrong_key", "tampered_path", "missing"])
def test_market_refuses_bad_app_key_signatures(sandbox, case):
    from bdchub.sandbox.signing import appkey_headers

    creds = sandbox.credentials["market"]
    path = "/api/market/license?uscc=" + sandbox.data["companies"][0]["uscc"]
    headers = appkey_headers(creds["app_key"], creds["app_secret"], "GET", path, b"")
    if case == "replay":
        assert requests.get(sandbox.url("market") + path, headers=headers, timeout=5).status_code == 200
    elif case == "skew":
        headers = appkey_headers(creds["app_key"], creds["app_secret"], "GET", path, b"",
                                 timestamp=int(time.time()) - 301)
    elif case == "wrong_key":
        headers = appkey_headers(creds["app_key"], "not-the-secret", "GET", path, b"")
    elif case == "tampered_path":
        path = path[:-1] + "X"
    elif case == "missing":
        headers = {}
    reply = requests.get(sandbox.url("market") + path, headers=headers, timeout=5)
    assert reply.status_code == 401
    expected = {"replay": "REPLAYED_NONCE", "skew": "STALE_TIMESTAMP", "wrong_key": "INVALID_SIGNATURE",
                "tampered_path": "INVALID_SIGNATURE", "missing": "MISSING_SIGNATURE"}[case]
    assert reply.json()["code"] == expected


def test_window_platforms_record_progress_and_notices_in_order(clean_sandbox):
    sb = clean_sandbox
    for level in ("county", "province", "national"):
        name = f"window_{level}"
        assert appkey_request(sb, name, "POST", "/progress",
                              {"business_no": "B1", "stage": "受理"}).status_code == 200
        assert appkey_request(sb, name, "POST", "/notices",
                              {"business_no": "B1", "kind": "不予受理告知书"}).status_code == 200
        log = sb.received(name)
        assert [(e["operation"], e["body"]["business_no"]) for e in log] == \
            [("progress", "B1"), ("notice", "B1")]
        assert log[0]["headers"]["X-App-Key"] == sb.credentials[name]["app_key"]


def test_window_refuses_another_levels_key_and_non_object_bodies(clean_sandbox):
    sb = clean_sandbox
    from bdchub.sandbox.signing import appkey_headers

    county = sb.credentials["window_county"]
    body = b'{"business_no": "B1"}'
    headers = appkey_headers(county["app_key"], county["app_secret"], "POST", "/progress", body)
    reply = requests.post(sb.url("window_national") + "/progress", data=body, headers=headers, timeout=5)
    assert reply.status_code == 401
    assert appkey_request(sb, "window_county", "POST", "/progress", [1, 2]).status_code == 400


def test_window_idempotency_key_returns_the_first_receipt(clean_sandbox):
    sb = clean_sandbox
    creds = sb.credentials["window_county"]
    from bdchub.sandbox.signing import appkey_headers

    receipts = []
    for _ in range(2):
        body = b'{"business_no": "B9"}'
        headers = appkey_headers(creds["app_key"], creds["app_secret"], "POST", "/progress", body)
        headers.update({"Idempotency-Key": "msg-1", "Content-Type": "application/json"})
        receipts.append(requests.post(sb.url("window_county") + "/progress", data=body,
                                      headers=headers, timeout=5).json()["data"])
    assert receipts[0]["receipt_id"] == receipts[1]["receipt_id"]
    assert receipts[1]["duplicate"] is True
    assert len(sb.received("window_county")) == 2


def test_unknown_path_is_404_and_wrong_method_405(sandbox):
    assert requests.get(sandbox.url("window_county") + "/nope", timeout=5).status_code == 404
    assert requests.get(sandbox.url("window_county") + "/progress", timeout=5).status_code == 405
