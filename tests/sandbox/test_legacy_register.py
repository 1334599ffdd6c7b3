"""legacy: the register's queries (QueryProperties, QueryUnitStatus,
IssueNoPropertyCertificate) and the window's calendar (BookAppointment), with the
generic fault knobs on them."""

from __future__ import annotations

import datetime as dt

import pytest
from zeep.exceptions import Fault

from bdchub.sandbox import Sandbox

from .helpers import soap_client


def _weekday(days_ahead: int) -> dt.date:
    day = dt.date.today() + dt.timedelta(days=days_ahead)
    while day.weekday() >= 5:
        day += dt.timedelta(days=1)
    return day


def _visitor(sb, i: int = 2) -> dict:
    p = sb.data["people"][i]
    return {"QLRMC": p["name"], "ZJZL": "1", "ZJH": p["cert_num"]}


def test_the_seeded_register_agrees_with_the_other_departments():
    data = Sandbox(seed=42).data
    register = {p["unit_code"]: p for p in data["register"]["properties"]}
    for filing in data["contract_filings"]:  # sellers hold what they sell
        assert register[filing["unit_code"]]["holders"][0]["id_number"] == \
            filing["sellers"][0]["cert_num"]
    assert data["units"][14] not in register  # the demo's first registration
    kinds = {r["kind"] for p in register.values() for r in p["restrictions"]}
    assert kinds == {"mortgage", "seizure", "objection", "advance_notice"}
    held = {h["id_number"] for p in register.values() for h in p["holders"]}
    assert data["register"]["no_property"] and not held & set(data["register"]["no_property"])
    # Drawn apart from the rest: the secrets of seed 42 (config.yaml's defaults) stay.
    assert data["secrets"]["legacy"]["callback_app_key"] == "ak-legacy-40bd2d5f"


def test_queries_answer_holdings_restrictions_and_only_the_county_asked(clean_sandbox):
    sandbox = clean_sandbox
    legacy = soap_client(sandbox, "legacy")
    data = sandbox.data
    owner = data["people"][0]
    mine = legacy.QueryProperties(ZJH=owner["cert_num"], QXDM="320684")
    assert mine["ZS"] == 2 and any(u["SFXZ"] for u in mine["BDC"])
    assert legacy.QueryProperties(ZJH=owner["cert_num"], QXDM="320611")["ZS"] == 0
    seized = legacy.QueryUnitStatus(BDCDYH=data["legacy"]["refuse_units"][0], QXDM="320684")
    [restriction] = seized["DY"][0]["XZ"]
    assert restriction["LX"] == "CF" and restriction["JG"].endswith("人民法院")
    cert = next(p for p in data["register"]["properties"]
                if p["unit_code"] == data["units"][5])["certificate_no"]
    wide = cert.replace("(", "（").replace(")", "）")
    assert legacy.QueryUnitStatus(BDCQZH=wide, QXDM="320684")["DY"][0]["BDCDYH"] == data["units"][5]
    with pytest.raises(Fault, match="4"):
        legacy.QueryUnitStatus(ZL="海门", QXDM="320684")
    with pytest.raises(Fault):
        legacy.QueryUnitStatus(QXDM="320684")


def test_a_seizure_received_is_a_restriction_until_its_release():
    with Sandbox(seed=42) as sb:
        legacy = soap_client(sb, "legacy")
        unit = sb.data["units"][7]
        status = lambda: legacy.QueryUnitStatus(BDCDYH=unit, QXDM="320684")["DY"][0]  # noqa: E731
        assert status()["SFXZ"] is False
        legacy.ReceiveCourtOrder(AH="（2026）苏0684执9号", FYMC="海门市人民法院", BDCDYH=unit, LX="CF",
                                 QSRQ=dt.date(2026, 1, 5), JSRQ=dt.date(2029, 1, 4))
        [seizure] = status()["XZ"]
        assert (seizure["LX"], seizure["AH"], seizure["JSRQ"]) == ("CF", "（2026）苏0684执9号",
                                                                   dt.date(2029, 1, 4))
        legacy.ReceiveCourtOrder(AH="（2026）苏0684执9号", FYMC="海门市人民法院", BDCDYH=unit, LX="JF")
        assert status()["XZ"] == []


