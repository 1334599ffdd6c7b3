"""Progress queries (masked), request/reply routes, health, metrics and OpenAPI."""

from __future__ import annotations

import json

import pytest
from openapi_spec_validator import validate as validate_openapi

from bdchub.core.envelope import Envelope
from bdchub.core.errors import PermanentError, TimeoutError_

from .conftest import ID_NUMBER, TENANT, SignedClient

RECORD = {
    "business_no": "YWH2024000001", "tenant": TENANT, "stage": "acceptance",
    "status": "completed", "time": "2024-05-02T10:00:00+08:00",
    "organisation": {"name": "海门区不动产登记中心"},
    "applicants": [{"name": "张三", "id_type": "1", "id_number": ID_NUMBER,
                    "phone": "13812345678"}],
    "note": "已受理，联系电话 13912345678",
}


@pytest.fixture
def with_progress(hub):
    hub.add_progress(TENANT, "YWH2024000001", json.loads(json.dumps(RECORD)),
                     client="county_window", channel="county")
    return hub


# -- progress ----------------------------------------------------------------------

def test_progress_by_business_number_answers_masked_records(client, with_progress):
    response = client.get("/api/v1/progress/YWH2024000001")

    assert response.status_code == 200
    answer = response.get_json()
    assert answer["business_no"] == "YWH2024000001"
    [record] = answer["progress"]
    assert record["stage"] == "acceptance"
    assert record["applicants"][0]["name"] == "张*"
    assert record["applicants"][0]["id_number"] == ID_NUMBER[:6] + "********" + ID_NUMBER[-4:]
    assert record["applicants"][0]["phone"] == "138****5678"
    assert record["note"] == "已受理，联系电话 139****5678"


def test_progress_by_applicant_id_answers_masked_records_and_audits_the_masked_id(
        client, with_progress):
    response = client.get(f"/api/v1/progress?id_number={ID_NUMBER}")

    assert response.status_code == 200
    answer = response.get_json()
    assert answer["id_number"] == "110105********" + ID_NUMBER[-4:]
    assert len(answer["progress"]) == 1
    assert ID_NUMBER not in response.get_data(as_text=True)
    [query] = with_progress.audited("inbound.progress_query")
    assert query["id_number"] == answer["id_number"]
    assert ID_NUMBER not in json.dumps(with_progress.audits)


def test_progress_of_an_unknown_business_answers_404(client, hub):
    response = client.get("/api/v1/progress/YWH404")

    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def test_progress_by_applicant_without_id_number_answers_400(client):
    response = client.get("/api/v1/progress")

    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "bad_request"


def test_progress_of_another_county_is_forbidden(client, with_progress):
    response = client.get("/api/v1/progress/YWH2024000001", headers={"X-Tenant": "320681"})

    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "tenant_forbidden"


def test_signature_covers_the_query_string(client, with_progress):
    from bdchub.web.signing import signed_headers

    from .conftest import APP_KEY, SECRET

    headers = signed_headers(APP_KEY, SECRET, "GET", "/api/v1/progress?id_number=110105", b"")
    response = client.request("GET", f"/api/v1/progress?id_number={ID_NUMBER}", headers=headers,
                              sign=False)

    assert response.status_code == 401


# -- request/reply routes ----------------------------------------------------------

ENDPOINTS = [
    {"method": "POST", "path": "/api/v1/verify/{kind}", "route": "verify", "type": "identity.check"},
    {"method": "POST", "path": "/api/v1/apply-sync", "route": "apply_sync", "schema": "application"},
    {"method": "POST", "path": "/bench/echo", "route": "echo", "auth": "none"},
]


@pytest.fixture
def routed(make_app, hub):
    hub.routes["verify"] = lambda env: env.evolve(type="identity.checked",
                                                  body={"ok": True, "kind": env.headers["path.kind"]})
    hub.routes["echo"] = lambda env: env.evolve(body={"echo": dict(env.body)})
    hub.routes["apply_sync"] = lambda env: env.evolve(body={"accepted": env.business_no})
    return make_app(endpoints=ENDPOINTS)


def test_request_reply_endpoint_answers_the_route_reply(routed, hub):
    response = SignedClient(routed).post("/api/v1/verify/identity", {"name": "x"})

    assert response.status_code == 200
    assert response.get_json() == {"ok": True, "kind": "identity"}
    [(route, envelope)] = hub.sync_calls
    assert (route, envelope.type, envelope.tenant) == ("verify", "identity.check", TENANT)
    assert hub.published == []


def test_request_reply_endpoint_with_a_schema_refuses_violations_before_the_route(routed, hub):
    response = SignedClient(routed).post("/api/v1/apply-sync", {"business_no": "YWH1"})

    assert response.status_code == 422
    assert hub.sync_calls == []


def test_request_reply_endpoint_without_auth_needs_no_signature(routed):
    response = SignedClient(routed).post("/bench/echo", {"a": 1}, sign=False)

    assert response.status_code == 200
    assert response.get_json() == {"echo": {"a": 1}}


def test_request_reply_endpoint_is_signed_by_default(routed):
    response = SignedClient(routed).post("/api/v1/verify/identity", {"name": "x"}, sign=False)

    assert response.status_code == 401


