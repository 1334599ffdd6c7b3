"""The sandbox's registration system and the internal network's review result
(``ReceiveReviewResult``, back by disc): with ``legacy_require_review`` a case
with spatial materials waits at 审核 for it; a review that says no ends the
case 不予登记 with the opinion; a finished case takes no more results."""

from __future__ import annotations

import pytest
from zeep.exceptions import Fault

from bdchub.sandbox import Sandbox

from .helpers import soap_client


def _application(sb: Sandbox, unit_index: int, materials: list[dict]) -> dict:
    person = sb.data["people"][0]
    return {"DJLX": "100", "QLLX": "4", "BDCDYH": sb.data["units"][unit_index],
            "QLR": [{"QLRMC": person["name"], "ZJZL": "1", "ZJH": person["cert_num"]}],
            "CL": materials}


SPATIAL = [{"CLMC": "不动产登记申请书", "CLLX": "application_form"},
           {"CLMC": "身份证明", "CLLX": "identity_document"},
           {"CLMC": "宗地图.dxf", "CLLX": "spatial_data"}]


def _to_review(legacy, ywh: str) -> None:
    legacy.Accept(YWH=ywh)
    assert legacy.Advance(YWH=ywh)["ZTMC"] == "审核"


def test_a_case_with_spatial_materials_waits_at_review_for_the_internal_result():
    with Sandbox(seed=21, legacy_require_review=True) as sb:
        legacy = soap_client(sb, "legacy")
        ywh = legacy.SubmitApplication(**_application(sb, 12, SPATIAL))["YWH"]
        plain = legacy.SubmitApplication(**_application(sb, 13, SPATIAL[:2]))["YWH"]
        _to_review(legacy, ywh)
        _to_review(legacy, plain)
        with pytest.raises(Fault, match="internal review"):
            legacy.Advance(YWH=ywh)
        assert legacy.Advance(YWH=plain)["ZTMC"] == "登簿"  # nothing to review inside

        answer = legacy.ReceiveReviewResult(YWH=ywh, SHJG="1", SHYJ="一致",
                                            CLZY=["ab" * 32])
        assert answer["CG"] is True and answer["YXYWH"] == [ywh]
        assert legacy.Advance(YWH=ywh)["ZTMC"] == "登簿"


def test_a_review_that_says_no_ends_the_case_not_registered_with_the_opinion():
    with Sandbox(seed=21) as sb:
        legacy = soap_client(sb, "legacy")
        ywh = legacy.SubmitApplication(**_application(sb, 12, SPATIAL))["YWH"]
        _to_review(legacy, ywh)
        legacy.ReceiveReviewResult(YWH=ywh, SHJG="0", SHYJ="界址线与相邻宗地重叠")
        assert legacy.Advance(YWH=ywh)["ZTMC"] == "不予登记"
        assert sb.legacy_application(ywh)["history"][-1]["YY"] == "内网审核不通过：界址线与相邻宗地重叠"

        answer = legacy.ReceiveReviewResult(YWH=ywh, SHJG="1")
        assert answer["CG"] is False and "不予登记" in answer["XX"]
        with pytest.raises(Fault, match="SHJG"):
            legacy.ReceiveReviewResult(YWH=ywh, SHJG="2")
