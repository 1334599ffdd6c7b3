"""Registries the shared-information checks ask (guide §四(一)1, §四(一)3), each
behind the national data-exchange signature like ``gov`` and ``civil``:

- ``public_sector`` (机构编制): government bodies and public institutions, the
  credit codes of GB 32100 registering department 1.
  ``POST /api/public-sector/institutions/query {uscc}`` →
  ``{total, rows: [{uscc, name, org_type 机关|事业单位, legal_rep, status 正常|撤销|注销,
  certificate_no, address, reg_authority, reg_date}]}``.
- ``health`` (卫生健康): medical certificates.
  ``POST /api/health/death-certificates/verify {name, cert_num, certificate_no?}`` →
  ``{found, consistent, certificate_no, name, cert_num, death_date, institution}``
  (consistent: on file under that ID number, the same name, and the same number
  when one is given);
  ``POST /api/health/birth-certificates/verify {parent_cert_num, certificate_nos: [...]}`` →
  ``{total, consistent, rows: [{certificate_no, found, child_name, birth_date,
  father_name, mother_name, institution, parent_matches}]}`` (consistent: every
  number on file and naming that parent).
- ``justice`` (司法行政): notarial certificates.
  ``POST /api/justice/notarial-certificates/verify {certificate_nos: [...]}`` →
  ``{total, valid, rows: [{certificate_no, found, status 有效|撤销, matter,
  notary_office, issued_on, parties}]}`` (valid: every one on file and 有效).
- ``finance`` (金融监管): financial licences (金融许可证).
  ``POST /api/finance/licences/query {uscc | licence_no}`` →
  ``{total, rows: [{licence_no, institution_name, uscc, institution_type,
  status 有效|注销|吊销, issued_on, authority, address}]}``.

Queries answer ``total: 0`` for what is not on file (never 404): "not
registered" is an answer the route acts on. A malformed credit code is 400
``INVALID_USCC``. Every call is signed as in ``exchange``; each registry keeps
its own secret line (``credentials[name]``).
"""

from __future__ import annotations

from typing import Any

from bdchub.core.i18n import _

from ..data import valid_resident_id
from ..rest import require, route
from ..server import HttpError, Request
from .exchange import ExchangeEndpoint, uscc_of


def numbers(body: dict[str, Any], key: str) -> list[str]:
    """A non-empty list of document numbers at ``key`` (at most 50)."""
    value = body.get(key)
    if not isinstance(value, list) or not value or len(value) > 50 or not all(
            isinstance(v, str) and v.strip() for v in value):
        raise HttpError(400, "BAD_FIELD", _("{name} must be a list of 1 to 50 numbers", name=key))
    return [v.strip() for v in value]


def cert_num_of(body: dict[str, Any], key: str) -> str:
    value = str(body[key]).strip().upper()
    if not valid_resident_id(value):
        raise HttpError(400, "INVALID_CERT_NUM",
                        _("{value} is not a valid resident ID number", value=value))
    return value


class PublicSectorEndpoint(ExchangeEndpoint):
    """机构编制: who a government body or public institution is, by its credit code."""

    protocol = "REST/JSON + data-exchange signature"

    @route("POST", "/api/public-sector/institutions/query", "institution.query")
    def institution_query(self, req: Request) -> Any:
        uscc = uscc_of(req.json_object())
        rows = [dict(r) for r in self.sandbox.data["institutions"] if r["uscc"] == uscc]
        return {"total": len(rows), "rows": rows}


class HealthEndpoint(ExchangeEndpoint):
    """卫生健康: birth and death medical certificates (出生/死亡医学证明)."""

    protocol = "REST/JSON + data-exchange signature"

    @route("POST", "/api/health/death-certificates/verify", "death_certificate.verify")
    def death_verify(self, req: Request) -> Any:
        body = req.json_object()
        require(body, "name", "cert_num")
        cert = cert_num_of(body, "cert_num")
        name = str(body["name"]).strip()
        number = str(body.get("certificate_no") or "").strip()
        row = next((r for r in self.sandbox.data["death_certificates"] if r["cert_num"] == cert),
                   None)
        if row is None:
            return {"found": False, "consistent": False, "certificate_no": number or None,
                    "name": name, "cert_num": cert, "death_date": None, "institution": None}
        consistent = row["name"] == name and (not number or number == row["certificate_no"])
        return {"found": True, "consistent": consistent, **{k: row[k] for k in (
            "certificate_no", "name", "cert_num", "death_date", "institution")}}

    @route("POST", "/api/health/birth-certificates/verify", "birth_certificate.verify")
    def birth_verify(self, req: Request) -> Any:
        body = req.json_object()
        require(body, "parent_cert_num")
        parent = cert_num_of(body, "parent_cert_num")
        on_file = {r["certificate_no"]: r for r in self.sandbox.data["birth_certificates"]}
        rows = []
        for number in numbers(body, "certificate_nos"):
            row = on_file.get(number)
            if row is None:
                rows.append({"certificate_no": number, "found": False, "parent_matches": False})
                continue
            rows.append({"certificate_no": number, "found": True,
                         **{k: row[k] for k in ("child_name", "birth_date", "father_name",
                                                "mother_name", "institution")},
                         "parent_matches": parent in (row["father_cert_num"],
                                                      row["mother_cert_num"])})
        return {"total": len(rows), "rows": rows,
                "consistent": all(r["found"] and r["parent_matches"] for r in rows)}


class JusticeEndpoint(ExchangeEndpoint):
    """司法行政: notarial certificates (公证书) issued by the county's notary offices."""

    protocol = "REST/JSON + data-exchange signature"

    @route("POST", "/api/justice/notarial-certificates/verify", "notarial.verify")
    def notarial_verify(self, req: Request) -> Any:
        body = req.json_object()
        on_file = {r["certificate_no"]: r for r in self.sandbox.data["notarial_certificates"]}
        rows = []
        for number in numbers(body, "certificate_nos"):
            row = on_file.get(_plain_brackets(number))
            rows.append({"certificate_no": number, "found": False} if row is None
                        else {**row, "parties": list(row["parties"]), "found": True})
        return {"total": len(rows), "rows": rows,
                "valid": all(r["found"] and r["status"] == "有效" for r in rows)}


class FinanceEndpoint(ExchangeEndpoint):
    """金融监管: financial licences (金融许可证) of banks and their branches."""

    protocol = "REST/JSON + data-exchange signature"

    @route("POST", "/api/finance/licences/query", "licence.query")
    def licence_query(self, req: Request) -> Any:
        body = req.json_object()
        if not body.get("uscc") and not body.get("licence_no"):
            raise HttpError(400, "MISSING_FIELD", _("missing required field(s): {names}",
                                                     names="uscc | licence_no"))
        uscc = uscc_of(body) if body.get("uscc") else None
        number = str(body.get("licence_no") or "").strip().upper() or None
        rows = [dict(r) for r in self.sandbox.data["financial_licences"]
                if (uscc is None or r["uscc"] == uscc)
                and (number is None or r["licence_no"] == number)]
        return {"total": len(rows), "rows": rows}


def _plain_brackets(number: str) -> str:
    # Case numbers are written with full-width brackets as often as with plain ones.
    return number.replace("（", "(").replace("）", ")")


__all__ = ["FinanceEndpoint", "HealthEndpoint", "JusticeEndpoint", "PublicSectorEndpoint"]
