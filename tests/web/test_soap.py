"""The inbound SOAP endpoint for legacy systems: operations, auth, faults, hostile XML."""

from __future__ import annotations

import base64
import hashlib
import os
from datetime import UTC, datetime, timedelta

import pytest
from lxml import etree

from bdchub.sandbox.soap import billion_laughs_dtd

from .conftest import (
    APP_KEY,
    ID_NUMBER,
    LEGACY_KEY,
    LEGACY_SECRET,
    SECRET,
    TENANT,
    SignedClient,
)

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
NS = "urn:bdc-hub:inbound:1"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
DIGEST = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest"
TEXT = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText"

STAGE_CHANGE = f"""<tns:ReportStageChange xmlns:tns="{NS}">
  <tns:YWH>YWH2024000001</tns:YWH>
  <tns:Stage>受理</tns:Stage>
  <tns:Status>已完成</tns:Status>
  <tns:Time>2024-05-02T10:00:00+08:00</tns:Time>
  <tns:Org>海门区不动产登记中心</tns:Org>
  <tns:Note>材料齐全，予以受理</tns:Note>
</tns:ReportStageChange>"""

RESULT = f"""<tns:SubmitResult xmlns:tns="{NS}">
  <tns:YWH>YWH2024000001</tns:YWH>
  <tns:RegType>100</tns:RegType>
  <tns:RightType>4</tns:RightType>
  <tns:UnitCode>320684413219GB00029F00010002</tns:UnitCode>
  <tns:RegisteredAt>2024-05-10T15:00:00+08:00</tns:RegisteredAt>
  <tns:Registrar>王五</tns:Registrar>
  <tns:Org>海门区不动产登记中心</tns:Org>
  <tns:RightHolder><tns:Name>张三</tns:Name><tns:IdType>1</tns:IdType>
    <tns:IdNumber>{ID_NUMBER}</tns:IdNumber></tns:RightHolder>
  <tns:CertificateNo>苏(2024)海门区不动产权第0001234号</tns:CertificateNo>
</tns:SubmitResult>"""


def envelope(operation: str, header: str = "") -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="{SOAP}">'
            f"<soap:Header>{header}</soap:Header><soap:Body>{operation}</soap:Body>"
            f"</soap:Envelope>").encode()


@pytest.fixture
def client(app) -> SignedClient:
    """The registration system: the client that owns what the SOAP operations report."""
    return SignedClient(app, LEGACY_KEY, LEGACY_SECRET)


