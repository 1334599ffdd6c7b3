"""The REST connector: mapping, authentication schemes, TLS, Retry-After, replies."""

from __future__ import annotations

import json
import ssl
import time

import pytest

from bdchub import connectors
from bdchub.connectors.http import http_date, parse_retry_after
from bdchub.core.errors import PermanentError, RecoverableError, TimeoutError_

from .loopback import TRANSPORTS, Department, LoopRunner, runner_for
from .targets import GovSandbox, MarketSandbox, TradeSandbox

QUICK = {"retry": {"attempts": 3, "backoff": 0.01, "jitter": 0}, "timeout": 5}


@pytest.fixture(autouse=True, params=TRANSPORTS)
def transport(request):
    """Every test here runs twice: calls from a plain thread (urllib3), and calls
    on the inbound server's event loop (core.greenloop, aiohttp), which must
    behave the same in every respect the tests look at."""
    global RUNNER
    with runner_for(request.param) as RUNNER:
        yield request.param
    RUNNER = None


RUNNER: LoopRunner | None = None


def build(block, metrics, sleeps=None, name="dept"):
    conn = connectors.build(name, {**QUICK, **block}, metrics=metrics,
                            sleep=(sleeps.append if sleeps is not None else lambda s: None))
    return conn if RUNNER is None else RUNNER.wrap(conn)


# ------------------------------------------------------------------ mapping

def test_path_query_body_and_idempotency_key_are_sent_as_mapped(department, metrics):
    block = {"type": "rest", "base_url": department.url + "/",
             "operations": {
                 "get": {"path": "/contracts/{contract.no}", "query": {"page": "paging.page",
                                                                       "skip": "missing"}},
                 "post": {"method": "POST", "path": "/contracts",
                          "body": {"no": "contract.no", "party": {"name": "buyer.name"}},
                          "expect": [201], "response": "data.accepted"}}}
    with build(block, metrics) as conn:
        conn.call("get", {"contract": {"no": "HT 2024/07"}, "paging": {"page": 2}})
        result = conn.call("post", {"contract": {"no": "HT-1"}, "buyer": {"name": "张三"}},
                           connectors.CallContext(idempotency_key="msg-1:tax"))
    get, post = department.received
    assert get["path"] == "/contracts/HT%202024%2F07?page=2"
    assert result == {"no": "HT-1", "party": {"name": "张三"}}
    assert post["headers"]["Idempotency-Key"] == "msg-1:tax"
    assert "Idempotency-Key" not in get["headers"]


def test_a_rest_profile_maps_the_canonical_payload_and_the_reply_like_soap(department, metrics):
    """One shape for both: ``payload`` makes the vendor's request of a canonical
    payload, then path/query/body read it; ``reply`` names the answer canonically."""
    block = {"type": "rest", "base_url": department.url,
             "records": {"party": {"xm": "name", "zjhm": "id_number"}},
             "operations": {"file_contract": {
                 "method": "POST", "path": "/contracts", "expect": [201],
                 "payload": {"htbh": "filing.filing_no", "mj": "filing.area",
                             "qlr": {"each": "applicants", "as": "party"}},
                 "success": {"path": "code", "ok": ["0"], "message_path": "message"},
                 "response": "data.accepted",
                 "reply": {"contract_no": "htbh", "holders": {"each": "qlr", "fields": {
                     "name": "xm"}}}}}}
    canonical = {"filing": {"filing_no": "HT-7", "area": 89.5},
                 "applicants": [{"name": "张三", "id_number": "11010519900101123X"}]}
    with build(block, metrics) as conn:
        answer = conn.call("file_contract", canonical)
    assert answer == {"contract_no": "HT-7", "holders": [{"name": "张三"}]}
    [sent] = department.received
    assert json.loads(sent["body"]) == {
        "htbh": "HT-7", "mj": 89.5, "qlr": [{"xm": "张三", "zjhm": "11010519900101123X"}]}


def test_a_payload_without_the_path_value_is_a_permanent_error(department, metrics):
    block = {"type": "rest", "base_url": department.url,
             "operations": {"get": {"path": "/contracts/{contract_no}"}}}
    with build(block, metrics) as conn, pytest.raises(PermanentError, match="contract_no"):
        conn.call("get", {"other": 1})
    assert department.received == []


def test_unknown_operation_is_permanent(department, metrics):
    with build({"type": "rest", "base_url": department.url}, metrics) as conn, \
            pytest.raises(PermanentError, match="no operation"):
        conn.call("nope", {})


