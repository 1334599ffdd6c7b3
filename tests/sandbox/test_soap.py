"""tax, court and legacy: WSDLs zeep can load, operations that round-trip."""

from __future__ import annotations

import datetime as dt
import time

import pytest
import requests
import zeep
from zeep.exceptions import Fault

from bdchub.sandbox import Sandbox

from .helpers import Catcher, soap_client


def _declaration(sb, business_no, price=1_000_000):
    person = sb.data["people"][0]
    return {"BusinessNo": business_no,
            "RightsHolder": [{"Name": person["name"], "IdType": "1", "IdNumber": person["cert_num"],
                              "Share": "100%"}],
            "CoOwnership": "单独所有", "UnitCode": sb.data["units"][0], "Location": "海门市人民中路1号",
            "Area": 95.5, "Price": price, "RightType": "4", "RegistrationType": "200",
            "RegistrationTime": dt.datetime(2026, 3, 1, 10, 0)}


def _application(sb, person_index=0, unit_index=0, **extra):
    person = sb.data["people"][person_index]
    return {"DJLX": "200", "QLLX": "4", "BDCDYH": sb.data["units"][unit_index],
            "ZL": "海门市人民中路1号", "MJ": 95.5, "JYJG": 1_000_000,
            "QLR": [{"QLRMC": person["name"], "ZJZL": "1", "ZJH": person["cert_num"],
                     "GYFS": "单独所有"}], **extra}


@pytest.mark.parametrize("name", ["tax", "court", "legacy"])
@pytest.mark.parametrize("from_file", [False, True])
def test_zeep_loads_every_wsdl_from_url_and_from_file(sandbox, name, from_file):
    service = soap_client(sandbox, name, from_file=from_file)
    operation = {"tax": "QueryClearance", "court": "PullJudgments",
                 "legacy": "ReportStageChanges"}[name]
    assert hasattr(service, operation)


def test_tax_declaration_then_clearance_after_the_delay():
    with Sandbox(seed=11, tax_clearance_delay=0.3) as sb:
        tax = soap_client(sb, "tax")
        assert tax.QueryClearance(BusinessNo="T1")["Status"] == "NOT_DECLARED"
        first = tax.ReceiveDeclaration(**_declaration(sb, "T1"))
        assert first["Accepted"] is True and first["Duplicate"] is False
        again = tax.ReceiveDeclaration(**_declaration(sb, "T1"))
        assert again["DeclarationNo"] == first["DeclarationNo"] and again["Duplicate"] is True
        assert tax.QueryClearance(BusinessNo="T1")["Status"] == "PENDING"
        time.sleep(0.35)
        cleared = tax.QueryClearance(BusinessNo="T1")
        assert cleared["Status"] == "CLEARED"
        assert str(cleared["TaxAmount"]) == "30000.00"
        assert cleared["VoucherNo"]
        body = sb.received("tax")[1]["body"]
        assert body["RightsHolder"]["IdNumber"] == sb.data["people"][0]["cert_num"]


def test_tax_accepts_password_digest_tokens(sandbox):
    tax = soap_client(sandbox, "tax", digest=True)
    assert tax.QueryClearance(BusinessNo="nobody")["Status"] == "NOT_DECLARED"


def test_tax_wrong_password_or_no_token_is_a_client_fault(sandbox):
    with pytest.raises(Fault) as wrong:
        soap_client(sandbox, "tax", password="nope").QueryClearance(BusinessNo="x")
    assert wrong.value.code.endswith("Client")
    bare = zeep.Client(sandbox.wsdl_url("tax")).service
    with pytest.raises(Fault, match="UsernameToken"):
        bare.QueryClearance(BusinessNo="x")


def test_tax_refuses_bad_unit_code_and_id_number_as_client_faults(sandbox):
    tax = soap_client(sandbox, "tax")
    with pytest.raises(Fault) as bad_unit:
        tax.ReceiveDeclaration(**{**_declaration(sandbox, "T-bad"), "UnitCode": "320684"})
    assert bad_unit.value.code.endswith("Client")
    decl = _declaration(sandbox, "T-bad2")
    decl["RightsHolder"][0]["IdNumber"] = "110105194912310021"
    with pytest.raises(Fault, match="resident ID"):
        tax.ReceiveDeclaration(**decl)


