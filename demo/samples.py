"""The demo's sample messages, built from the sandbox's seeded data.

The people, companies and unit codes come from ``Sandbox.data`` (seed 42 by
default), so identity, household, marriage and licence checks find what they
look for and the legacy system's deterministic rules (``refuse_units``)
apply. Every body is a canonical message (``hub validate application …``);
``write_samples(folder, sb)`` saves them as JSON for ``hub send``.

Kinds:

- ``transfer``: second-hand transfer (200) by a married couple with a
  tax-related contract: flows a, b, c, e;
- ``mortgage``: two mortgages (100 / right 23) in one batch from a bank:
  flows f, a, c, e;
- ``first``: first registration (100) by a developer: flows a, c, e;
- ``refusal``: an application for a unit the register already holds as
  seized: flows a, c, refusal notice;
- ``correction``: a change registration (300) without the applicant's
  identity document: flow a's checklist sends a correction notice;
- ``seizure``: a court seizure, pulled from the court: flow d;
- ``corrected``: another change registration without the applicant's identity
  document, and ``correction_materials``, what the window sends for it;
- ``province``: a first registration from the province's window (its notices
  go back there), graded afterwards (``grade``, the good-bad evaluation);
- ``three_levels``: a first registration whose results go to every level;
- ``spatial``: a first registration with a survey report and a parcel drawing
  (DXF): spatial materials for the one-way gate (flow g);
- ``institution``: a first registration by a public institution (credit code
  1…, checked at 机构编制);
- ``agent_base``: a change registration (300) an agent applies for fully
  online; ``fully_online(body, agent, gov)`` adds the face comparison and
  signatures the platform (``gov``) gave;
- ``developer_batch``, ``agency_batch``: direct channels' batches;
- ``query`` (own properties) and ``appointment`` (a slot to bring the
  incomplete application's missing material).

Spatial materials (``survey_report``, ``spatial_data``) stand for files whose
bytes ``spatial_files(body)`` gives back, so the demo can put them into the
material store the gate reads; every other material's hash names no file.

Seeded unit codes in use: ``units[0..4]`` already carry other people's contract
filings and ``units[8..10]`` seeded court orders, so the samples take units 5
(transfer), 6 and 7 (mortgages), 11 (seizure), 14 (first registration) and 15
(correction) and ``legacy.refuse_units[0]`` for the refusal; the other cases
take unit codes of their own (``demo_unit``) no seeded record touches.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

#: The mortgagee bank of the bank channel (a valid USCC, division 320614).
BANK = {"name": "江海农村商业银行股份有限公司海门支行", "id_type": "8",
        "id_number": "91320614MA1P8K6W29", "co_ownership": "0"}


def now_iso() -> str:
    return dt.datetime.now().astimezone().replace(microsecond=0).isoformat()


def material(business_no: str, name: str, kind: str, *, tax_related: bool = False,
             size: int = 200_000) -> dict[str, Any]:
    """A material entry: the file itself travels separately, the message carries its hash."""
    digest = hashlib.sha256(f"{business_no}/{name}".encode()).hexdigest()
    return {"name": name, "type": kind, "sha256": digest, "size": size,
            "media_type": "application/pdf", "tax_related": tax_related}


SPATIAL_TYPES = ("survey_report", "spatial_data")


def spatial_content(business_no: str, name: str, kind: str) -> bytes:
    """The bytes of a spatial material of the samples: a small PDF survey report or a
    DXF drawing, different for every case and name."""
    if kind == "spatial_data":
        return (f"999\n{business_no} {name}\n0\nSECTION\n2\nENTITIES\n0\nLWPOLYLINE\n8\nJZD\n"
                "0\nENDSEC\n0\nEOF\n").encode()
    return b"%PDF-1.7\n% " + f"{business_no} {name}".encode() + b"\n" + bytes(range(256)) * 16


def spatial_material(business_no: str, name: str, kind: str = "survey_report") -> dict[str, Any]:
    """A spatial material entry whose hash and size are those of ``spatial_content``."""
    data = spatial_content(business_no, name, kind)
    return {"name": name, "type": kind, "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data),
            "media_type": "image/vnd.dxf" if kind == "spatial_data" else "application/pdf"}


def spatial_files(business_no: str, materials: list[dict[str, Any]]) -> dict[str, bytes]:
    """SHA-256 -> bytes of the spatial materials listed (what a platform puts into the
    material store); materials that are not the samples' own are left out."""
    files = {}
    for m in materials:
        if m.get("type") in SPATIAL_TYPES:
            data = spatial_content(business_no, m["name"], m["type"])
            if hashlib.sha256(data).hexdigest() == m.get("sha256"):
                files[m["sha256"]] = data
    return files