def test_bad_jmespath_fails_when_the_connector_opens(department, metrics):
    from bdchub.core.errors import ConfigError

    conn = build({"type": "rest", "base_url": department.url,
                  "operations": {"x": {"path": "/a", "response": "data[["}}}, metrics)
    with pytest.raises(ConfigError, match="JMESPath"):
        conn.open()


def test_invalid_json_in_a_success_reply_is_permanent(clean_sandbox, metrics):
    target = MarketSandbox(clean_sandbox)
    clean_sandbox.faults("market").set(malformed="garbage")
    with build(target.block(), metrics) as conn, pytest.raises(PermanentError, match="JSON"):
        conn.call(*target.ok_call())
    assert len(clean_sandbox.received("market")) == 1  # not retried


def test_business_error_code_inside_http_200_is_permanent(department, metrics):
    block = {"type": "rest", "base_url": department.url,
             "operations": {"get": {"path": "/contracts/{n}",
                                    "success": {"path": "data.status", "ok": ["active"],
                                                "message_path": "data.contract_no"}}}}
    with build(block, metrics) as conn, pytest.raises(PermanentError, match="signed"):
        conn.call("get", {"n": "1"})


def test_client_errors_carry_the_status_and_are_not_retried(clean_sandbox, metrics):
    target = MarketSandbox(clean_sandbox)
    with build(target.block(), metrics) as conn, pytest.raises(PermanentError) as info:
        conn.call(*target.permanent_call()[:2])
    assert info.value.status == 400
    assert len(clean_sandbox.received("market")) == 1


def test_server_errors_500_502_503_504_and_429_are_recoverable(department, metrics):
    block = {"type": "rest", "base_url": department.url, "retry": {"attempts": 1},
             "operations": {"get": {"path": "/contracts/1"}}}
    with build(block, metrics) as conn:
        for status in (500, 502, 503, 504, 429):
            department.set(errors=1, status=status)
            with pytest.raises(RecoverableError) as info:
                conn.call("get", {})
            assert info.value.status == status


def test_refused_connection_is_recoverable(metrics):
    dept = Department().start()
    url = dept.url
    dept.stop()
    block = {"type": "rest", "base_url": url, "retry": {"attempts": 1},
             "operations": {"get": {"path": "/x"}}}
    with build(block, metrics) as conn, pytest.raises(RecoverableError, match="connection"):
        conn.call("get", {})


def test_the_callers_deadline_bounds_the_request(department, metrics):
    block = {"type": "rest", "base_url": department.url, "timeout": 30,
             "retry": {"attempts": 1}, "operations": {"get": {"path": "/contracts/1"}}}
    department.set(hang=5)
    started = time.monotonic()
    with build(block, metrics) as conn, pytest.raises(TimeoutError_):
        conn.call("get", {}, connectors.CallContext(deadline=time.monotonic() + 0.3))
    assert time.monotonic() - started < 3


# -------------------------------------------------------------- Retry-After

def test_retry_after_header_parses_seconds_and_http_dates():
    assert parse_retry_after("7") == 7
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after(http_date(30)) == pytest.approx(30, abs=2)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0  # in the past
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


@pytest.mark.parametrize("header", ["2", "http-date"])
def test_retry_after_from_the_endpoint_is_honoured(clean_sandbox, metrics, header):
    target = MarketSandbox(clean_sandbox)
    value = http_date(3) if header == "http-date" else header
    sleeps: list[float] = []
    clean_sandbox.faults("market").set(error_rate=1.0, error_status=429, retry_after=value)

    def backoff(seconds):
        sleeps.append(seconds)
        clean_sandbox.faults("market").clear()

    conn = connectors.build("market", {**target.block(), "retry": {"attempts": 3, "jitter": 0,
                                                                   "backoff": 0.01}},
                            metrics=metrics, sleep=backoff)
    with conn:
        target.check_ok(conn.call(*target.ok_call()), target.ok_call()[1])
    assert len(sleeps) == 1
    assert sleeps[0] >= (1.5 if header == "http-date" else 2)


def test_retry_after_longer_than_the_budget_is_handed_to_the_caller(clean_sandbox, metrics):
    target = MarketSandbox(clean_sandbox)
    clean_sandbox.faults("market").set(outage_for=60)
    conn = build({**target.block(), "retry": {"attempts": 5, "max_time": 10}}, metrics)
    with conn, pytest.raises(RecoverableError) as info:
        conn.call(*target.ok_call())
    assert info.value.status == 503
    assert 50 <= info.value.retry_after <= 60
    assert len(clean_sandbox.received("market")) == 0  # outages answer before recording
    clean_sandbox.faults("market").clear()


