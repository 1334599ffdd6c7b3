"""The SOAP connector: faults, hardened XML, WS-Security, ports, WSDL loading, results."""

from __future__ import annotations

import datetime as dt
import shutil
import uuid
from decimal import Decimal
from pathlib import Path

import pytest

from bdchub import connectors
from bdchub.connectors.soap import declares_dtd, jsonable
from bdchub.core.errors import (
    ConfigError,
    PermanentError,
    RecoverableError,
    UnsafeXMLError,
)

from .loopback import BILLION_LAUGHS, external_entity
from .targets import LegacySandbox, SoapLoopback, TaxSandbox

QUICK = {"retry": {"attempts": 3, "backoff": 0.01, "jitter": 0}, "timeout": 5}
WSDL_DIR = Path(__file__).resolve().parents[2] / "schemas" / "wsdl"


def build(block, metrics, **kwargs):
    return connectors.build("soap", {**QUICK, **block}, metrics=metrics,
                            sleep=lambda s: None, **kwargs)


# -------------------------------------------------------------------- faults

def test_client_fault_is_permanent_and_not_retried(clean_sandbox, metrics):
    target = TaxSandbox(clean_sandbox)
    clean_sandbox.faults("tax").set(soap_fault="client")
    with build(target.block(), metrics) as conn, pytest.raises(PermanentError) as info:
        conn.call(*target.ok_call())
    assert info.value.fault_code == "Client"
    assert len(clean_sandbox.received("tax")) == 1


def test_server_fault_is_recoverable_and_retried(clean_sandbox, metrics):
    target = TaxSandbox(clean_sandbox)
    clean_sandbox.faults("tax").set(soap_fault="server")
    with build(target.block(), metrics) as conn, pytest.raises(RecoverableError) as info:
        conn.call(*target.ok_call())
    assert info.value.fault_code == "Server"
    assert len(clean_sandbox.received("tax")) == 3


@pytest.mark.parametrize("kind,code,cls", [("client", "Sender", PermanentError),
                                           ("server", "Receiver", RecoverableError)])
def test_soap12_sender_and_receiver_faults(clean_sandbox, metrics, kind, code, cls):
    target = LegacySandbox(clean_sandbox)
    clean_sandbox.faults("legacy").set(soap_fault=kind)
    with build({**target.block(), "retry": {"attempts": 1}}, metrics) as conn, \
            pytest.raises(cls) as info:
        conn.call(*target.ok_call())
    assert info.value.fault_code == code


def test_a_business_fault_from_the_service_is_permanent(clean_sandbox, metrics):
    target = LegacySandbox(clean_sandbox)
    with build(target.block(), metrics) as conn, pytest.raises(PermanentError, match="YWH"):
        conn.call("QueryProgress", {"YWH": "NO-SUCH-YWH"})


def test_http_503_outage_is_recoverable_with_retry_after(clean_sandbox, metrics):
    target = TaxSandbox(clean_sandbox)
    conn = build({**target.block(), "retry": {"attempts": 1}}, metrics)
    conn.open()  # the WSDL is loaded before the outage
    clean_sandbox.faults("tax").set(outage_for=30)
    with conn, pytest.raises(RecoverableError) as info:
        conn.call(*target.ok_call())
    assert info.value.status == 503
    assert 20 <= info.value.retry_after <= 30


def test_fault_detail_saying_retryable_wins_over_the_code(metrics):
    from lxml import etree
    from zeep.exceptions import Fault

    conn = connectors.registry.create("s", {"type": "soap", "wsdl": "x.wsdl"})
    detail = etree.fromstring("<detail><ServiceFault><Retryable>true</Retryable>"
                              "</ServiceFault></detail>")
    assert isinstance(conn.classify(Fault("busy", code="soap:Client", detail=detail)),
                      RecoverableError)
    conn.config["recoverable_faults"] = ["Busy"]
    assert isinstance(conn.classify(Fault("busy", code="soap:Client.Busy")), PermanentError)
    assert isinstance(conn.classify(Fault("busy", code="Busy")), RecoverableError)


# ------------------------------------------------------------- malicious XML