def username_token(key: str = LEGACY_KEY, secret: str = LEGACY_SECRET, *,
                   nonce: bytes | None = None,
                   created: datetime | None = None, kind: str = DIGEST) -> str:
    nonce = nonce or os.urandom(16)
    stamp = (created or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    if kind == DIGEST:
        password = base64.b64encode(hashlib.sha1(nonce + stamp.encode() + secret.encode())
                                    .digest()).decode()
    else:
        password = secret
    return (f'<wsse:Security xmlns:wsse="{WSSE}" xmlns:wsu="{WSU}"><wsse:UsernameToken>'
            f"<wsse:Username>{key}</wsse:Username>"
            f'<wsse:Password Type="{kind}">{password}</wsse:Password>'
            f"<wsse:Nonce>{base64.b64encode(nonce).decode()}</wsse:Nonce>"
            f"<wsu:Created>{stamp}</wsu:Created></wsse:UsernameToken></wsse:Security>")


def call(client, body: bytes, *, sign: bool = True, content_type: str = "text/xml; charset=utf-8"):
    return client.request("POST", "/soap/inbound", data=body, sign=sign, content_type=content_type,
                          headers={"SOAPAction": '"urn:bdc-hub:inbound:1#ReportStageChange"'})


def fault_of(response) -> dict:
    root = etree.fromstring(response.get_data())
    fault = root.find(f"{{{SOAP}}}Body/{{{SOAP}}}Fault")
    assert fault is not None, response.get_data(as_text=True)
    return {"faultcode": fault.findtext("faultcode"), "faultstring": fault.findtext("faultstring"),
            "code": fault.findtext(f"detail/{{{NS}}}Violations/{{{NS}}}Code"),
            "paths": [v.get("path") for v in fault.iterfind(f"detail/{{{NS}}}Violations/{{{NS}}}Violation")]}


# -- operations ----------------------------------------------------------------------

def test_stage_change_publishes_progress_reported_in_canonical_form(client, hub):
    response = call(client, envelope(STAGE_CHANGE))

    assert response.status_code == 200, response.get_data(as_text=True)
    [published] = hub.published
    assert published.type == "progress.reported"
    assert (published.tenant, published.business_no) == (TENANT, "YWH2024000001")
    assert dict(published.body) == {
        "business_no": "YWH2024000001", "tenant": TENANT, "stage": "acceptance",
        "status": "completed", "time": "2024-05-02T10:00:00+08:00",
        "organisation": {"name": "海门区不动产登记中心"}, "note": "材料齐全，予以受理"}
    receipt = etree.fromstring(response.get_data())
    assert receipt.findtext(f".//{{{NS}}}MessageId") == published.id
    assert receipt.findtext(f".//{{{NS}}}Accepted") == "true"


def test_submit_result_publishes_registration_recorded_with_certificate_numbers(client, hub):
    response = call(client, envelope(RESULT))

    assert response.status_code == 200, response.get_data(as_text=True)
    [published] = hub.published
    assert published.type == "registration.recorded"
    assert published.body["certificate_numbers"] == ["苏(2024)海门区不动产权第0001234号"]
    assert published.body["right_holders"][0]["id_number"] == ID_NUMBER


def test_ws_security_username_token_with_digest_is_accepted(client, hub):
    response = call(client, envelope(STAGE_CHANGE, username_token()), sign=False)

    assert response.status_code == 200, response.get_data(as_text=True)
    assert hub.published[0].headers["inbound.client"] == "registration_system"


def test_replayed_username_token_is_refused(client, hub):
    token = username_token(nonce=b"0123456789abcdef")
    first = call(client, envelope(STAGE_CHANGE, token), sign=False)
    again = call(client, envelope(STAGE_CHANGE, token), sign=False)

    assert first.status_code == 200
    assert again.status_code == 401
    assert fault_of(again)["code"] == "replayed_nonce"
    assert len(hub.published) == 1


# -- who may report -------------------------------------------------------------------

@pytest.mark.parametrize("operation", [STAGE_CHANGE, RESULT],
                         ids=["ReportStageChange", "SubmitResult"])
def test_a_window_may_not_report_what_only_the_registration_system_owns(app, hub, operation):
    window = SignedClient(app, APP_KEY, SECRET)

    response = call(window, envelope(operation))

    assert response.status_code == 403
    fault = fault_of(response)
    assert (fault["faultcode"], fault["code"]) == ("soap:Client", "type_forbidden")
    assert hub.published == []
    [record] = hub.audited("inbound.rejected")
    assert (record["client"], record["code"], record["reason"]) == (
        "county_window", "type_forbidden", "hub_event")


def test_a_window_signing_with_a_username_token_may_not_report_either(app, hub):
    token = username_token(APP_KEY, SECRET)

    response = call(SignedClient(app, APP_KEY, SECRET), envelope(STAGE_CHANGE, token), sign=False)

    assert (response.status_code, fault_of(response)["code"]) == (403, "type_forbidden")
    assert hub.published == []


@pytest.mark.parametrize("token, reason", [
    (username_token(secret="wrong-secret-0123456789"), "signature_mismatch"),
    (username_token(kind=TEXT), "password_not_digest"),
    (username_token(created=datetime.now(UTC) - timedelta(hours=1)), "clock_skew"),
    ("", "missing_headers"),
])
def test_bad_username_tokens_are_refused_with_a_client_fault(client, hub, token, reason):
    response = call(client, envelope(STAGE_CHANGE, token), sign=False)

    assert response.status_code == 401
    assert fault_of(response)["faultcode"] == "soap:Client"
    assert hub.published == []
    assert hub.audited("inbound.rejected")[0]["reason"] == reason


# -- faults ------------------------------------------------------------------------

_LOL_DTD, _LOL_REF = billion_laughs_dtd()
BILLION_LAUGHS = ('<?xml version="1.0"?>\n' + _LOL_DTD + "\n" + """<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>
<tns:ReportStageChange xmlns:tns="urn:bdc-hub:inbound:1"><tns:YWH>""" + _LOL_REF + """</tns:YWH>
</tns:ReportStageChange></soap:Body></soap:Envelope>""").encode()

XXE = b"""<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>
<tns:ReportStageChange xmlns:tns="urn:bdc-hub:inbound:1"><tns:Note>&xxe;</tns:Note>
</tns:ReportStageChange></soap:Body></soap:Envelope>"""


@pytest.mark.parametrize("payload", [BILLION_LAUGHS, XXE], ids=["billion-laughs", "xxe"])
def test_doctype_payloads_are_refused_with_a_client_fault_and_nothing_expanded(
        client, hub, payload):
    response = call(client, payload)

    assert response.status_code == 500
    fault = fault_of(response)
    assert (fault["faultcode"], fault["code"]) == ("soap:Client", "unsafe_xml")
    assert len(response.get_data()) < 2000  # the answer carries no expansion
    assert b"root:" not in response.get_data()
    assert hub.published == []
    assert hub.audited("inbound.rejected")[0]["reason"] == "doctype"


def test_doctype_in_utf16_is_refused_too(client, hub):
    payload = BILLION_LAUGHS.replace(b'<?xml version="1.0"?>',
                                     b'<?xml version="1.0" encoding="UTF-16"?>').decode()
    response = call(client, payload.encode("utf-16"))

    assert fault_of(response)["code"] == "unsafe_xml"
    assert hub.published == []


def test_the_hardened_parser_does_not_expand_entities_on_its_own():
    from bdchub.core.safexml import hardened_parser

    body = BILLION_LAUGHS.replace(b"&lol9;", b"&lol2;")
    root = etree.fromstring(body, hardened_parser())

    assert b"lollollol" not in etree.tostring(root)


def test_schema_violation_is_a_client_fault_listing_each_path(client, hub):
    bad = STAGE_CHANGE.replace("受理", "喝茶").replace("2024-05-02T10:00:00+08:00", "yesterday")

    response = call(client, envelope(bad), sign=True)

    assert response.status_code == 500
    fault = fault_of(response)
    assert (fault["faultcode"], fault["code"]) == ("soap:Client", "schema_violation")
    assert fault["paths"] == ["$.stage", "$.time"]
    assert hub.published == []


@pytest.mark.parametrize("body, code", [
    (b"<soap:Envelope", "malformed_xml"),
    (envelope(f'<tns:Dance xmlns:tns="{NS}"/>'), "unknown_type"),
    (b'<x xmlns="urn:other"/>', "malformed_xml"),
])
def test_bad_soap_requests_answer_client_faults(client, hub, body, code):
    response = call(client, body)

    fault = fault_of(response)
    assert (fault["faultcode"], fault["code"]) == ("soap:Client", code)
    assert hub.published == []
    assert len(hub.audited("inbound.rejected")) == 1


def test_unsigned_soap_request_answers_401_fault(client, hub):
    response = call(client, envelope(STAGE_CHANGE), sign=False)

    assert response.status_code == 401
    assert fault_of(response)["code"] == "bad_signature"


def test_soap_12_is_refused_with_415(client):
    response = call(client, envelope(STAGE_CHANGE), content_type="application/soap+xml")

    assert response.status_code == 415


def test_wsdl_is_served_with_the_callers_address(client):
    response = client.get("/soap/inbound?wsdl", sign=False, headers={"Host": "hub.example:9000"})

    assert response.status_code == 200
    wsdl = etree.fromstring(response.get_data())
    address = wsdl.find(".//{http://schemas.xmlsoap.org/wsdl/soap/}address")
    assert address.get("location") == "http://hub.example:9000/soap/inbound"
    operations = {op.get("name") for op in wsdl.iterfind(
        ".//{http://schemas.xmlsoap.org/wsdl/}portType/{http://schemas.xmlsoap.org/wsdl/}operation")}
    assert operations == {"ReportStageChange", "SubmitResult"}
