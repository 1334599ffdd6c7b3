"""The electronic notice documents of a decision on an application, as PDF.

Guide §三(一)1: acceptance (受理通知书), refusal (不予受理告知书, with the reason,
its legal basis and the applicant's remedies) and correction (补正通知书,
listing what to supply and by when) go back to the platform the application
came from as documents, not only as data. Guide §二(一)7: the no-property
certificate (无房证明, kind ``no_property``) is a document too, rendered from
the certificate the registration system issued (the body's ``document``). ``render`` lays one out with fpdf2
and embeds the subset of a CJK TrueType font it uses, so the document reads
the same on any viewer; the wording is the registration agency's, in Chinese
whatever language the operator reads the hub in.

The font is the first of ``font`` (a step's option), ``$BDCHUB_NOTICE_FONT`` and
``FONT_CANDIDATES`` (Debian's ``fonts-wqy-microhei`` first) that exists. The
same notice renders to the same bytes (the PDF's dates are the decision's
time), so its SHA-256 is a stable name for it.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

FONT_ENV = "BDCHUB_NOTICE_FONT"
#: TrueType CJK fonts Debian ships (TrueType outlines: fpdf2 subsets them).
FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
)
MEDIA_TYPE = "application/pdf"

#: message type -> notice kind
KINDS = {"acceptance.notified": "acceptance", "refusal.notified": "refusal",
         "correction.requested": "correction", "query.no_property": "no_property"}
TITLES = {"acceptance": "不动产登记受理通知书", "refusal": "不动产登记不予受理告知书",
          "correction": "不动产登记补正材料通知书",
          "no_property": "不动产登记信息查询结果证明（无房证明）"}
#: Kinds that name a person: rendered from the body as the masking block shows it.
MASKED = frozenset({"no_property"})
#: Remedies a refusal must state (《行政复议法》, 《行政诉讼法》).
REMEDY = ("如对本决定不服，可以自收到本告知书之日起六十日内依法申请行政复议，"
          "或者在六个月内依法向人民法院提起行政诉讼。")


def find_font(configured: str | None = None) -> Path | None:
    """The CJK font notices are set in, or None when this machine has none."""
    for candidate in (configured, os.environ.get(FONT_ENV), *FONT_CANDIDATES):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def _when(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone(dt.timedelta(hours=8)))


def _date(value: Any) -> str:
    found = _when(value)
    return f"{found.year}年{found.month}月{found.day}日" if found else str(value or "")


def decided_at(kind: str, notice: Mapping[str, Any]) -> dt.datetime | None:
    """When the decision was taken, as the notice says."""
    if kind == "no_property":
        return _when((notice.get("document") or {}).get("issued_at"))
    field = {"acceptance": "accepted_at", "refusal": "refused_at",
             "correction": "requested_at"}[kind]
    return _when(notice.get(field))


def _certificate(document: Mapping[str, Any]) -> list[str]:
    """The no-property certificate's text: who, what the register says, for what."""
    person = document.get("person") or {}
    return [f"证明编号：{document.get('certificate_no') or ''}",
            f"查询对象：{person.get('name') or ''}（证件号码：{person.get('id_number') or ''}）",
            str(document.get("statement") or ""),
            f"用途：{document.get('purpose') or ''}",
            f"出具机构：{document.get('issuer') or ''}",
            f"出具时间：{_date(document.get('issued_at'))}"]


def paragraphs(kind: str, notice: Mapping[str, Any], business_no: str) -> list[str]:
    """The notice's text, paragraph by paragraph (also what a test reads back)."""
    if kind == "no_property":
        return _certificate(notice.get("document") or {})
    organisation = (notice.get("organisation") or {}).get("name") or ""
    lines = [f"业务号：{business_no}"]
    if kind == "acceptance":
        lines.append("经审查，您（单位）提交的不动产登记申请材料齐全、符合法定形式，"
                     "本机构决定予以受理。")
        lines.append(f"受理时间：{_date(notice.get('accepted_at'))}")
        if notice.get("promised_completion_date"):
            lines.append(f"承诺办结日期：{_date(notice['promised_completion_date'])}")
    elif kind == "refusal":
        lines.append("经审查，您（单位）的不动产登记申请不符合受理条件，本机构决定不予受理。")
        lines.append(f"不予受理理由：{notice.get('reason') or ''}")
        lines.append(f"法律依据：{notice.get('legal_basis') or ''}")
        lines.append(f"决定时间：{_date(notice.get('refused_at'))}")
        lines.append(REMEDY)
    else:
        deadline = notice.get("deadline")
        lines.append("经审查，您（单位）提交的申请材料不齐全或者不符合法定形式，请补正下列材料"
                     + (f"（{_date(deadline)}前）" if deadline else "") + "：")
        for i, item in enumerate(notice.get("items") or (), 1):
            if isinstance(item, Mapping):
                name = item.get("material_name") or ""
                what = item.get("description") or ""
                lines.append(f"{i}. {name}" + (f"：{what}" if what and what != name else ""))
        lines.append(f"通知时间：{_date(notice.get('requested_at'))}")
    lines.append(f"登记机构：{organisation}")
    return lines


def render(kind: str, notice: Mapping[str, Any], *, business_no: str, notice_no: str,
           font: Path, at: dt.datetime | None = None) -> bytes:
    """The notice of ``kind`` as PDF bytes, set in ``font``."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_title(TITLES[kind])
    pdf.set_subject(business_no)
    pdf.set_creation_date(at or decided_at(kind, notice)
                          or dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
    pdf.add_font("notice", fname=str(font))
    pdf.set_margins(25, 25, 25)
    pdf.add_page()
    pdf.set_font("notice", size=20)
    pdf.cell(0, 14, TITLES[kind], align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("notice", size=10)
    pdf.cell(0, 8, f"编号：{notice_no}", align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font("notice", size=12)
    for text in paragraphs(kind, notice, business_no):
        pdf.multi_cell(0, 8, text, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2)
    return bytes(pdf.output())