def demo_unit(county: str, n: int) -> str:
    """A unit code of the demo's own: no seeded filing, court order or register entry."""
    return f"{county}4132{n:02d}GB9{n:04d}F{n:08d}"


def next_weekday(days_ahead: int = 1) -> str:
    day = dt.date.today() + dt.timedelta(days=days_ahead)
    while day.weekday() >= 5:
        day += dt.timedelta(days=1)
    return day.isoformat()


def person(p: dict[str, Any], co_ownership: str = "0", **extra: Any) -> dict[str, Any]:
    return {"name": p["name"], "id_type": "1", "id_number": p["cert_num"],
            "co_ownership": co_ownership, **extra}


def business_numbers(county: str, year: int | None = None, tag: str = "") -> dict[str, str]:
    """The samples' business numbers; ``tag`` (a few letters or digits) makes them
    unique when several runs share one registration system (tests)."""
    year = year or dt.date.today().year
    return {
        "transfer": f"{county}{year}{tag}W00001",
        "first": f"{county}{year}{tag}W00002",
        "refusal": f"{county}{year}{tag}W00003",
        "correction": f"{county}{year}{tag}W00004",
        "batch": f"JHRCB-{year}-{tag}0001",
        "mortgage_1": f"{county}{year}{tag}B00001",
        "mortgage_2": f"{county}{year}{tag}B00002",
        "corrected": f"{county}{year}{tag}W00005",
        "province": f"{county}{year}{tag}W00006",
        "three_levels": f"{county}{year}{tag}W00007",
        "spatial": f"{county}{year}{tag}W00008",
        "institution": f"{county}{year}{tag}W00010",
        "agent": f"{county}{year}{tag}W00011",
        "developer_batch": f"KF-{year}-{tag}0001",
        "developer_1": f"{county}{year}{tag}D00001",
        "agency_batch": f"ZJ-{year}-{tag}0001",
        "agency_1": f"{county}{year}{tag}Z00001",
        "query": f"CX-{year}-{tag}0001",
        "appointment": f"YY-{year}-{tag}0001",
    }