def test_tax_pushes_clearance_to_a_target_and_to_the_callback():
    catcher = Catcher()
    try:
        with Sandbox(seed=11, tax_clearance_delay=0.1) as sb:
            entry = sb.push_tax_clearance("T-push", catcher.url)
            assert entry["delivered"] and entry["status"] == 200
            assert catcher.posts[0]["json"]["business_no"] == "T-push"
            assert catcher.posts[0]["json"]["status"] == "CLEARED"
            assert catcher.posts[0]["headers"]["X-App-Key"] == sb.credentials["tax"]["push_app_key"]
            assert soap_client(sb, "tax").QueryClearance(BusinessNo="T-push")["Status"] == "CLEARED"
            sb.tax_set_callback(catcher.url)
            soap_client(sb, "tax").ReceiveDeclaration(**_declaration(sb, "T-auto"))
            posts = catcher.wait_for(2)
            assert posts[1]["json"]["business_no"] == "T-auto"
            assert posts[1]["json"]["tax_amount"] == "30000.00"
    finally:
        catcher.close()


def test_court_pull_since_cursor_ack_and_injected_seizure(clean_sandbox):
    sb = clean_sandbox
    court = soap_client(sb, "court")
    first = court.PullJudgments(MaxItems=2)
    assert len(first["Order"]) == 2 and first["HasMore"] is True
    rest = court.PullJudgments(Cursor=first["NextCursor"])
    seen = first["Order"] + rest["Order"]
    assert [o["Sequence"] for o in seen] == list(range(1, len(seen) + 1))
    added = sb.court_add_seizure(sb.data["units"][6], RespondentName="王五")
    new = court.PullJudgments(Cursor=rest["NextCursor"])
    assert [o["OrderId"] for o in new["Order"]] == [added["OrderId"]]
    order = new["Order"][0]
    assert order["Kind"] == "SEIZURE" and order["UnitCode"] == sb.data["units"][6]
    assert order["PeriodFrom"] is not None and "执" in order["CaseNo"]
    ack = court.Ack(OrderId=[added["OrderId"], "FY-unknown"])
    assert ack["Acknowledged"] == 1 and ack["Unknown"] == ["FY-unknown"]
    assert added["OrderId"] in sb.court_acked()
    assert court.PullJudgments(Cursor=new["NextCursor"])["Order"] == []


def test_court_requires_ws_security(sandbox):
    with pytest.raises(Fault):
        zeep.Client(sandbox.wsdl_url("court")).service.PullJudgments()


def test_court_seizure_can_be_injected_over_http(clean_sandbox):
    sb = clean_sandbox
    reply = requests.post(sb.url("court") + "/_sandbox/orders",
                          json={"Kind": "UNSEIZURE", "UnitCode": sb.data["units"][7]}, timeout=5)
    assert reply.status_code == 201 and reply.json()["Kind"] == "UNSEIZURE"
    assert requests.post(sb.url("court") + "/_sandbox/orders",
                         json={"Kind": "SEIZURE", "UnitCode": "bad"}, timeout=5).status_code == 400


def test_legacy_stage_machine_driven_by_hand_issues_a_certificate(clean_sandbox):
    sb = clean_sandbox
    legacy = soap_client(sb, "legacy")
    submitted = legacy.SubmitApplication(**_application(sb, unit_index=2))
    ywh = submitted["YWH"]
    assert submitted["ZT"] == "01" and submitted["ZTMC"] == "申请"
    assert legacy.Accept(YWH=ywh)["ZT"] == "02"
    states = [legacy.Advance(YWH=ywh)["ZTMC"] for _ in range(4)]
    assert states == ["审核", "登簿", "缮证", "归档"]
    progress = legacy.QueryProgress(YWH=ywh)
    assert [h["ZT"] for h in progress["HJ"]] == ["01", "02", "03", "04", "05", "06"]
    year = dt.date.today().year
    assert progress["BDCQZH"].startswith(f"苏({year})海门市不动产权第")
    assert len(progress["BDCQZH"].split("第")[1].rstrip("号")) == 7
    with pytest.raises(Fault, match="cannot advance"):
        legacy.Advance(YWH=ywh)


