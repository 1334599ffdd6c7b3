"""Fully online applications ("一次都不跑", guide §一(六)2) through the real engine.

An agent applies for a couple from the one-window app: the agent has done the
face comparison (liveness and likeness) at the integrated platform, which
gave a verification number, and signed the application form and the
commitment with the certificate the platform's CA issued. Flow a asks the
platform about both before anything reaches the registration system; a
failed comparison or a bad signature ends in a refusal notice, as a failed
identity check does.
"""

from __future__ import annotations

import copy
import hashlib
from typing import Any


def _of(no: str):
    return lambda body: isinstance(body, dict) and (
        body.get("business_no") == no or body.get("YWH") == no)


def _person(p: dict[str, Any]) -> dict[str, str]:
    return {"name": p["name"], "id_number": p["cert_num"]}


def fully_online(flows, key: str, agent: dict[str, Any], *, face_of: dict[str, Any] | None = None,
                 signed_digest: str | None = None) -> dict[str, Any]:
    """The demo's transfer, applied for fully online by ``agent``: a face comparison
    made at the platform now (of ``face_of``, the agent by default), the form and
    the commitment signed by the agent (the form's signature over
    ``signed_digest`` when given, as a tampered form would be)."""
    gov = flows.sb.endpoint("gov")
    body = copy.deepcopy(flows.samples["transfer"])
    body["business_no"] = body["business_no"].replace("W00001", key)
    for material in body["materials"]:
        material["tax_related"] = False  # straight to the registration system
    couple = [a["id_number"] for a in body["applicants"]]
    body["agents"] = [{"name": agent["name"], "id_type": "1", "id_number": agent["cert_num"],
                       "role": "agent", "represents": couple}]
    body["materials"].append({"name": "授权委托书", "type": "power_of_attorney",
                              "sha256": hashlib.sha256(key.encode()).hexdigest(), "size": 40_000})
    face = face_of or agent
    compared = gov.compare_face(face["name"], face["cert_num"], f"live:{key}".encode())
    form = next(m for m in body["materials"] if m["type"] == "application_form")
    commitment_digest = hashlib.sha256(f"{key}/承诺书".encode()).hexdigest()
    signatures = []
    for document, digest in (("application_form", form["sha256"]),
                             ("commitment", commitment_digest)):
        signed = gov.sign(agent["cert_num"], signed_digest if document == "application_form"
                          and signed_digest else digest)
        signatures.append({"signer": _person(agent), "document": document, "digest": digest,
                           **signed})
    body.update({
        "channel": "app", "fully_online": True,
        "face_comparisons": [{**_person(face), "verification_id": compared["verification_id"],
                              "compared_at": compared["compared_at"]}],
        "signatures": signatures,
        "interview_record": {
            "respondent": _person(agent), "interviewed_at": body["submitted_at"],
            "interviewer": "在线询问系统",
            "items": [{"code": "Q01", "question": "申请登记事项是否为申请人的真实意思表示？", "answer": "是"},
                      {"code": "Q02", "question": "代理人是否已取得申请人的书面授权？", "answer": "是"}]},
        "commitment": {"text": "本人承诺所提交的申请材料真实、合法、有效，如有虚假，愿承担相应法律责任。",
                       "committed_by": [_person(agent)], "committed_at": body["submitted_at"]},
        "delivery": {"method": "mail",
                     "recipient": {"name": body["applicants"][0]["name"], "phone": "13812345678"},
                     "postal_address": "江苏省南通市海门区海门街道人民中路100号2幢301室",
                     "express": {"company": "中国邮政 EMS"}},
    })
    return body


def _records(flows, no: str, *kinds: str) -> dict[str, dict[str, Any]]:
    def ready():
        got = {r["kind"]: r for r in flows.hub.store.verifications_for(no)}
        return got if set(kinds) <= set(got) else None
    return flows.wait(ready, what=f"records {kinds} of {no}")


def _refusal(flows, no: str) -> dict[str, Any]:
    return flows.wait(lambda: flows.received(
        "window_county", path="/notices",
        where=lambda b: b.get("business_no") == no and b.get("notice_type") == "refusal.notified"),
        what=f"refusal of {no}")[0]["body"]