def build(data: dict[str, Any], *, submitted_at: str | None = None, tag: str = "") -> dict[str, Any]:
    """Every sample body, by key, plus the department-side set-up they rely on."""
    county = data["county"]["code"]
    people, units, companies = data["people"], data["units"], data["companies"]
    at = submitted_at or now_iso()
    no = business_numbers(county, tag=tag)
    year = dt.date.today().year
    place = data["county"]["name"]

    # A married couple (seeded marriage 1) buys from a seller; their contract is
    # filed online at the housing trade department (网签备案) before they apply.
    husband, wife, seller = people[2], people[3], people[16]
    transfer_unit = units[5]  # units[0..4] carry seeded filings of other people
    filing = {
        "filing_no": f"{county}{year}WQ{tag}900001", "unit_code": transfer_unit,
        "location": f"{place}海门街道长江南路88号3幢1单元202室", "area": 98.76,
        "price": 1280000.0,
        "sellers": [{"name": seller["name"], "cert_type": "1", "cert_num": seller["cert_num"]}],
        "buyers": [{"name": p["name"], "cert_type": "1", "cert_num": p["cert_num"]}
                   for p in (husband, wife)],
        "sign_date": dt.date.today().isoformat(), "filing_date": dt.date.today().isoformat(),
        "status": "已备案"}
    transfer = {
        "business_no": no["transfer"], "tenant": county, "registration_type": "200",
        "right_type": "4", "unit_codes": [transfer_unit], "location": filing["location"],
        "current_certificate_numbers": [f"苏(2019){place}不动产权第0004321号"],
        "applicants": [person(husband, "1", phone="13812345678"), person(wife, "1")],
        "obligors": [person(seller)],
        "materials": [
            material(no["transfer"], "不动产登记申请书", "application_form"),
            material(no["transfer"], "申请人身份证明", "identity_document"),
            material(no["transfer"], "不动产权证书", "ownership_document"),
            material(no["transfer"], "存量房买卖合同", "contract", tax_related=True),
        ],
        "declared_price": "1280000.00", "channel": "county_window", "submitted_at": at,
    }

    def mortgage(key: str, unit: str, mortgagors: list[dict[str, Any]], cert: int) -> dict[str, Any]:
        bno = no[key]
        return {
            "business_no": bno, "tenant": county, "registration_type": "100", "right_type": "23",
            "unit_codes": [unit], "current_certificate_numbers": [
                f"苏(2020){place}不动产权第{cert:07d}号"],
            "applicants": [dict(BANK)], "obligors": mortgagors,
            "materials": [
                material(bno, "不动产登记申请书", "application_form"),
                material(bno, "申请人身份证明（营业执照、身份证）", "identity_document"),
                material(bno, "不动产权证书", "ownership_document"),
                material(bno, "抵押合同", "contract"),
                material(bno, "主债权合同", "contract"),
            ],
            "channel": "bank", "submitted_at": at, "remarks": "银行线上抵押登记",
        }

    batch = {
        "business_no": no["batch"], "bank": BANK["name"], "submitted_at": at,
        "applications": [
            mortgage("mortgage_1", units[6], [person(people[4], "1"), person(people[5], "1")], 1234),
            mortgage("mortgage_2", units[7], [person(people[6])], 2345),
        ],
    }

    developer = companies[2]
    first = {
        "business_no": no["first"], "tenant": county, "registration_type": "100",
        "right_type": "4", "unit_codes": [units[14]],
        "location": f"{place}三厂街道东洲路18号5幢",
        "applicants": [{"name": developer["company_name"], "id_type": "8",
                        "id_number": developer["uscc"], "co_ownership": "0"}],
        "materials": [
            material(no["first"], "不动产登记申请书", "application_form"),
            material(no["first"], "申请人身份证明（营业执照）", "identity_document"),
            material(no["first"], "国有建设用地使用权出让合同", "ownership_document"),
            spatial_material(no["first"], "房屋测绘报告"),
        ],
        "channel": "national_window", "submitted_at": at,
    }

    refusal = {
        "business_no": no["refusal"], "tenant": county, "registration_type": "100",
        "right_type": "4", "unit_codes": [data["legacy"]["refuse_units"][0]],
        "applicants": [person(people[8])],
        "materials": [
            material(no["refusal"], "不动产登记申请书", "application_form"),
            material(no["refusal"], "申请人身份证明", "identity_document"),
            material(no["refusal"], "权属来源证明", "ownership_document"),
        ],
        "channel": "province_window", "submitted_at": at,
    }

    correction = {
        "business_no": no["correction"], "tenant": county, "registration_type": "300",
        "right_type": "4", "unit_codes": [units[15]],
        "current_certificate_numbers": [f"苏(2018){place}不动产权第0007777号"],
        "applicants": [person(people[10])],
        "materials": [material(no["correction"], "不动产登记申请书", "application_form")],
        "channel": "county_window", "submitted_at": at, "remarks": "姓名变更",
    }

    seizure = {"unit_code": units[11], "RespondentName": people[12]["name"],
               "RespondentIdNumber": people[12]["cert_num"], "Summary": "查封不动产（演示）"}

    def organisation(applicant: dict[str, str]) -> dict[str, str]:
        return {"name": applicant["name"], "id_type": "8", "id_number": applicant["uscc"],
                "co_ownership": "0"}

    def first_registration(key: str, unit: str, applicant: dict[str, str], channel: str, *,
                           spatial: tuple[tuple[str, str], ...] = ()) -> dict[str, Any]:
        bno = no[key]
        return {
            "business_no": bno, "tenant": county, "registration_type": "100", "right_type": "4",
            "unit_codes": [unit], "applicants": [organisation(applicant)],
            "materials": [
                material(bno, "不动产登记申请书", "application_form"),
                material(bno, "申请人身份证明", "identity_document"),
                material(bno, "国有建设用地使用权出让合同", "ownership_document"),
                *(spatial_material(bno, name, kind) for name, kind in spatial),
            ],
            "channel": channel, "submitted_at": at,
        }

    def company(c: dict[str, Any]) -> dict[str, str]:
        return {"name": c["company_name"], "uscc": c["uscc"]}

    # Sent back by the hub's checklist like ``correction``; the window sends the
    # missing identity document and the application goes on to be accepted.
    corrected = dict(correction, business_no=no["corrected"], unit_codes=[demo_unit(county, 5)],
                     applicants=[person(people[9])],
                     materials=[material(no["corrected"], "不动产登记申请书", "application_form")],
                     current_certificate_numbers=[f"苏(2016){place}不动产权第0006666号"])
    correction_materials = {
        "materials": [material(no["corrected"], "申请人身份证明", "identity_document")],
        "reason": "按补正通知书补充申请人身份证明"}
    province = first_registration("province", demo_unit(county, 6), company(companies[3]),
                                  "province_window")
    three_levels = first_registration("three_levels", demo_unit(county, 7),
                                      company(companies[5]), "county_window")
    spatial = first_registration("spatial", demo_unit(county, 8), company(companies[2]),
                                 "county_window", spatial=(("房屋测绘报告", "survey_report"),
                                                           ("宗地图.dxf", "spatial_data")))
    hospital = next(i for i in data["institutions"]
                    if i["org_type"] == "事业单位" and i["status"] == "正常")
    institution = first_registration("institution", demo_unit(county, 10), hospital,
                                     "county_window")
    owner = people[19]
    agent_base = {
        "business_no": no["agent"], "tenant": county, "registration_type": "300",
        "right_type": "4", "unit_codes": [demo_unit(county, 11)],
        "current_certificate_numbers": [f"苏(2017){place}不动产权第0005555号"],
        "applicants": [person(owner)],
        "agents": [{"name": people[20]["name"], "id_type": "1",
                    "id_number": people[20]["cert_num"], "role": "agent",
                    "represents": [owner["cert_num"]]}],
        "materials": [
            material(no["agent"], "不动产登记申请书", "application_form"),
            material(no["agent"], "申请人身份证明", "identity_document"),
            material(no["agent"], "不动产权证书", "ownership_document"),
            material(no["agent"], "授权委托书", "power_of_attorney"),
        ],
        "channel": "app", "submitted_at": at, "remarks": "通讯地址变更（全程网办）",
    }
    developer_batch = {
        "business_no": no["developer_batch"], "tenant": county, "submitted_at": at,
        "applications": [dict(first_registration("developer_1", demo_unit(county, 12),
                                                  company(companies[2]), "developer"))]}
    agency_batch = {
        "business_no": no["agency_batch"], "tenant": county, "submitted_at": at,
        "applications": [{
            "business_no": no["agency_1"], "tenant": county, "registration_type": "200",
            "right_type": "4", "unit_codes": [demo_unit(county, 13)],
            "applicants": [person(people[21])], "obligors": [person(people[22])],
            "materials": [material(no["agency_1"], "不动产登记申请书", "application_form"),
                          material(no["agency_1"], "申请人身份证明", "identity_document"),
                          material(no["agency_1"], "不动产权证书", "ownership_document"),
                          material(no["agency_1"], "买卖合同", "contract")],
            "channel": "agency", "submitted_at": at}]}
    query = {"query_no": no["query"], "purpose": "购房资格审核",
             "person": {"name": people[0]["name"], "id_type": "1",
                        "id_number": people[0]["cert_num"]}}
    # The incomplete application's applicant books a slot to bring the missing document.
    appointment = {
        "request_no": no["appointment"], "business_no": no["correction"],
        "applicant": {"name": people[10]["name"], "id_type": "1",
                      "id_number": people[10]["cert_num"]},
        "service": "补正材料提交", "service_code": "300",
        "office": {"name": data["scheduling"]["office"]}, "date": next_weekday(),
        "time_slot": {"start": "10:00", "end": "10:30"}, "requested_at": at}
    grade = {"business_no": no["province"], "grade": "very_satisfied", "graded_at": at,
             "evaluation_channel": "app", "comment": "网上办理，一次都没跑"}

    return {"numbers": no, "filing": filing, "bank": dict(BANK), "transfer": transfer,
            "batch": batch, "first": first, "refusal": refusal, "correction": correction,
            "seizure": seizure, "corrected": corrected,
            "correction_materials": correction_materials, "province": province,
            "three_levels": three_levels, "spatial": spatial, "institution": institution,
            "agent_base": agent_base, "developer_batch": developer_batch,
            "agency_batch": agency_batch, "query": query, "appointment": appointment,
            "grade": grade}


