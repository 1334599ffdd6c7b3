"""Flow g of config.yaml: the bridge in the flows, on loopback.

An application's spatial materials go from the material store through the
one-way gate (the ``internal_gate`` diode connector) to the internal network
(``sandbox.internal.InternalNetwork``: a diode receiver, a review desk and a
disc burner); the review result comes back on a signed ferry disc into the
hub's ferry inbox, reaches the registration system and the applicant's
progress, and confirms what crossed. Classified spatial data submitted online
is refused with the guide's instruction to come on site.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bdchub.core.datadir import data_dir
from bdchub.sandbox.internal import InternalNetwork

from .conftest import Flows, _flows

PDF = b"%PDF-1.7\n" + bytes(range(256)) * 800
DXF = b"0\nSECTION\n2\nENTITIES\n0\nLWPOLYLINE\n8\nJZD\n0\nENDSEC\n0\nEOF\n"


@pytest.fixture
def internal(tmp_path: Path) -> Iterator[InternalNetwork]:
    net = InternalNetwork(tmp_path / "internal").start()
    try:
        yield net
    finally:
        net.stop()


@pytest.fixture
def bridged(clean_sandbox: Any, tmp_path: Path, internal: InternalNetwork) -> Iterator[Flows]:
    """The shipped config with its bridge on (HUB_BRIDGE_ENABLED and the gate's,
    the material store's and the ferry's places from the internal network), and
    a registration system that waits at 审核 for the internal review of a case
    with spatial materials."""
    clean_sandbox.configure(legacy_require_review=True)
    yield from _flows(clean_sandbox, tmp_path, env=internal.environ())


def _spatial_application(flows: Flows, internal: InternalNetwork) -> dict[str, Any]:
    """The demo's first registration with its survey report and a parcel drawing
    as files in the material store."""
    body = copy.deepcopy(flows.samples["first"])
    body["materials"] = [m for m in body["materials"] if m["type"] != "survey_report"] + [
        {"name": "房屋测绘报告", "type": "survey_report", "sha256": internal.deposit(PDF),
         "size": len(PDF), "media_type": "application/pdf"},
        {"name": "宗地图.dxf", "type": "spatial_data", "sha256": internal.deposit(DXF),
         "size": len(DXF), "media_type": "image/vnd.dxf"}]
    return body


def _progress(flows: Flows, no: str) -> list[dict[str, Any]]:
    return [r["body"] for r in flows.received(
        "window_county", path="/progress", where=lambda b: b.get("business_no") == no)]


def _published(flows: Flows, no: str, type_: str) -> bool:
    return any(h["route"] == "spatial_materials" and h["step"].endswith(":publish")
               and type_ in str(h.get("detail")) for h in flows.trace(no))


def test_spatial_materials_cross_the_gate_and_the_review_comes_back_by_disc(
        bridged: Flows, internal: InternalNetwork):
    flows = bridged
    body = _spatial_application(flows, internal)
    no = body["business_no"]
    flows.submit("national_window", body)

    # Through the gate: the internal side holds the very bytes the application declared.
    review = flows.wait(lambda: [r for r in internal.reviews if r["business_no"] == no],
                        timeout=30, what="the internal review")[0]
    sent = {hashlib.sha256(PDF).hexdigest(), hashlib.sha256(DXF).hexdigest()}
    assert {r["sha256"] for r in review["received"]} == sent
    # The registration system waited at 审核 until the disc came back.
    flows.wait(lambda: flows.stage(no) == "archive", timeout=30, what="archive")
    crossed = {hashlib.sha256(p.read_bytes()).hexdigest()
               for p in (internal.inbox / ".processed").iterdir()}
    assert sent <= crossed
    told = flows.received("legacy", operation="ReceiveReviewResult", where=lambda b: b["YWH"] == no)
    assert len(told) == 1
    assert told[0]["body"]["SHJG"] == "1" and set(told[0]["body"]["CLZY"]) == sent

    # The disc went through the hub's ferry inbox, verified, and was put aside.
    assert len(list((internal.arrivals / ".processed").iterdir())) == 1
    # The applicant's windows heard of the review before the entry in the register.
    stages = [p["stage"] for p in _progress(flows, no)]
    assert stages.index("review") < stages.index("registration")
    reviewed = [p for p in _progress(flows, no) if "内网审核通过" in (p.get("note") or "")]
    assert reviewed and reviewed[0]["stage"] == "review"

    # What was sent is kept with the application; the internal side's receipt confirmed it.
    records = {r["kind"]: r for r in flows.hub.store.verifications_for(no)}
    transfer = records["diode_transfer"]["result"]
    assert {m["sha256"] for m in transfer["materials"]} == sent
    assert transfer["manifest"]["name"].endswith("materials.json")
    flows.wait(lambda: _published(flows, no, "bridge.materials_confirmed"), what="confirmed")
    assert not _published(flows, no, "bridge.materials_unconfirmed")


def test_a_review_that_says_no_ends_the_case_not_registered_with_its_opinion(
        bridged: Flows, internal: InternalNetwork):
    flows = bridged
    internal.set(result="rejected", opinion="J3-J4 界址线与相邻宗地重叠，需重新测绘")
    body = _spatial_application(flows, internal)
    no = body["business_no"]
    flows.submit("county_window", body)

    flows.wait(lambda: flows.stage(no) == "refusal_to_register", timeout=30,
               what="refusal to register")
    notes = [p.get("note") or "" for p in _progress(flows, no)]
    assert any("重新测绘" in n for n in notes if "不予登记" in n or "内网审核不通过" in n)
    assert not flows.received("legacy", operation="Advance", where=lambda b: b["YWH"] == no)


def test_a_tampered_disc_is_quarantined_and_the_case_waits_for_a_good_one(
        bridged: Flows, internal: InternalNetwork):
    flows = bridged
    internal.set(tamper=True)
    body = _spatial_application(flows, internal)
    no = body["business_no"]
    flows.submit("county_window", body)

    quarantine = data_dir(flows.config) / "ferry" / "quarantine"
    flows.wait(lambda: list(quarantine.glob("*/reason.json")), timeout=30,
               what="the quarantined disc")
    assert not flows.received("legacy", operation="ReceiveReviewResult",
                              where=lambda b: b["YWH"] == no)
    assert flows.stage(no) not in ("registration", "certificate", "archive")

    # The internal side burns the result again; the new disc is taken, the case goes on.
    internal.burn(internal.reviews[-1])
    flows.wait(lambda: flows.stage(no) == "archive", timeout=30, what="archive")


def test_classified_spatial_data_submitted_online_is_refused_with_the_on_site_instruction(
        bridged: Flows, internal: InternalNetwork):
    flows = bridged
    body = _spatial_application(flows, internal)
    body["materials"][-1]["classified"] = True
    no = body["business_no"]
    flows.submit("county_window", body)

    notice = flows.wait(lambda: flows.received(
        "window_county", path="/notices",
        where=lambda b: b.get("business_no") == no and b.get("notice_type") == "refusal.notified"),
        what="refusal notice")[0]["body"]
    assert "宗地图.dxf" in notice["reason"] and "涉密空间数据只能在现场办理" in notice["reason"]
    assert "现场提交" in notice["reason"]
    flows.wait(lambda: flows.stage(no) == "refusal", what="progress refusal")
    # Nothing of it went anywhere: not to the departments, the register or the gate.
    assert not flows.received("legacy", where=lambda b: b.get("YWH") == no)
    assert not flows.received("gov", path="/api/identity/verify")
    kinds = {r["kind"] for r in flows.hub.store.verifications_for(no)}
    assert not kinds & {"identity", "household", "business_licence", "diode_transfer"}
    assert not internal.reviews and not list(internal.inbox.glob("*"))


def _at_correction(flows: Flows, suffix: str) -> str:
    """A first registration without spatial materials that the registration system
    sends back for correction (it lacks the cadastral survey form); its number."""
    body = copy.deepcopy(flows.samples["first"])
    body["business_no"] = body["business_no"].replace("W00002", suffix)
    body["unit_codes"] = [flows.sb.data["legacy"]["correction_units"][0]]
    body["materials"] = [m for m in body["materials"]
                         if m["type"] not in ("survey_report", "spatial_data")]
    no = body["business_no"]
    flows.submit("county_window", body)
    flows.wait(lambda: flows.stage(no) == "correction", timeout=30, what="stage correction")
    return no


def test_corrected_spatial_materials_cross_the_gate_and_are_confirmed_by_disc(
        bridged: Flows, internal: InternalNetwork):
    flows = bridged
    no = _at_correction(flows, "W00041")
    survey = {"name": "不动产权籍调查表", "type": "survey_report", "sha256": internal.deposit(PDF),
              "size": len(PDF), "media_type": "application/pdf"}

    answer = flows.post("county_window", f"/api/v1/applications/{no}/materials",
                        {"materials": [survey], "reason": "按补正通知书补充不动产权籍调查表"})

    assert answer.status_code == 202, answer.text
    flows.wait(lambda: flows.received("legacy", operation="SupplementMaterials",
                                      where=lambda b: b.get("YWH") == no), what="the correction")
    review = flows.wait(lambda: [r for r in internal.reviews if r["business_no"] == no],
                        timeout=30, what="the internal review of the corrected materials")[0]
    assert [r["sha256"] for r in review["received"]] == [hashlib.sha256(PDF).hexdigest()]
    records = {r["kind"]: r for r in flows.hub.store.verifications_for(no)}
    assert [m["sha256"] for m in records["diode_transfer"]["result"]["materials"]] == [
        hashlib.sha256(PDF).hexdigest()]
    flows.wait(lambda: _published(flows, no, "bridge.materials_confirmed"), timeout=30,
               what="confirmed by the disc")
    # The registration system waited at 审核 for the review of the corrected materials.
    told = flows.wait(lambda: flows.received("legacy", operation="ReceiveReviewResult",
                                             where=lambda b: b["YWH"] == no), what="the review")
    assert told[0]["body"]["CLZY"] in ([hashlib.sha256(PDF).hexdigest()],
                                       hashlib.sha256(PDF).hexdigest())
    flows.wait(lambda: flows.stage(no) == "archive", timeout=30, what="archive")


def test_a_correction_holding_classified_spatial_data_is_refused_with_the_on_site_instruction(
        bridged: Flows, internal: InternalNetwork, monkeypatch: pytest.MonkeyPatch):
    from bdchub.core import i18n

    flows = bridged
    no = _at_correction(flows, "W00042")
    drawing = {"name": "宗地图.dxf", "type": "spatial_data", "sha256": internal.deposit(DXF),
               "size": len(DXF), "classified": True}
    monkeypatch.delenv("HUB_LANG", raising=False)
    i18n.set_language(None)  # what a caller that asks for no language gets

    answer = flows.post("county_window", f"/api/v1/applications/{no}/materials",
                        {"materials": [drawing], "reason": "补充宗地图"})

    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "classified_material"
    assert "宗地图.dxf" in error["message"] and "涉密空间数据只能在现场办理" in error["message"]
    assert "现场提交" in error["message"]
    refused = [r["fields"] for r in flows.hub.audit_log().records()
               if r["event"] == "inbound.rejected" and r["fields"]["code"] == "classified_material"]
    assert refused and refused[-1]["reason"] == "classified_material"
    # Nothing of it went anywhere: the case still waits for its correction.
    assert not flows.received("legacy", operation="SupplementMaterials",
                              where=lambda b: b.get("YWH") == no)
    assert not [h for h in flows.trace(no) if h["route"] == "material_corrections"]
    assert flows.stage(no) == "correction"
    assert not [r for r in internal.reviews if r["business_no"] == no]
