"""The JSON API: what one-window platforms may submit, and how bad input is refused."""

from __future__ import annotations

import io
import json
import time

import pytest

from bdchub.core import i18n
from bdchub.core.errors import HubError
from bdchub.web.signing import signed_headers

from .conftest import (
    APP_KEY,
    APPOINTMENT,
    ID_NUMBER,
    LEGACY_KEY,
    LEGACY_SECRET,
    MATERIALS,
    PROVINCE_KEY,
    PROVINCE_SECRET,
    SECRET,
    TENANT,
    SignedClient,
)


def error_of(response) -> dict:
    return response.get_json()["error"]


# -- accepted submissions ------------------------------------------------------

def test_accepted_application_publishes_exactly_one_envelope_with_tenant_and_business_no(
        client, hub, application):
    response = client.post("/api/v1/applications", application)

    assert response.status_code == 202
    assert len(hub.published) == 1
    envelope = hub.published[0]
    assert envelope.type == "application.submitted"
    assert envelope.tenant == TENANT
    assert envelope.business_no == "YWH2024000001"
    assert dict(envelope.body) == application
    assert envelope.headers["inbound.client"] == "county_window"
    assert envelope.headers["inbound.channel"] == "county"


def test_accepted_application_answers_id_business_no_and_status(client, hub, application):
    response = client.post("/api/v1/applications", application)

    assert response.get_json() == {"id": hub.published[0].id, "business_no": "YWH2024000001",
                                   "type": "application.submitted", "status": "accepted"}
    assert response.headers["Location"] == "/api/v1/progress/YWH2024000001"


def test_accepted_application_is_audited_without_personal_data(client, hub, application):
    client.post("/api/v1/applications", application)

    [record] = hub.audited("inbound.accepted")
    assert record["message_id"] == hub.published[0].id
    assert record["client"] == "county_window"
    assert ID_NUMBER not in json.dumps(hub.audits, ensure_ascii=False)
    assert "张三" not in json.dumps(hub.audits, ensure_ascii=False)


def test_appointment_publishes_appointment_requested(client, hub):
    response = client.post("/api/v1/appointments", APPOINTMENT)

    assert response.status_code == 202, response.get_json()
    assert [e.type for e in hub.published] == ["appointment.requested"]
    assert hub.published[0].tenant == TENANT


def test_material_update_takes_its_business_number_from_the_url(client, hub):
    hub.add_progress(TENANT, "YWH2024000001", {"stage": "correction", "status": "suspended"},
                     client="county_window")  # sent back for correction
    response = client.post("/api/v1/applications/YWH2024000001/materials", MATERIALS)

    assert response.status_code == 202, response.get_json()
    [envelope] = hub.published
    assert envelope.type == "application.materials_updated"
    assert envelope.business_no == "YWH2024000001"
    assert envelope.body["materials"] == MATERIALS["materials"]


def test_material_update_naming_another_business_is_a_schema_violation(client, hub):
    response = client.post("/api/v1/applications/YWH2024000001/materials",
                           {**MATERIALS, "business_no": "YWH2024000002"})

    assert response.status_code == 422
    assert [v["path"] for v in error_of(response)["violations"]] == ["$.business_no"]
    assert hub.published == []


def test_generic_endpoint_accepts_a_known_type_from_the_client_that_owns_it(app, hub):
    progress = {"business_no": "YWH2024000001", "stage": "acceptance", "status": "completed",
                "time": "2024-05-02T10:00:00+08:00", "organisation": {"name": "海门区不动产登记中心"}}
    response = SignedClient(app, LEGACY_KEY, LEGACY_SECRET).post(
        "/api/v1/messages/progress.reported", progress)

    assert response.status_code == 202, response.get_json()
    assert [(e.type, e.tenant) for e in hub.published] == [("progress.reported", TENANT)]


def test_province_client_may_act_for_any_county_of_its_province(app, hub, application):
    province = SignedClient(app, PROVINCE_KEY, PROVINCE_SECRET)
    application["tenant"] = "320681"

    response = province.post("/api/v1/applications", application)

    assert response.status_code == 202, response.get_json()
    assert hub.published[0].tenant == "320681"


# -- bad input: status, code, nothing published, audited -------------------------