def test_an_agent_with_a_passed_face_comparison_and_valid_signatures_is_forwarded(flows):
    agent = flows.sb.data["people"][20]
    body = fully_online(flows, "F00001", agent)
    no = body["business_no"]
    flows.submit("county_window", body)

    flows.wait(lambda: flows.received("legacy", operation="SubmitApplication", where=_of(no)),
               what="SubmitApplication")
    [asked] = [r["body"] for r in flows.received("gov", path="/api/face/verifications/query")
               if r["body"]["verifications"][0]["verification_id"]
               == body["face_comparisons"][0]["verification_id"]]
    assert asked == {"verifications": [{"verification_id": body["face_comparisons"][0]["verification_id"],
                                        "cert_num": agent["cert_num"]}]}
    assert flows.received("gov", path="/api/identity/verify",
                          where=lambda b: b["cert_num"] == agent["cert_num"])
    records = _records(flows, no, "identity", "agent_identity", "face_comparison", "signature")
    assert records["agent_identity"]["result"]["match"] is True
    [row] = records["face_comparison"]["result"]["rows"]
    assert (row["cert_num"], row["passed"], row["liveness_passed"], row["consistent"]) == (
        agent["cert_num"], True, True, True)
    signature = records["signature"]["result"]
    assert signature["valid"] is True
    assert [r["result_code"] for r in signature["rows"]] == ["00", "00"]
    flows.wait(lambda: flows.stage(no) in ("acceptance", "review", "registration", "certificate",
                                           "archive"), what="accepted")


def test_a_failed_face_comparison_is_refused_like_a_failed_identity_check(flows):
    sb = flows.sb
    agent = next(p for p in sb.data["people"] if p["cert_num"] in sb.data["face_mismatch"])
    body = fully_online(flows, "F00002", agent)
    no = body["business_no"]
    flows.submit("county_window", body)

    notice = _refusal(flows, no)
    assert notice["reason"] == "人脸比对未通过"
    assert notice["legal_basis"].startswith("《不动产登记暂行条例》")
    flows.wait(lambda: flows.stage(no) == "refusal", what="progress refusal")
    assert not flows.received("legacy", where=_of(no))
    [row] = _records(flows, no, "face_comparison")["face_comparison"]["result"]["rows"]
    assert row["passed"] is False and row["score"] < row["threshold"]


def test_a_face_that_fails_liveness_is_refused(flows):
    sb = flows.sb
    agent = next(p for p in sb.data["people"] if p["cert_num"] in sb.data["face_spoof"])
    body = fully_online(flows, "F00003", agent)
    no = body["business_no"]
    flows.submit("county_window", body)

    assert _refusal(flows, no)["reason"] == "人脸比对未通过"
    [row] = _records(flows, no, "face_comparison")["face_comparison"]["result"]["rows"]
    assert row["liveness_passed"] is False
    assert not flows.received("legacy", where=_of(no))


def test_someone_elses_face_comparison_does_not_stand_for_the_agent(flows):
    people = flows.sb.data["people"]
    body = fully_online(flows, "F00004", people[20], face_of=people[24])
    no = body["business_no"]
    flows.submit("county_window", body)

    assert _refusal(flows, no)["reason"] == "人脸比对须由代理人或申请人本人完成"
    assert not flows.received("legacy", where=_of(no))


def test_a_bad_signature_is_refused(flows):
    agent = flows.sb.data["people"][20]
    # The form was changed after it was signed: the signature is over another digest.
    body = fully_online(flows, "F00005", agent, signed_digest=hashlib.sha256(b"other").hexdigest())
    no = body["business_no"]
    flows.submit("county_window", body)

    assert _refusal(flows, no)["reason"] == "电子签名验证未通过"
    flows.wait(lambda: flows.stage(no) == "refusal", what="progress refusal")
    assert not flows.received("legacy", where=_of(no))
    rows = _records(flows, no, "signature")["signature"]["result"]["rows"]
    assert [(r["valid"], r["result_code"]) for r in rows] == [(False, "01"), (True, "00")]


def test_a_signature_under_a_revoked_certificate_is_refused(flows):
    sb = flows.sb
    agent = next(p for p in sb.data["people"] if p["cert_num"] in sb.data["signature_revoked"])
    body = fully_online(flows, "F00006", agent)
    no = body["business_no"]
    flows.submit("county_window", body)

    assert _refusal(flows, no)["reason"] == "电子签名验证未通过"
    rows = _records(flows, no, "signature")["signature"]["result"]["rows"]
    assert {r["certificate_status"] for r in rows} == {"已吊销"}


def test_the_postal_address_is_masked_where_the_hub_shows_the_application(flows):
    sb = flows.sb
    sb.faults("legacy").set(soap_fault="client")  # the registration system refuses it
    body = fully_online(flows, "F00007", sb.data["people"][20])
    no = body["business_no"]
    flows.submit("county_window", body)

    [dead] = flows.wait(lambda: [d for d in flows.hub.dlq_list() if d["business_no"] == no],
                        what="dead letter")
    shown = flows.hub.dlq_show(dead["id"])["envelope"]["body"]["delivery"]
    address = body["delivery"]["postal_address"]
    assert shown["postal_address"] == address[0] + "*" * (len(address) - 1)
    assert shown["recipient"]["phone"] == "138****5678"
    assert shown["recipient"]["name"].endswith("*")
    kept = flows.hub.dlq_show(dead["id"], masked=False)["envelope"]["body"]["delivery"]
    assert kept["postal_address"] == address  # replayable as it came