@pytest.mark.parametrize("error, status, code", [
    (PermanentError("tax said no"), 502, "upstream_error"),
    (TimeoutError_("tax too slow"), 504, "timeout"),
])
def test_route_failures_map_to_gateway_answers(routed, hub, error, status, code):
    def fail(envelope: Envelope) -> Envelope:
        raise error
    hub.routes["verify"] = fail

    response = SignedClient(routed).post("/api/v1/verify/identity", {"name": "x"})

    assert (response.status_code, response.get_json()["error"]["code"]) == (status, code)
    assert hub.audited("inbound.rejected")[0]["code"] == code


def test_a_refusal_the_route_answers_itself_is_audited_with_its_code_and_counted_once(
        routed, hub, registry):
    hub.routes["verify"] = lambda env: env.evolve(
        body={"error": {"code": "not_found", "message": "本县（区）没有该不动产"}},
        headers={**env.headers, "http.status": "404"})

    response = SignedClient(routed).post("/api/v1/verify/identity", {"name": "x"})

    assert response.status_code == 404
    error = response.get_json()["error"]
    assert error["code"] == "not_found" and error["message"] == "本县（区）没有该不动产"
    [refused] = hub.audited("inbound.rejected")
    assert (refused["status"], refused["code"], refused["reason"], refused["route"],
            refused["type"]) == (404, "not_found", "route_refused", "verify", "identity.check")
    counted = {(s.labels["channel"], s.labels["outcome"]): s.value
               for m in registry.collect() if m.name == "bdchub_inbound_channel_requests"
               for s in m.samples if s.name.endswith("_total")}
    assert counted == {("county", "refused"): 1.0}


def test_an_answer_the_route_gives_is_not_a_refusal(routed, hub):
    response = SignedClient(routed).post("/api/v1/verify/identity", {"name": "x"})

    assert response.status_code == 200
    assert hub.audited("inbound.rejected") == []


def test_endpoint_clashing_with_a_built_in_one_is_a_config_error(make_app):
    from bdchub.core.errors import ConfigError

    with pytest.raises(ConfigError):
        make_app(endpoints=[{"method": "POST", "path": "/api/v1/applications", "route": "x"}])


# -- health, metrics, OpenAPI ------------------------------------------------------

def test_health_needs_no_signature(client):
    response = client.get("/api/v1/health", sign=False)

    assert response.status_code == 200
    assert response.get_json()["status"] == "ok"


def test_metrics_count_answers_by_endpoint_and_status(client, registry, application):
    client.post("/api/v1/applications", application)
    client.request("POST", "/api/v1/applications", data=b"{")

    text = client.get("/metrics", sign=False).get_data(as_text=True)

    assert 'bdchub_inbound_requests_total{endpoint="/api/v1/applications",status="202"} 1.0' in text
    assert 'bdchub_inbound_rejected_total{code="malformed_json",endpoint="/api/v1/applications"} 1.0' in text


def test_openapi_document_is_valid_openapi_3_1(routed):
    response = SignedClient(routed).get("/openapi.json", sign=False)
    document = response.get_json()

    validate_openapi(document)
    assert document["openapi"] == "3.1.0"
    assert "/api/v1/applications" in document["paths"]
    assert "/api/v1/verify/{kind}" in document["paths"]
    assert document["components"]["schemas"]["application"]["properties"]["applicants"]["items"] \
        == {"$ref": "#/components/schemas/common.party"}


def test_config_schema_accepts_a_full_block_and_its_defaults():
    from jsonschema import Draft202012Validator

    from bdchub.web.config_schema import INBOUND_SCHEMA, with_defaults

    block = {"listen": {"host": "0.0.0.0", "port": 8443, "threads": 16},
             "max_body_bytes": 1048576, "clock_skew": 120,
             "clients": {"cw": {"app_key": "ck", "app_secret": "${CW_SECRET}",
                                "tenants": ["320684", "3206*"], "channel": "county"}},
             "endpoints": ENDPOINTS}
    Draft202012Validator.check_schema(INBOUND_SCHEMA)
    assert list(Draft202012Validator(INBOUND_SCHEMA).iter_errors(block)) == []
    assert with_defaults(block)["nonce_ttl"] == 240
    assert with_defaults({})["max_body_bytes"] == 10 * 1024 * 1024


def test_the_fake_hub_satisfies_the_port():
    from bdchub.web.fake import FakeHub
    from bdchub.web.ports import HubPort

    assert isinstance(FakeHub(), HubPort)


def test_endpoints_declared_by_routes_are_served_and_queued_without_reply(hub, registry):
    from bdchub.web.app import create_app
    from bdchub.web.metrics import InboundMetrics

    from .conftest import config

    hub.endpoints = lambda: [{"route": "bank_mortgage", "path": "/api/v1/bank/mortgages",
                              "method": "POST", "reply": False, "type": "inbound.bank_mortgage"}]
    app = create_app(hub, config(), metrics=InboundMetrics(registry))

    response = SignedClient(app).post("/api/v1/bank/mortgages", {"loan": 1})

    assert response.status_code == 202, response.get_json()
    [(route, envelope)] = hub.submitted
    assert (route, envelope.type, envelope.tenant) == ("bank_mortgage", "inbound.bank_mortgage", TENANT)
    assert response.get_json()["id"] == envelope.id
    assert hub.published == []


def test_progress_answer_given_as_one_record_is_served_as_a_list(client, hub):
    hub.progress_by_business_no = lambda tenant, bno, **scope: {
        "business_no": bno, "stage": "review", "applicant": {"name": "张三"}}

    response = client.get("/api/v1/progress/YWH2024000001")

    assert response.get_json()["progress"] == [
        {"business_no": "YWH2024000001", "stage": "review", "applicant": {"name": "张*"}}]