def test_schema_violations_answer_422_with_each_path_and_message(client, hub, application):
    application["applicants"][0]["id_number"] = ID_NUMBER[:-1] + ("0" if ID_NUMBER[-1] != "0" else "1")
    del application["materials"]

    response = client.post("/api/v1/applications", application, headers={"Accept-Language": "en"})

    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "schema_violation"
    paths = {v["path"]: v["message"] for v in error["violations"]}
    assert set(paths) == {"$.applicants[0].id_number", "$.materials"}
    assert "check" in paths["$.applicants[0].id_number"].lower()
    assert paths["$.materials"] == "required field is missing"


def test_audit_of_a_schema_violation_names_paths_but_not_the_offending_values(
        client, hub, application):
    application["applicants"][0]["id_number"] = "110105199001011230"

    client.post("/api/v1/applications", application)

    [record] = hub.audited("inbound.rejected")
    assert record["violations"] == ["$.applicants[0].id_number"]
    assert "110105199001011230" not in json.dumps(hub.audits)


def test_malformed_json_answers_400(client, hub):
    response = client.request("POST", "/api/v1/applications", data=b'{"business_no": "YWH1",')

    assert response.status_code == 400
    assert error_of(response)["code"] == "malformed_json"


def test_json_that_is_not_an_object_is_a_schema_violation(client):
    response = client.request("POST", "/api/v1/applications", data=b"[1, 2]")

    assert response.status_code == 422
    assert error_of(response)["violations"][0]["path"] == "$"


class ExplodingInput(io.BytesIO):
    def read(self, *args):  # pragma: no cover - reaching it is the failure
        raise AssertionError("the body was read although Content-Length was too large")


def test_oversized_body_answers_413_from_content_length_without_reading_it(app, hub):
    status_headers = {}

    def start_response(status, headers):
        status_headers["status"] = status

    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/api/v1/applications",
               "CONTENT_LENGTH": str(app.max_body + 1), "CONTENT_TYPE": "application/json",
               "wsgi.input": ExplodingInput(), "QUERY_STRING": ""}
    body = b"".join(app(environ, start_response))

    assert status_headers["status"].startswith("413")
    assert json.loads(body)["error"]["code"] == "too_large"
    assert hub.published == []
    assert hub.audited("inbound.rejected")[0]["code"] == "too_large"


def test_oversized_chunked_body_answers_413_after_a_capped_read(app, hub):
    sent = io.BytesIO(b"x" * (app.max_body * 3))
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/api/v1/applications",
               "CONTENT_TYPE": "application/json", "wsgi.input": sent,
               "wsgi.input_terminated": True, "QUERY_STRING": ""}
    statuses = []
    app(environ, lambda status, headers: statuses.append(status))

    assert statuses[0].startswith("413")
    assert sent.tell() == app.max_body + 1


def test_tampered_body_answers_401_bad_signature(client, hub, application):
    signed = json.dumps(application).encode()
    headers = signed_headers(APP_KEY, SECRET, "POST", "/api/v1/applications", signed)
    tampered = signed.replace(b"YWH2024000001", b"YWH2024000009")

    response = client.request("POST", "/api/v1/applications", data=tampered, headers=headers,
                              sign=False)

    assert response.status_code == 401
    assert error_of(response)["code"] == "bad_signature"
    assert hub.audited("inbound.rejected")[0]["reason"] == "signature_mismatch"


def test_unsigned_request_answers_401(client, application):
    response = client.post("/api/v1/applications", application, sign=False)

    assert response.status_code == 401
    assert error_of(response)["code"] == "bad_signature"
    assert "WWW-Authenticate" in response.headers


def test_unknown_app_key_answers_401(app, application):
    stranger = SignedClient(app, "nobody", SECRET)

    response = stranger.post("/api/v1/applications", application)

    assert response.status_code == 401
    assert error_of(response)["code"] == "bad_signature"


def test_timestamp_beyond_clock_skew_answers_401(client, hub, application):
    response = client.post("/api/v1/applications", application, timestamp=int(time.time()) - 301)

    assert response.status_code == 401
    assert error_of(response)["code"] == "bad_signature"
    assert hub.audited("inbound.rejected")[0]["reason"] == "clock_skew"


def test_replayed_nonce_is_refused_with_401(client, hub, application):
    body = json.dumps(application).encode()
    headers = signed_headers(APP_KEY, SECRET, "POST", "/api/v1/applications", body)

    first = client.request("POST", "/api/v1/applications", data=body, headers=headers, sign=False)
    replay = client.request("POST", "/api/v1/applications", data=body, headers=headers, sign=False)

    assert first.status_code == 202
    assert replay.status_code == 401
    assert error_of(replay)["code"] == "replayed_nonce"
    assert len(hub.published) == 1


