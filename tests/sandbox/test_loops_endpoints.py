"""The sandbox's side of the closed loops (issue 12, items 1-3): the registration
system takes a correction's materials, and the one-window platforms take results
and check a notice's document against its digest."""

from __future__ import annotations

import base64
import hashlib

import pytest
from zeep.exceptions import Fault

from .helpers import appkey_request, soap_client


def _application(sb, unit_index):
    person = sb.data["people"][0]
    return {"DJLX": "200", "QLLX": "4", "BDCDYH": sb.data["units"][unit_index],
            "QLR": [{"QLRMC": person["name"], "ZJZL": "1", "ZJH": person["cert_num"]}],
            "CL": [{"CLMC": "不动产登记申请书"}]}


def test_legacy_takes_supplied_materials_back_from_correction_to_application(clean_sandbox):
    sb = clean_sandbox
    legacy = soap_client(sb, "legacy")
    ywh = legacy.SubmitApplication(**_application(sb, 3))["YWH"]
    legacy.RequestCorrection(YWH=ywh, BZXM=["申请人身份证明"])
    answer = legacy.SupplementMaterials(YWH=ywh, CL=[{"CLMC": "申请人身份证明", "FS": 1}],
                                        BZ="按补正通知补充身份证明")
    assert (answer["ZT"], answer["ZTMC"]) == ("01", "申请")
    case = sb.legacy_application(ywh)
    assert [c["CLMC"] for c in case["CL"]] == ["不动产登记申请书", "申请人身份证明"]
    assert case["history"][-1]["YY"] == "按补正通知补充身份证明"
    # Examined again as any application is: complete now, so it is accepted.
    assert legacy.Advance(YWH=ywh)["ZT"] == "02"


def test_legacy_refuses_materials_for_a_case_not_awaiting_correction(clean_sandbox):
    sb = clean_sandbox
    legacy = soap_client(sb, "legacy")
    ywh = legacy.SubmitApplication(**_application(sb, 4))["YWH"]
    with pytest.raises(Fault) as not_in_correction:
        legacy.SupplementMaterials(YWH=ywh, CL=[{"CLMC": "申请人身份证明"}])
    with pytest.raises(Fault) as unknown:
        legacy.SupplementMaterials(YWH="320684NOSUCHCASE", CL=[{"CLMC": "申请人身份证明"}])
    assert "not awaiting correction" in not_in_correction.value.message
    assert "320684NOSUCHCASE" in unknown.value.message
    assert sb.legacy_application(ywh)["ZT"] == "01"


def test_window_takes_results_and_checks_a_notice_document_against_its_digest(clean_sandbox):
    sb = clean_sandbox
    pdf = b"%PDF-1.4 notice"
    described = {"name": "n.pdf", "media_type": "application/pdf", "size": len(pdf),
                 "sha256": hashlib.sha256(pdf).hexdigest()}
    good = {"business_no": "B1", "notice_file": described,
            "notice_content": base64.b64encode(pdf).decode()}
    tampered = {**good, "notice_content": base64.b64encode(pdf + b"!").decode()}
    assert appkey_request(sb, "window_province", "POST", "/notices", good).status_code == 200
    bad = appkey_request(sb, "window_province", "POST", "/notices", tampered)
    assert bad.status_code == 422 and bad.json()["code"] == "BAD_NOTICE_FILE"
    result = appkey_request(sb, "window_national", "POST", "/results", {"business_no": "B1"})
    assert result.status_code == 200 and result.json()["data"]["receipt_id"].startswith("NR")
    assert [r["path"] for r in sb.received("window_province")] == ["/notices", "/notices"]