def test_legacy_refuse_and_correction_by_hand(clean_sandbox):
    sb = clean_sandbox
    legacy = soap_client(sb, "legacy")
    ywh = legacy.SubmitApplication(**_application(sb, unit_index=3))["YWH"]
    result = legacy.RequestCorrection(YWH=ywh, BZXM=["身份证明", "完税凭证"])
    assert result["ZTMC"] == "补正"
    assert legacy.SubmitApplication(**_application(sb, unit_index=3), YWH=ywh)["ZT"] == "01"
    assert legacy.Refuse(YWH=ywh, YY="不符合受理条件")["ZTMC"] == "不予受理"
    events = legacy.ReportStageChanges(QSXH=0, ZDTS=1000)["BGJL"]
    mine = [(e["ZT"], e["YY"], e["BZXM"]) for e in events if e["YWH"] == ywh]
    assert mine == [("01", None, []), ("92", "申请材料不全，请补正", ["身份证明", "完税凭证"]),
                    ("01", "补正后重新提交", []), ("91", "不符合受理条件", [])]


def test_legacy_refuses_invalid_input_as_client_faults(sandbox):
    legacy = soap_client(sandbox, "legacy")
    with pytest.raises(Fault) as bad_unit:
        legacy.SubmitApplication(**_application(sandbox, BDCDYH="320684"))
    assert bad_unit.value.code.endswith("Client")
    app = _application(sandbox)
    app["QLR"][0]["ZJH"] = "110105194912310021"
    with pytest.raises(Fault, match="resident ID"):
        legacy.SubmitApplication(**app)
    with pytest.raises(Fault, match="no application"):
        legacy.Accept(YWH="does-not-exist")


def test_legacy_speaks_soap_12_on_its_second_binding(clean_sandbox):
    sb = clean_sandbox
    client = zeep.Client(sb.wsdl_url("legacy"))
    service = client.bind("LegacyRegistrationService", "LegacyRegistrationSoap12Port")
    ywh = service.SubmitApplication(**_application(sb, unit_index=4))["YWH"]
    assert service.QueryProgress(YWH=ywh)["ZT"] == "01"
    with pytest.raises(Fault) as fault:
        service.Accept(YWH="nope")
    assert fault.value.code.endswith("Sender")
    assert "application/soap+xml" in sb.received("legacy")[0]["headers"]["Content-Type"]


def test_legacy_refuses_requests_with_a_dtd(sandbox):
    body = (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "boom">]>'
            b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
            b'<QueryProgress xmlns="urn:bdc-hub:sandbox:legacy:v1"><YWH>&e;</YWH></QueryProgress>'
            b"</soap:Body></soap:Envelope>")
    reply = requests.post(sandbox.url("legacy") + "/ws", data=body,
                          headers={"Content-Type": "text/xml"}, timeout=5)
    assert reply.status_code == 500
    assert b"soap:Client" in reply.content and b"DTD_FORBIDDEN" in reply.content


def test_legacy_auto_advance_runs_the_whole_stage_sequence_and_calls_back():
    catcher = Catcher()
    try:
        with Sandbox(seed=21, auto_advance=0.05) as sb:
            sb.legacy_set_callback(catcher.url)
            legacy = soap_client(sb, "legacy")
            ywh = legacy.SubmitApplication(**_application(sb, unit_index=0))["YWH"]
            posts = catcher.wait_for(6)
            assert [p["json"]["ZTMC"] for p in posts] == ["申请", "受理", "审核", "登簿", "缮证", "归档"]
            assert all(p["json"]["YWH"] == ywh for p in posts)
            assert posts[0]["headers"]["X-App-Key"] == sb.credentials["legacy"]["callback_app_key"]
            assert posts[4]["json"]["BDCQZH"] and "不动产权第" in posts[4]["json"]["BDCQZH"]
            pulled = legacy.ReportStageChanges(QSXH=2)
            assert [e["XH"] for e in pulled["BGJL"]] == [3, 4, 5, 6]
            assert pulled["ZXXH"] == 6 and pulled["SFYGD"] is False
    finally:
        catcher.close()