def test_a_no_property_certificate_is_issued_only_to_someone_who_holds_nothing(clean_sandbox):
    sandbox = clean_sandbox
    legacy = soap_client(sandbox, "legacy")
    nobody = sandbox.data["register"]["no_property"][0]
    issued = legacy.IssueNoPropertyCertificate(QLRMC="某某", ZJZL="1", ZJH=nobody,
                                               CXMD="申请公共租赁住房", QXDM="320684")
    assert issued["CG"] is True and "不动产查字" in issued["ZMBH"] and issued["BDCSL"] == 0
    owner = sandbox.data["people"][0]["cert_num"]
    refused = legacy.IssueNoPropertyCertificate(QLRMC="某某", ZJZL="1", ZJH=owner,
                                                CXMD="申请公共租赁住房", QXDM="320684")
    assert refused["CG"] is False and refused["YWBDC"] is True and refused["ZMBH"] is None


def test_booking_fills_a_slot_then_offers_the_next_free_ones():
    with Sandbox(seed=42) as sb:
        legacy = soap_client(sb, "legacy")
        day = _weekday(2)
        ask = {"YYRQ": day, "KSSJ": "10:00", "JSSJ": "10:30", "SXMC": "转移登记"}
        first = legacy.BookAppointment(QQBH="Q1", YYR=_visitor(sb, 2), **ask)
        again = legacy.BookAppointment(QQBH="Q1", YYR=_visitor(sb, 2), **ask)
        assert first["CG"] is True and again["YYH"] == first["YYH"]  # the same request, once
        assert legacy.BookAppointment(QQBH="Q2", YYR=_visitor(sb, 3), **ask)["CG"] is True
        full = legacy.BookAppointment(QQBH="Q3", YYR=_visitor(sb, 4), **ask)
        assert full["CG"] is False and "约满" in full["XX"] and full["YYH"] is None
        assert [(a["YYRQ"], a["KSSJ"]) for a in full["KXSD"]] == [
            (day, "10:30"), (day, "11:00"), (day, "13:30")]
        rush = legacy.BookAppointment(QQBH="Q4", YYR=_visitor(sb, 5),
                                      **{**ask, "KSSJ": "09:00", "JSSJ": "09:30"})
        assert rush["CG"] is False and rush["KXSD"][0]["KSSJ"] == "09:30"


def test_closed_past_or_far_slots_are_refused_with_a_reason(clean_sandbox):
    sandbox = clean_sandbox
    legacy = soap_client(sandbox, "legacy")
    day = _weekday(3)
    lunch = legacy.BookAppointment(QQBH="L1", YYR=_visitor(sandbox), YYRQ=day, KSSJ="12:00",
                                   JSSJ="12:30", SXMC="转移登记")
    assert lunch["CG"] is False and lunch["KXSD"][0]["KSSJ"] == "13:30"
    past = legacy.BookAppointment(QQBH="L2", YYR=_visitor(sandbox),
                                  YYRQ=dt.date.today() - dt.timedelta(days=1), KSSJ="10:00",
                                  JSSJ="10:30", SXMC="转移登记")
    assert past["CG"] is False and "已过" in past["XX"]
    far = legacy.BookAppointment(QQBH="L3", YYR=_visitor(sandbox),
                                 YYRQ=dt.date.today() + dt.timedelta(days=400), KSSJ="10:00",
                                 JSSJ="10:30", SXMC="转移登记")
    assert far["CG"] is False and far["KXSD"] == []


def test_the_generic_fault_knobs_reach_the_new_operations(clean_sandbox):
    legacy = soap_client(clean_sandbox, "legacy")
    clean_sandbox.faults("legacy").set(soap_fault="server")
    with pytest.raises(Fault):
        legacy.QueryProperties(ZJH=clean_sandbox.data["people"][0]["cert_num"], QXDM="320684")
    with pytest.raises(Fault):
        legacy.BookAppointment(QQBH="F1", YYR=_visitor(clean_sandbox), YYRQ=_weekday(4),
                               KSSJ="10:00", JSSJ="10:30", SXMC="转移登记")
    assert [r["fault"] for r in clean_sandbox.received("legacy")][-2:] == ["error", "error"]
