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
- ``seizure``: a court seizure, pulled from the court: flow d.

Seeded unit codes in use: ``units[0..4]`` already carry other people's contract
filings and ``units[8..10]`` seeded court orders, so the samples take units 5
(transfer), 6 and 7 (mortgages), 11 (seizure), 14 (first registration) and 15
(correction), and ``legacy.refuse_units[0]`` for the refusal.
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
            material(no["first"], "房屋测绘报告", "survey_report"),
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

    return {"numbers": no, "filing": filing, "bank": dict(BANK), "transfer": transfer,
            "batch": batch, "first": first, "refusal": refusal, "correction": correction,
            "seizure": seizure}


def write_samples(folder: str | Path, data: dict[str, Any]) -> list[Path]:
    """Save the sample bodies as JSON files (for ``hub send`` / ``hub validate``)."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    samples = build(data)
    written = []
    for key in ("transfer", "first", "refusal", "correction"):
        path = out / f"application-{key}.json"
        path.write_text(json.dumps(samples[key], ensure_ascii=False, indent=2) + "\n",
                        encoding="utf-8")
        written.append(path)
    path = out / "bank-batch.json"
    path.write_text(json.dumps(samples["batch"], ensure_ascii=False, indent=2) + "\n",
                    encoding="utf-8")
    written.append(path)
    return written