def fully_online(body: dict[str, Any], gov: Any) -> dict[str, Any]:
    """``body`` (with its agent) as the one-window app submits it fully online
    (一次都不跑): the agent's face comparison and signatures made at the integrated
    platform ``gov`` (the sandbox's ``gov`` endpoint), the interview record, the
    commitment, and the certificate mailed."""
    agent = body["agents"][0]
    signer = {"name": agent["name"], "id_number": agent["id_number"]}
    compared = gov.compare_face(agent["name"], agent["id_number"],
                                f"live:{body['business_no']}".encode())
    form = next(m for m in body["materials"] if m["type"] == "application_form")
    commitment = hashlib.sha256(f"{body['business_no']}/承诺书".encode()).hexdigest()
    signatures = [{"signer": signer, "document": document, "digest": digest,
                   **gov.sign(agent["id_number"], digest)}
                  for document, digest in (("application_form", form["sha256"]),
                                           ("commitment", commitment))]
    recipient = body["applicants"][0]
    return {
        **body, "fully_online": True,
        "face_comparisons": [{**signer, "verification_id": compared["verification_id"],
                              "compared_at": compared["compared_at"]}],
        "signatures": signatures,
        "interview_record": {
            "respondent": signer, "interviewed_at": body["submitted_at"],
            "interviewer": "在线询问系统",
            "items": [{"code": "Q01", "question": "申请登记事项是否为申请人的真实意思表示？",
                       "answer": "是"},
                      {"code": "Q02", "question": "代理人是否已取得申请人的书面授权？",
                       "answer": "是"}]},
        "commitment": {"text": "本人承诺所提交的申请材料真实、合法、有效，如有虚假，愿承担相应法律责任。",
                       "committed_by": [signer], "committed_at": body["submitted_at"]},
        "delivery": {"method": "mail",
                     "recipient": {"name": recipient["name"], "phone": "13912345678"},
                     "postal_address": "江苏省南通市海门区海门街道人民中路100号2幢301室",
                     "express": {"company": "中国邮政 EMS"}},
    }