# ---------------------------------------------------------------------- auth

def test_appkey_signature_is_accepted(clean_sandbox, metrics):
    target = MarketSandbox(clean_sandbox)
    with build(target.block(), metrics) as conn:
        for operation, payload in (target.ok_call(),
                                   ("licence_post", target.ok_call()[1])):
            target.check_ok(conn.call(operation, payload), payload)
    nonces = {r["headers"].get("X-Nonce") for r in clean_sandbox.received("market")}
    assert len(nonces) == 2  # never reused


def test_wrong_appkey_secret_is_refused_permanently(clean_sandbox, metrics):
    target = MarketSandbox(clean_sandbox)
    block = target.block()
    block["auth"] = {**block["auth"], "app_secret": "wrong"}
    with build(block, metrics) as conn, pytest.raises(PermanentError) as info:
        conn.call(*target.ok_call())
    assert info.value.status == 401


def test_data_exchange_signature_is_accepted_and_wrong_secret_refused(clean_sandbox, metrics):
    target = GovSandbox(clean_sandbox)
    with build(target.block(), metrics) as conn:
        operation, payload = target.ok_call()
        target.check_ok(conn.call(operation, payload), payload)
    block = target.block()
    del block["auth"]["refresh"]
    block["auth"]["secret"] = "0" * 40
    with build(block, metrics) as conn, pytest.raises(PermanentError) as info:
        conn.call(*target.ok_call())
    assert info.value.status == 401
    assert "INVALID_SIGNATURE" in str(info.value)


def test_expired_app_secret_is_refreshed_after_401_and_used_from_then_on(clean_sandbox,
                                                                         metrics):
    target = GovSandbox(clean_sandbox)
    with build(target.block(), metrics) as conn:
        operation, payload = target.ok_call()
        conn.call(operation, payload)
        clean_sandbox.expire_secret("gov")
        target.check_ok(conn.call(operation, payload), payload)
        target.check_ok(conn.call(operation, payload), payload)
    ops = [r["operation"] for r in clean_sandbox.received("gov")]
    assert ops.count("exchange.refresh_secret") == 1
    current = clean_sandbox.credentials["gov"]["current_secret"]
    assert current != clean_sandbox.credentials["gov"]["initial_secret"]
    assert conn.inner.auth.cache.value == current


def test_app_secret_is_fetched_when_only_the_refresh_key_is_configured(clean_sandbox, metrics):
    target = GovSandbox(clean_sandbox)
    block = target.block()
    key = block["auth"].pop("secret")
    block["auth"]["refresh"]["key"] = key
    with build(block, metrics) as conn:
        operation, payload = target.ok_call()
        target.check_ok(conn.call(operation, payload), payload)
    assert conn.inner.auth.fetches == 1


def test_bearer_token_is_fetched_once_and_refetched_after_401(clean_sandbox, metrics):
    target = TradeSandbox(clean_sandbox)
    with build(target.block(), metrics) as conn:
        operation, payload = target.ok_call()
        for _ in range(3):
            target.check_ok(conn.call(operation, payload), payload)
        assert conn.inner.auth.fetches == 1
        clean_sandbox.expire_tokens()
        target.check_ok(conn.call(operation, payload), payload)
        assert conn.inner.auth.fetches == 2


def test_bearer_token_is_refreshed_before_it_expires(metrics):
    dept = Department(auth="bearer", token_lifetime=60).start()
    try:
        block = {"type": "rest", "base_url": dept.url,
                 "auth": {"scheme": "bearer", "token_url": "/oauth/token",
                          "client_id": "hub-client", "client_secret": "client-secret",
                          "refresh_before": 60},
                 "operations": {"get": {"path": "/contracts/{n}"}}}
        with build(block, metrics) as conn:
            for n in range(3):
                conn.call("get", {"n": n})
        # 60 s lifetime, refreshed 60 s early: every call needs a fresh token, none gets a 401.
        assert dept.token_requests == 3
        assert len(dept.received) == 3
    finally:
        dept.stop()


def test_wrong_client_secret_fails_permanently(clean_sandbox, metrics):
    target = TradeSandbox(clean_sandbox)
    block = target.block()
    block["auth"]["client_secret"] = "wrong"
    with build(block, metrics) as conn, pytest.raises(PermanentError) as info:
        conn.call(*target.ok_call())
    assert info.value.status == 401


