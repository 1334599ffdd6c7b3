"""A second vendor's registration system on loopback (``data/djxt.wsdl``).

Its operations, field names and stage codes are none of the sandbox's legacy
system: the profile tests and docs/registration-system.md wire the hub to it
by changing the ``legacy`` connector's block only. Every reply carries
SuccessFlag / ResponseCode / ResponseInfo; a case on a unit in
``refused_units`` is refused with SuccessFlag 0 and the system's own words.
Stage changes are kept with a sequence number (``Seq``) and, when a callback
is set, POSTed to it as JSON in the vendor's own field names, signed like any
inbound client.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from lxml import etree

from bdchub.sandbox.soap import (
    SoapFault,
    as_list,
    build,
    envelope,
    fault_body,
    parse_envelope,
    to_dict,
)

from .loopback import Department

NS = "urn:example:djxt:v3"
WSDL = Path(__file__).resolve().parent / "data" / "djxt.wsdl"
STATUS_NAMES = {"SQ": "申请", "SL": "受理", "SH": "审核", "DB": "登簿", "SZ": "缮证", "GD": "归档",
                "BSL": "不予受理", "BZ": "补正", "BYDJ": "不予登记"}
REFUSED = "该不动产单元已被查封，不能受理"
#: The order of a Change's elements in the XSD (zeep reads replies strictly).
CHANGE_FIELDS = ("Seq", "CaseNo", "StatusCode", "StatusName", "ChangedAt", "Reason", "Missing",
                 "CertNo", "UnitNo", "RegType", "RightType")


class Djxt(Department):
    """The system: cases, their changes, what it received, and its HTTP server
    (the loopback department's, answering this vendor's WSDL and SOAP)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.lock = threading.Lock()
        self.cases: dict[str, dict[str, Any]] = {}
        self.changes: list[dict[str, Any]] = []
        self.answers: dict[tuple[str, str], bytes] = {}
        self.refused_units: set[str] = set()
        self.callback: tuple[str, str, str] | None = None  # url, app key, app secret
        self.outbox: list[dict[str, Any]] = []  # changes to push once the lock is released

    @property
    def url(self) -> str:
        return super().url + "/djxt"

    def _route(self, h: Any, method: str, path: str, body: bytes) -> tuple[int, dict, bytes]:
        if method != "POST":
            text = WSDL.read_text(encoding="utf-8").replace("http://127.0.0.1:9/djxt", self.url)
            return 200, {"Content-Type": "text/xml; charset=utf-8"}, text.encode()
        status, content = self.handle(body)
        return status, {"Content-Type": "text/xml; charset=utf-8"}, content

    # -- SOAP
    def handle(self, raw: bytes) -> tuple[int, bytes]:
        try:
            return self._soap_answer(raw)
        finally:
            self.flush()

    def _soap_answer(self, raw: bytes) -> tuple[int, bytes]:
        try:
            _version, header, payload = parse_envelope(raw)
            operation = etree.QName(payload).localname
            body = to_dict(payload)
            body = body if isinstance(body, dict) else {}
            key = header.findtext(f"{{{NS}}}RequestId") if header is not None else None
            with self.lock:
                self.received.append({"operation": operation, "body": body, "key": key})
                if key and (operation, key) in self.answers:
                    return 200, self.answers[(operation, key)]
                handler = getattr(self, "_" + operation, None)
                if handler is None:
                    raise SoapFault("Client", f"no operation {operation}", "NO_OPERATION")
                name, data = handler(body)
                element = etree.Element(f"{{{NS}}}{name}")
                build(element, NS, data)
                content = envelope(11, element, NS)
                if key:
                    self.answers[(operation, key)] = content
                return 200, content
        except SoapFault as fault:
            return 500, fault_body(11, fault.code, fault.message, fault.detail_code, NS)

    @staticmethod
    def _ok(**fields: Any) -> dict[str, Any]:
        return {"SuccessFlag": 1, "ResponseCode": "0000", "ResponseInfo": "成功", **fields}

    def _CreateCase(self, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:  # noqa: N802
        if body.get("UnitNo") in self.refused_units:
            return "CreateCaseResponse", {"SuccessFlag": 0, "ResponseCode": "E103",
                                          "ResponseInfo": REFUSED, "CaseNo": body.get("CaseNo")}
        case_no = str(body["CaseNo"])
        case = self.cases.setdefault(case_no, {"CaseNo": case_no, "StatusCode": "",
                                               "request": body, "trail": []})
        if not case["trail"]:
            self._change(case, "SQ")
        return "CreateCaseResponse", self._ok(CaseNo=case_no, StatusCode=case["StatusCode"])

    def _GetCaseStatus(self, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:  # noqa: N802
        case = self.cases.get(str(body.get("CaseNo")))
        if case is None:
            return "GetCaseStatusResponse", {"SuccessFlag": 0, "ResponseCode": "E404",
                                             "ResponseInfo": "无此案件"}
        return "GetCaseStatusResponse", self._ok(CaseNo=case["CaseNo"],
                                                 StatusCode=case["StatusCode"],
                                                 Trail=[_ordered(c) for c in case["trail"]])

    def _PostTaxResult(self, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:  # noqa: N802
        if str(body.get("CaseNo")) not in self.cases:
            return "Ack", {"SuccessFlag": 0, "ResponseCode": "E404",
                           "ResponseInfo": "无此案件，完税信息未接收"}
        return "Ack", self._ok(Affected=[body["CaseNo"]])

    def _PostReviewResult(self, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:  # noqa: N802
        if str(body.get("CaseNo")) not in self.cases:
            return "Ack", {"SuccessFlag": 0, "ResponseCode": "E404",
                           "ResponseInfo": "无此案件，审核结果未接收"}
        return "Ack", self._ok(Affected=[body["CaseNo"]])

    def _PostCorrection(self, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:  # noqa: N802
        if str(body.get("CaseNo")) not in self.cases:
            return "Ack", {"SuccessFlag": 0, "ResponseCode": "E404",
                           "ResponseInfo": "无此案件，补正材料未接收"}
        return "Ack", self._ok(Affected=[body["CaseNo"]])

    def _PostCourtOrder(self, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:  # noqa: N802
        affected = [c["CaseNo"] for c in self.cases.values()
                    if c["request"].get("UnitNo") == body.get("UnitNo")]
        return "Ack", self._ok(Affected=affected)

    def _ListChanges(self, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:  # noqa: N802
        after = int(body.get("AfterSeq") or 0)
        limit = int(body.get("MaxCount") or 100)
        pending = [c for c in self.changes if c["Seq"] > after]
        page = pending[:limit]
        return "ListChangesResponse", self._ok(
            Change=[_ordered(c) for c in page], LastSeq=page[-1]["Seq"] if page else after,
            HasMore=len(pending) > len(page))

    # -- the system's side
    def _change(self, case: dict[str, Any], code: str, reason: str | None = None,
                missing: list[str] | None = None, cert_no: str | None = None) -> dict[str, Any]:
        request = case["request"]
        change = {"Seq": len(self.changes) + 1, "CaseNo": case["CaseNo"], "StatusCode": code,
                  "StatusName": STATUS_NAMES[code],
                  "ChangedAt": dt.datetime.now().astimezone().replace(microsecond=0).isoformat(),
                  "Reason": reason, "Missing": list(missing or []), "CertNo": cert_no,
                  "UnitNo": request.get("UnitNo"), "RegType": request.get("RegType"),
                  "RightType": request.get("RightType")}
        case["StatusCode"] = code
        case["trail"].append(change)
        self.changes.append(change)
        self.outbox.append(change)
        return change

    def change(self, case_no: str, code: str, *, push: bool = True, **kwargs: Any) -> dict:
        """Move a case to ``code``; with a callback set (and ``push``), POST the change."""
        with self.lock:
            change = self._change(self.cases[case_no], code, **kwargs)
            if not push:
                self.outbox.remove(change)
        self.flush()
        return change

    def flush(self) -> None:
        """POST the changes not yet pushed, in order, when a callback is set."""
        with self.lock:
            pending, self.outbox = self.outbox, []
        if self.callback is not None:
            for change in pending:
                self.push(change)

    def push(self, change: dict[str, Any]) -> requests.Response:
        from bdchub.web.signing import signed_headers

        assert self.callback is not None
        url, app_key, app_secret = self.callback
        raw = json.dumps(change, ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json; charset=utf-8",
                   **signed_headers(app_key, app_secret, "POST", urlsplit(url).path, raw)}
        return requests.post(url, data=raw, headers=headers, timeout=10)

    def calls(self, operation: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.received if r["operation"] == operation]


def _ordered(change: dict[str, Any]) -> dict[str, Any]:
    return {k: change.get(k) if k != "Missing" else as_list(change.get(k))
            for k in CHANGE_FIELDS}


__all__ = ["NS", "REFUSED", "WSDL", "Djxt"]