#: the samples with spatial materials (their files for the material store)
SPATIAL_SAMPLES = ("first", "spatial")

#: file name -> sample key, beyond ``application-{key}.json`` of the first four
MORE_SAMPLES = {
    "bank-batch.json": "batch",
    "corrected-application.json": "corrected",
    "correction-materials.json": "correction_materials",
    "province-application.json": "province",
    "three-levels-application.json": "three_levels",
    "spatial-application.json": "spatial",
    "institution-application.json": "institution",
    "fully-online-application.json": "agent",
    "developer-batch.json": "developer_batch",
    "agency-batch.json": "agency_batch",
    "query-own-properties.json": "query",
    "appointment.json": "appointment",
    "evaluation-grade.json": "grade",
}


def write_samples(folder: str | Path, data: dict[str, Any], gov: Any) -> list[Path]:
    """Save the sample bodies as JSON files (for ``hub send`` / ``hub validate``);
    ``gov`` makes the fully online application's face comparison and signatures.
    The spatial materials' files go into ``materials/``, named by their SHA-256."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    samples = build(data)
    samples["agent"] = fully_online(samples["agent_base"], gov)
    written = []

    def write(path: Path, body: Any) -> None:
        path.write_text(json.dumps(body, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        written.append(path)

    for key in ("transfer", "first", "refusal", "correction"):
        write(out / f"application-{key}.json", samples[key])
    for name, key in MORE_SAMPLES.items():
        write(out / name, samples[key])
    store = out / "materials"
    store.mkdir(exist_ok=True)
    for key in SPATIAL_SAMPLES:
        for sha, content in spatial_files(samples[key]["business_no"],
                                          samples[key]["materials"]).items():
            (store / sha).write_bytes(content)
    return written