def _wait_state(sb, ywh, states, timeout=3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        app = sb.legacy_application(ywh)
        if app and app["ZT"] in states:
            return app
        time.sleep(0.02)
    raise AssertionError(f"{ywh} never reached {states}: {sb.legacy_application(ywh)['ZT']}")


def test_legacy_auto_advance_refuses_seeded_units_and_asks_for_missing_materials():
    with Sandbox(seed=21, auto_advance=0.05) as sb:
        legacy = soap_client(sb, "legacy")
        refuse_unit = sb.data["legacy"]["refuse_units"][0]
        refused = legacy.SubmitApplication(**_application(sb, BDCDYH=refuse_unit))["YWH"]
        short = legacy.SubmitApplication(**_application(sb, unit_index=1,
                                                        CL=[{"CLMC": "不动产登记申请书", "FS": 1}]))["YWH"]
        corr_unit = sb.data["legacy"]["correction_units"][0]
        seeded = legacy.SubmitApplication(**_application(sb, BDCDYH=corr_unit))["YWH"]
        assert _wait_state(sb, refused, {"91"})["history"][-1]["YY"].startswith("该不动产已被查封")
        assert _wait_state(sb, short, {"92"})["history"][-1]["BZXM"] == ["身份证明"]
        _wait_state(sb, seeded, {"92"})
        legacy.SubmitApplication(**_application(sb, BDCDYH=corr_unit), YWH=seeded)
        assert _wait_state(sb, seeded, {"06"})["BDCQZH"]


def test_legacy_court_seizure_during_review_ends_in_no_registration():
    with Sandbox(seed=21) as sb:
        legacy = soap_client(sb, "legacy")
        ywh = legacy.SubmitApplication(**_application(sb, unit_index=5))["YWH"]
        legacy.Accept(YWH=ywh)
        legacy.Advance(YWH=ywh)
        result = legacy.ReceiveCourtOrder(AH="(2026)苏0684执1号", FYMC="海门市人民法院",
                                          BDCDYH=sb.data["units"][5], LX="CF")
        assert result["CG"] is True and result["YXYWH"] == [ywh]
        assert legacy.Advance(YWH=ywh)["ZTMC"] == "不予登记"


def test_legacy_transfer_waits_for_tax_when_required():
    with Sandbox(seed=21, legacy_require_tax=True) as sb:
        legacy = soap_client(sb, "legacy")
        ywh = legacy.SubmitApplication(**_application(sb, unit_index=6))["YWH"]
        legacy.Accept(YWH=ywh)
        legacy.Advance(YWH=ywh)
        with pytest.raises(Fault, match="tax not cleared"):
            legacy.Advance(YWH=ywh)
        assert legacy.ReceiveTaxResult(YWH=ywh, WSZT="1", WSPZH="WS1", SE=30000)["CG"] is True
        assert legacy.Advance(YWH=ywh)["ZTMC"] == "登簿"
        assert legacy.QueryProgress(YWH=ywh)["WSZT"] == "1"


def test_legacy_mortgage_gets_a_proof_number_and_seizure_registration_none(clean_sandbox):
    sb = clean_sandbox
    legacy = soap_client(sb, "legacy")
    numbers = []
    for djlx, qllx in (("100", "23"), ("800", "4")):
        ywh = legacy.SubmitApplication(**_application(sb, unit_index=7, DJLX=djlx, QLLX=qllx))["YWH"]
        for _ in range(5):
            result = legacy.Advance(YWH=ywh)
        numbers.append(result["BDCQZH"])
    assert "不动产证明第" in numbers[0]
    assert numbers[1] is None


def test_legacy_resubmitting_the_same_ywh_is_idempotent(clean_sandbox):
    sb = clean_sandbox
    legacy = soap_client(sb, "legacy")
    app = _application(sb, unit_index=8, YWH="HUB-0001")
    assert legacy.SubmitApplication(**app)["YWH"] == "HUB-0001"
    legacy.Accept(YWH="HUB-0001")
    assert legacy.SubmitApplication(**app)["ZT"] == "02"
    assert len([e for e in sb.legacy_events() if e["YWH"] == "HUB-0001"]) == 2