@pytest.mark.parametrize("kind", ["billion_laughs", "external_entity"])
def test_malicious_xml_from_the_server_is_refused_without_expansion(clean_sandbox, metrics,
                                                                   kind):
    target = TaxSandbox(clean_sandbox)
    clean_sandbox.faults("tax").set(malicious_xml=kind)
    with build(target.block(), metrics) as conn, pytest.raises(UnsafeXMLError):
        conn.call(*target.ok_call())
    assert clean_sandbox.xxe_hits("tax") == 0
    assert len(clean_sandbox.received("tax")) == 1  # refused, not retried


@pytest.mark.parametrize("payload", [BILLION_LAUGHS, external_entity("http://127.0.0.1:9/x")])
def test_zeep_itself_refuses_dtds_and_entities_with_our_settings(payload):
    """The second wall: even past the DOCTYPE pre-check, zeep's parser refuses."""
    from zeep import exceptions as zx
    from zeep.loader import parse_xml

    conn = connectors.registry.create("s", {"type": "soap", "wsdl": "x.wsdl"})
    with pytest.raises((zx.DTDForbidden, zx.EntitiesForbidden, zx.XMLSyntaxError)):
        parse_xml(payload, None, settings=conn._settings())


def test_doctype_detection_looks_only_at_the_prolog():
    assert declares_dtd(b'<?xml version="1.0"?>\n<!-- c --><!DOCTYPE x []><x/>')
    assert declares_dtd(b"\xef\xbb\xbf<!DOCTYPE x><x/>")
    assert declares_dtd('<!DOCTYPE x><x/>'.encode("utf-16"))
    assert not declares_dtd(b"<x><![CDATA[<!DOCTYPE x>]]></x>")
    assert not declares_dtd(b'<?xml version="1.0"?><soap:Envelope/>')


def test_a_wsdl_importing_from_another_origin_is_refused(tmp_path, department, metrics):
    wsdl = (WSDL_DIR / "tax.wsdl").read_text().replace(
        'schemaLocation="tax.xsd"', f'schemaLocation="{department.url}/tax.xsd"')
    (tmp_path / "tax.wsdl").write_text(wsdl)
    conn = build({"type": "soap", "wsdl": "tax.wsdl"}, metrics, base_dir=tmp_path)
    with pytest.raises(UnsafeXMLError, match="ExternalReferenceForbidden"):
        conn.open()
    assert department.received == []


# ---------------------------------------------------------------- WS-Security

@pytest.mark.parametrize("digest", [True, False])
def test_username_token_text_and_digest_are_accepted(clean_sandbox, metrics, digest):
    target = TaxSandbox(clean_sandbox)
    block = target.block()
    block["wsse"]["use_digest"] = digest
    with build(block, metrics) as conn:
        for _ in range(2):  # a fresh nonce each time: no replay refusal
            operation, payload = target.ok_call()
            target.check_ok(conn.call(operation, payload), payload)


def test_wrong_password_is_a_permanent_client_fault(clean_sandbox, metrics):
    target = TaxSandbox(clean_sandbox)
    block = target.block()
    block["wsse"]["password"] = "wrong"
    with build(block, metrics) as conn, pytest.raises(PermanentError, match="authentication"):
        conn.call(*target.ok_call())


def test_security_header_is_built_fresh_for_every_message():
    from lxml import etree
    from zeep.wsse import utils

    from bdchub.connectors.soap import _FreshUsernameToken

    token = _FreshUsernameToken({"username": "u", "password": "p", "use_digest": True})
    nonces = []
    for _ in range(2):
        envelope = etree.fromstring(
            '<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/">'
            "<e:Header/><e:Body/></e:Envelope>")
        token.apply(envelope, {})
        security = utils.get_security_header(envelope)
        assert security.find(f"{{{utils.ns.WSU}}}Timestamp") is not None
        nonces.append(security.findtext(f".//{{{utils.ns.WSSE}}}Nonce"))
    assert nonces[0] and nonces[0] != nonces[1]


# ------------------------------------------------------------- WSDL and ports

def test_local_wsdl_relative_to_the_config_file_with_address_override(clean_sandbox, tmp_path,
                                                                      metrics):
    for name in ("tax.wsdl", "tax.xsd"):
        shutil.copy(WSDL_DIR / name, tmp_path / name)
    target = TaxSandbox(clean_sandbox)
    block = {**target.block(), "wsdl": "tax.wsdl", "address": clean_sandbox.url("tax") + "/ws"}
    with build(block, metrics, base_dir=tmp_path) as conn:
        operation, payload = target.ok_call()
        target.check_ok(conn.call(operation, payload), payload)
        assert conn.health().up