def test_basic_auth(clean_sandbox, metrics):
    creds = clean_sandbox.credentials["basic"]
    block = {"type": "rest", "base_url": clean_sandbox.url("police"),
             "auth": {"scheme": "basic", **creds},
             "operations": {"household": {"method": "POST",
                                          "path": "/api/police/household/query"}}}
    person = clean_sandbox.data["people"][0]
    with build(block, metrics) as conn:
        reply = conn.call("household", {"name": person["name"], "cert_num": person["cert_num"]})
        assert reply["code"] == "0"
    block["auth"]["password"] = "wrong"
    with build(block, metrics) as conn, pytest.raises(PermanentError) as info:
        conn.call("household", {"name": person["name"], "cert_num": person["cert_num"]})
    assert info.value.status == 401


# ----------------------------------------------------------------------- TLS

@pytest.fixture
def pki(tmp_path):
    from .helpers import make_pki

    return make_pki(tmp_path)


@pytest.fixture
def mtls_department(pki):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki["server"], pki["server_key"])
    context.load_verify_locations(pki["ca"])
    context.verify_mode = ssl.CERT_REQUIRED
    dept = Department(tls=context).start()
    yield dept
    dept.stop()


def mtls_block(dept, pki, **tls):
    return {"type": "rest", "base_url": dept.url, "retry": {"attempts": 1},
            "tls": tls, "operations": {"get": {"path": "/contracts/{n}", "response": "data"}}}


def test_mutual_tls_with_a_private_ca(mtls_department, pki, metrics):
    block = mtls_block(mtls_department, pki, ca_bundle="ca.pem", client_cert="client.pem",
                       client_key="client.key")
    conn = connectors.build("tls", block, base_dir=pki["ca"].parent, metrics=metrics)
    conn = conn if RUNNER is None else RUNNER.wrap(conn)
    with conn:
        assert conn.call("get", {"n": "7"})["contract_no"] == "7"
        assert conn.health().up


def test_missing_client_certificate_is_a_permanent_tls_error(mtls_department, pki, metrics):
    block = mtls_block(mtls_department, pki, ca_bundle=str(pki["ca"]))
    with build(block, metrics) as conn, pytest.raises((PermanentError, RecoverableError)) as info:
        conn.call("get", {"n": "7"})
    assert mtls_department.received == []
    # TLS 1.3 reports the refused client certificate after the handshake, as a reset.
    assert "TLS" in str(info.value) or "connection" in str(info.value)


def test_untrusted_server_certificate_is_a_permanent_tls_error(mtls_department, pki, metrics):
    block = mtls_block(mtls_department, pki, client_cert=str(pki["client"]),
                       client_key=str(pki["client_key"]))
    with build(block, metrics) as conn, pytest.raises(PermanentError, match="TLS"):
        conn.call("get", {"n": "7"})


def test_missing_certificate_file_is_a_config_error(department, metrics):
    from bdchub.core.errors import ConfigError

    block = {"type": "rest", "base_url": department.url, "tls": {"ca_bundle": "nope.pem"}}
    with pytest.raises(ConfigError, match="nope.pem"):
        build(block, metrics).open()


# -------------------------------------------------------------------- health

def test_health_defaults_to_head_on_the_base_url(department, metrics):
    with build({"type": "rest", "base_url": department.url}, metrics) as conn:
        health = conn.health()
    assert health.up
    assert department.received[-1]["method"] == "HEAD"


def test_requests_on_the_loop_share_one_token_fetch_without_blocking_the_loop():
    """Two requests on one event loop both need a token: the second waits for the
    first one's fetch (suspended in a thread) without blocking the loop, which a
    plain lock would (the fetcher could never resume)."""
    import asyncio
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from bdchub.connectors.auth import BearerAuth
    from bdchub.core import greenloop

    class SlowTokenSession:
        fetched = 0

        def request(self, method, url, timeout, **kwargs):
            SlowTokenSession.fetched += 1
            threading.Event().wait(0.2)

            class Reply:
                status_code = 200

                @staticmethod
                def json():
                    return {"access_token": "tok-1", "expires_in": 3600}

            return Reply()

    auth = BearerAuth("dept", {"type": "bearer", "token_url": "/token", "client_id": "c",
                               "client_secret": "s"}, SlowTokenSession(), "http://dept")

    async def both():
        return await asyncio.wait_for(asyncio.gather(
            greenloop.run(auth.token, 5.0, executor=pool),
            greenloop.run(auth.token, 5.0, executor=pool)), 10)

    with ThreadPoolExecutor(2) as pool:
        assert asyncio.run(both()) == ["tok-1", "tok-1"]
    assert SlowTokenSession.fetched == 1