def test_unknown_message_type_answers_404(client, hub):
    response = client.post("/api/v1/messages/lottery.ticket_bought", {"x": 1})

    assert response.status_code == 404
    assert error_of(response)["code"] == "unknown_type"


def test_non_json_body_answers_415(client, application):
    response = client.request("POST", "/api/v1/applications", data=b"business_no=YWH1",
                              content_type="application/x-www-form-urlencoded")

    assert response.status_code == 415
    assert error_of(response)["code"] == "unsupported_media_type"


def test_client_acting_for_a_tenant_it_may_not_answers_403(client, hub, application):
    application["tenant"] = "320681"

    response = client.post("/api/v1/applications", application)

    assert response.status_code == 403
    assert error_of(response)["code"] == "tenant_forbidden"


def test_unknown_path_answers_404_and_wrong_method_405(client):
    assert client.get("/api/v1/nothing").status_code == 404
    response = client.get("/api/v1/applications")
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"


def test_hub_that_cannot_take_the_message_answers_503_and_nothing_is_accepted(
        client, hub, application):
    hub.fail_publish = HubError("broker down")

    response = client.post("/api/v1/applications", application)

    assert response.status_code == 503
    assert error_of(response)["code"] == "unavailable"
    assert hub.audited("inbound.accepted") == []
    assert hub.audited("inbound.rejected")[0]["reason"] == "publish_failed"


def _bad_requests(application):
    stale = int(time.time()) - 10_000
    return [
        ("schema", 422, "schema_violation",
         dict(method="POST", path="/api/v1/applications", json_body={**application, "tenant": "x"})),
        ("malformed", 400, "malformed_json",
         dict(method="POST", path="/api/v1/applications", data=b"{nope")),
        ("too_large", 413, "too_large",
         dict(method="POST", path="/api/v1/applications", data=b" " * (65 * 1024))),
        ("bad_signature", 401, "bad_signature",
         dict(method="POST", path="/api/v1/applications", json_body=application, timestamp=stale)),
        ("unknown_type", 404, "unknown_type",
         dict(method="POST", path="/api/v1/messages/no.such", json_body=application)),
        ("media_type", 415, "unsupported_media_type",
         dict(method="POST", path="/api/v1/applications", data=b"<x/>", content_type="text/xml")),
        ("tenant", 403, "tenant_forbidden",
         dict(method="POST", path="/api/v1/applications",
              json_body={**application, "tenant": "320681"})),
    ]


@pytest.mark.parametrize("case", range(7))
def test_no_bad_request_publishes_anything_and_each_is_audited(client, hub, application, case):
    name, status, code, request = _bad_requests(application)[case]

    response = client.request(**request)

    assert (name, response.status_code, error_of(response)["code"]) == (name, status, code)
    assert hub.published == []
    [record] = hub.audited("inbound.rejected")
    assert record["code"] == code and record["status"] == status
    assert record["endpoint"].startswith("/api/v1/")
    assert error_of(response)["request_id"] == record["request_id"]


# -- language --------------------------------------------------------------------

def test_errors_are_in_chinese_by_default(client):
    i18n.set_language(None)

    response = client.request("POST", "/api/v1/applications", data=b"{")

    assert "JSON" in error_of(response)["message"]
    assert "不是合法的" in error_of(response)["message"]


def test_errors_are_in_english_with_accept_language_or_lang_parameter(client):
    i18n.set_language(None)

    by_header = client.request("POST", "/api/v1/applications", data=b"{",
                               headers={"Accept-Language": "en-US,en;q=0.9"})
    by_param = client.request("POST", "/api/v1/applications?lang=en", data=b"{")

    assert error_of(by_header)["message"].startswith("the body is not valid JSON")
    assert error_of(by_param)["message"].startswith("the body is not valid JSON")
    assert i18n.language() == "zh_CN"  # the request's choice did not leak into the process


def test_schema_violation_messages_follow_the_request_language(client, application):
    i18n.set_language(None)
    application["applicants"][0]["id_number"] = "110105199001011230"

    zh = client.post("/api/v1/applications", application)
    en = client.post("/api/v1/applications?lang=en", application)

    assert "校验码" in error_of(zh)["violations"][0]["message"]
    assert "check" in error_of(en)["violations"][0]["message"].lower()