def test_soap_version_selects_the_port(clean_sandbox, metrics):
    for version in ("1.1", "1.2"):
        block = {"type": "soap", "wsdl": clean_sandbox.wsdl_url("legacy"),
                 "soap_version": version}
        with build(block, metrics) as conn:
            assert conn.inner.soap_version == version
            assert "QueryProgress" in conn.operations()
            conn.call("ReportStageChanges", {"ZDTS": 1})


def test_unknown_service_or_port_is_a_config_error(clean_sandbox, metrics):
    for extra in ({"service": "Nope"}, {"port": "Nope"}):
        conn = build({"type": "soap", "wsdl": clean_sandbox.wsdl_url("legacy"), **extra},
                     metrics)
        with pytest.raises(ConfigError, match="Nope"):
            conn.open()


def test_missing_wsdl_file_is_a_config_error(tmp_path, metrics):
    with pytest.raises(ConfigError, match="missing.wsdl"):
        build({"type": "soap", "wsdl": "missing.wsdl"}, metrics, base_dir=tmp_path).open()


def test_wsdl_cache_in_sqlite_serves_the_second_load(clean_sandbox, tmp_path, metrics):
    block = {"type": "soap", "wsdl": clean_sandbox.wsdl_url("tax"),
             "cache": {"kind": "sqlite", "path": "wsdl-cache.db"}}
    with build(block, metrics, base_dir=tmp_path):
        pass
    assert (tmp_path / "wsdl-cache.db").stat().st_size > 0
    clean_sandbox.down("tax")
    with build(block, metrics, base_dir=tmp_path) as conn:  # loads from the cache
        assert "QueryClearance" in conn.operations()


def test_health_fetches_the_wsdl_and_calls_the_probe(clean_sandbox, metrics):
    target = TaxSandbox(clean_sandbox)
    with build(target.block(), metrics) as conn:
        health = conn.health()
        assert health.up, health.detail
        assert "QueryClearance ok" in health.detail
        clean_sandbox.down("tax")
        assert not conn.health().up


# ------------------------------------------------------------------- results

def test_results_are_plain_json_data(clean_sandbox, metrics):
    import json

    target = TaxSandbox(clean_sandbox)
    person = clean_sandbox.data["people"][0]
    unit = "320684413219GB00029F00010002"
    number = "320684-2026-" + uuid.uuid4().hex[:6]
    declaration = {"BusinessNo": number,
                   "RightsHolder": [{"Name": person["name"], "IdType": "1",
                                     "IdNumber": person["cert_num"]}],
                   "UnitCode": unit, "Location": "海门市长江南路96号", "Area": Decimal("89.37"),
                   "Price": Decimal("1250000.00"), "RightType": "4", "RegistrationType": "200",
                   "RegistrationTime": dt.datetime(2026, 3, 1, 10, 30)}
    clean_sandbox.configure(tax_clearance_delay=0)  # clears at once
    with build(target.block(), metrics) as conn:
        accepted = conn.call("ReceiveDeclaration", declaration)
        assert accepted["Accepted"] is True and accepted["Duplicate"] is False
        reply = conn.call("QueryClearance", {"BusinessNo": number})
    assert reply["Status"] == "CLEARED"
    assert reply["TaxAmount"] == "37500.00"  # exact, as a string
    dt.datetime.fromisoformat(reply["ClearedAt"])
    json.dumps(reply)


def test_jsonable_converts_decimal_dates_bytes_and_nesting():
    data = {"a": Decimal("1250000.50"), "b": dt.datetime(2024, 3, 1, 10, 30),
            "c": dt.date(2024, 3, 1), "d": b"\x00\x01", "e": [Decimal("2")], "f": None}
    assert jsonable(data) == {"a": "1250000.50", "b": "2024-03-01T10:30:00",
                              "c": "2024-03-01", "d": "AAE=", "e": ["2"], "f": None}
    assert jsonable({"a": Decimal("1.5")}, decimal="float") == {"a": 1.5}


# --------------------------------------------------------------- idempotency

def _key_in(raw: bytes, tag: str) -> list[str]:
    from lxml import etree

    doc = etree.fromstring(raw)
    header = next(c for c in doc if etree.QName(c).localname == "Header")
    return [el.text for el in header.iter(tag)]


def test_a_retried_call_carries_the_same_key_in_the_configured_header(department, metrics):
    target = SoapLoopback(department)
    department.set(errors=2, status=503)
    key = "0190b3c4-0000-7000-8000-000000000001:online_application:7"
    block = target.block(idempotency={"header": "{urn:vendor:bdc}IdempotencyKey"})
    with build(block, metrics) as conn:
        conn.call("check", {"contract_no": "HT-1"}, connectors.CallContext(idempotency_key=key))
    sent = [r["body"] for r in department.received if r["path"] == "/soap"]
    assert len(sent) == 3
    assert [_key_in(raw, "{urn:vendor:bdc}IdempotencyKey") for raw in sent] == [[key]] * 3


def test_ws_addressing_message_id_is_derived_from_the_key_and_stable(department, metrics):
    from bdchub.connectors.soap import message_id

    target = SoapLoopback(department, version="1.2")
    wsa = "{http://www.w3.org/2005/08/addressing}"
    with build(target.block(idempotency={"addressing": True}), metrics) as conn:
        for key in ("m-1:r:1", "m-1:r:1", "m-2:r:1"):
            conn.call("check", {"contract_no": "HT-2"},
                      connectors.CallContext(idempotency_key=key))
    sent = [r["body"] for r in department.received if r["path"] == "/soap"]
    ids = [_key_in(raw, wsa + "MessageID") for raw in sent]
    assert ids[0] == ids[1] == [message_id("m-1:r:1")] and ids[2] != ids[0]
    assert ids[0][0].startswith("urn:uuid:")
    assert _key_in(sent[0], wsa + "To") == [department.url + "/soap"]
    assert _key_in(sent[0], wsa + "Action")[0]


def test_a_payload_field_can_carry_the_key_for_the_listed_operations_only(department, metrics):
    target = SoapLoopback(department)
    block = target.block(idempotency={"field": "contract_no", "operations": ["CheckContract"]})
    with build(block, metrics) as conn:
        reply = conn.call("check", {"contract_no": "HT-3"},
                          connectors.CallContext(idempotency_key="k-9"))
    assert reply["contract_no"] == "k-9"  # the alias "check" names the listed WSDL operation
    block = target.block(idempotency={"header": "{urn:vendor:bdc}Key", "operations": ["Other"]})
    with build(block, metrics) as conn:
        conn.call("check", {"contract_no": "HT-4"}, connectors.CallContext(idempotency_key="k-10"))
    assert b"k-10" not in department.received[-1]["body"]


def test_without_idempotency_config_no_key_is_sent(department, metrics):
    target = SoapLoopback(department)
    with build(target.block(), metrics) as conn:
        conn.call("check", {"contract_no": "HT-5"}, connectors.CallContext(idempotency_key="k-11"))
    assert b"k-11" not in department.received[-1]["body"]


def test_the_sandbox_registration_system_answers_a_repeated_key_once(clean_sandbox, metrics):
    sb = clean_sandbox
    target = LegacySandbox(sb)
    person = sb.data["people"][1]
    ywh = "IDEM-" + uuid.uuid4().hex[:8]
    application = {"YWH": ywh, "DJLX": "100", "QLLX": "4", "BDCDYH": sb.data["units"][3],
                   "QLR": [{"QLRMC": person["name"], "ZJZL": "1", "ZJH": person["cert_num"]}]}
    block = target.block(idempotency={"header": "{urn:bdc-hub:sandbox:legacy:v1}IdempotencyKey"})
    with build(block, metrics) as conn:
        for _ in range(3):
            first = conn.call("SubmitApplication", application,
                              connectors.CallContext(idempotency_key=f"{ywh}:a:1"))
        conn.call("Accept", {"YWH": ywh}, connectors.CallContext(idempotency_key=f"{ywh}:a:2"))
        again = conn.call("Accept", {"YWH": ywh},
                          connectors.CallContext(idempotency_key=f"{ywh}:a:2"))
    assert first["ZT"] == "01" and again["ZT"] == "02"  # the repeat got the first answer
    ledger = sb.legacy_ledger(ywh)
    assert [(e["operation"], e["outcome"]) for e in ledger] == [
        ("SubmitApplication", "applied"), ("SubmitApplication", "replayed"),
        ("SubmitApplication", "replayed"), ("Accept", "applied"), ("Accept", "replayed")]
    assert [e["ZT"] for e in sb.legacy_events() if e["YWH"] == ywh] == ["01", "02"]
    assert not [d for d in sb.legacy_doubles() if d["subject"] == ywh]
