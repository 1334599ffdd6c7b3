"""``tax`` — tax bureau sharing service (SOAP 1.1, WS-Security UsernameToken).

- ``ReceiveDeclaration``: the registration data of the 2022 circular; answers
  a ``DeclarationNo`` (the same one again, ``Duplicate=true``, for a business
  number already declared).
- ``QueryClearance(BusinessNo)``: ``NOT_DECLARED`` before a declaration,
  ``PENDING`` until ``tax_clearance_delay`` seconds (default 2) after it,
  then ``CLEARED`` with ``TaxAmount`` (3 % deed tax on Price), ``VoucherNo``
  and ``ClearedAt``. ``Sandbox.push_tax_clearance`` clears at once.
- Push: with a callback set (``Sandbox.tax_set_callback(url)`` or
  ``POST {url}/_sandbox/callback {"url": ...}``) the bureau POSTs the
  clearance JSON to it when a declaration clears; ``push_tax_clearance``
  does the same to a given URL. See ``clearance_payload`` for the JSON.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any

from bdchub.core.i18n import _

from ..data import valid_resident_id, valid_unit_code, valid_uscc
from ..server import HttpError, Request, Response
from ..soap import SoapEndpoint, SoapFault, UsernameTokenCheck, as_list, now_iso, require

TAX_NS = "urn:bdc-hub:sandbox:tax:v1"
REG_TYPES = {"100", "200", "300", "400", "500", "600", "700", "800", "900"}


def decimal(value: Any, name: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise SoapFault("Client", _("{name} must be a number", name=name), "BAD_NUMBER") from None
    if not number.is_finite() or number < 0:
        raise SoapFault("Client", _("{name} must be a number", name=name), "BAD_NUMBER")
    return number


def check_party_id(id_type: str, number: str) -> None:
    if id_type in ("", "1") and not valid_resident_id(number):
        raise SoapFault("Client", _("{value} is not a valid resident ID number", value=number),
                        "INVALID_ID_NUMBER")
    if id_type == "8" and not valid_uscc(number):
        raise SoapFault("Client", _("{value} is not a valid unified social credit code",
                                    value=number), "INVALID_ID_NUMBER")


class TaxEndpoint(SoapEndpoint):
    protocol = "SOAP 1.1 + WS-Security UsernameToken"
    namespace = TAX_NS
    wsdl_file = "tax.wsdl"
    xsd_files = ("tax.xsd",)

    def __init__(self, sandbox: Any, name: str):
        super().__init__(sandbox, name)
        creds = sandbox.data["secrets"]["tax"]
        self.auth = UsernameTokenCheck(creds["username"], creds["password"])
        self.declarations: dict[str, dict[str, Any]] = {}
        self.callback_url: str | None = None
        self._seq = 0

    def operations(self) -> dict[str, Any]:
        return {"ReceiveDeclaration": self.receive_declaration,
                "QueryClearance": self.query_clearance}

    def receive_declaration(self, body: dict[str, Any], header: Any) -> dict[str, Any]:
        require(body, "BusinessNo", "RightsHolder", "UnitCode", "Location", "Area", "Price",
                "RightType", "RegistrationType", "RegistrationTime")
        holders = [h for h in as_list(body["RightsHolder"]) if isinstance(h, dict)]
        if not holders:
            raise SoapFault("Client", _("missing required element(s): {names}", names="RightsHolder"),
                            "MISSING_ELEMENT")
        for holder in holders:
            require(holder, "Name", "IdNumber")
            check_party_id(str(holder.get("IdType") or ""), str(holder["IdNumber"]).upper())
        if not valid_unit_code(body["UnitCode"]):
            raise SoapFault("Client", _("{value} is not a valid unit code", value=body["UnitCode"]),
                            "INVALID_UNIT_CODE")
        if body["RegistrationType"] not in REG_TYPES:
            raise SoapFault("Client", _("unknown registration type {value}",
                                        value=body["RegistrationType"]), "INVALID_REG_TYPE")
        decimal(body["Area"], "Area")
        price = decimal(body["Price"], "Price")
        business_no = str(body["BusinessNo"])
        with self.lock:
            existing = self.declarations.get(business_no)
            if existing is not None:
                return {"Accepted": True, "BusinessNo": business_no,
                        "DeclarationNo": existing["declaration_no"], "Duplicate": True,
                        "Message": "重复申报，已忽略"}
            self._seq += 1
            county = self.sandbox.data["county"]["code"]
            record = {"business_no": business_no,
                      "declaration_no": f"SB{county}{self._seq:08d}",
                      "declared_at": dt.datetime.now().timestamp(),
                      "tax_amount": (price * Decimal("0.03")).quantize(Decimal("0.01")),
                      "cleared_at": None, "voucher_no": None, "body": body}
            self.declarations[business_no] = record
        delay = float(self.sandbox.options["tax_clearance_delay"])
        self.sandbox.scheduler.call_later(delay, lambda: self._auto_clear(business_no))
        return {"Accepted": True, "BusinessNo": business_no,
                "DeclarationNo": record["declaration_no"], "Duplicate": False,
                "Message": "申报已受理"}

    def _clear(self, record: dict[str, Any], when: float | None = None) -> bool:
        """Mark cleared; True when it was not cleared before. Caller holds the lock."""
        if record["cleared_at"] is not None:
            return False
        record["cleared_at"] = when if when is not None else dt.datetime.now().timestamp()
        county = self.sandbox.data["county"]["code"]
        record["voucher_no"] = f"WS{county}{record['declaration_no'][-8:]}"
        return True

    def _refresh(self, record: dict[str, Any]) -> None:
        delay = float(self.sandbox.options["tax_clearance_delay"])
        if record["cleared_at"] is None and \
                dt.datetime.now().timestamp() >= record["declared_at"] + delay:
            self._clear(record, record["declared_at"] + delay)

    def _auto_clear(self, business_no: str) -> None:
        with self.lock:
            record = self.declarations.get(business_no)
            if record is None:
                return
            self._refresh(record)
            url = self.callback_url
            payload = self.clearance_payload(record) if record["cleared_at"] else None
            already = record.get("pushed")
            if payload and url:
                record["pushed"] = True
        if payload and url and not already:
            self.sandbox.pusher.push(url, payload, source="tax", signer=self._signer())

    def _signer(self) -> tuple[str, str]:
        creds = self.sandbox.data["secrets"]["tax"]
        return creds["push_app_key"], creds["push_app_secret"]

    def clearance_payload(self, record: dict[str, Any]) -> dict[str, Any]:
        cleared = dt.datetime.fromtimestamp(record["cleared_at"]).astimezone()
        return {"business_no": record["business_no"], "status": "CLEARED",
                "declaration_no": record["declaration_no"], "voucher_no": record["voucher_no"],
                "tax_amount": str(record["tax_amount"]),
                "cleared_at": cleared.replace(microsecond=0).isoformat(), "source": "tax"}

    def query_clearance(self, body: dict[str, Any], header: Any) -> dict[str, Any]:
        require(body, "BusinessNo")
        business_no = str(body["BusinessNo"])
        with self.lock:
            record = self.declarations.get(business_no)
            if record is None:
                return {"BusinessNo": business_no, "Status": "NOT_DECLARED"}
            self._refresh(record)
            if record["cleared_at"] is None:
                return {"BusinessNo": business_no, "Status": "PENDING",
                        "DeclarationNo": record["declaration_no"]}
            payload = self.clearance_payload(record)
        return {"BusinessNo": business_no, "Status": "CLEARED",
                "DeclarationNo": payload["declaration_no"], "TaxAmount": payload["tax_amount"],
                "VoucherNo": payload["voucher_no"], "ClearedAt": payload["cleared_at"]}

    def push_clearance(self, business_no: str, target_url: str | None,
                       wait: bool = True) -> dict[str, Any] | None:
        url = target_url or self.callback_url
        if not url:
            raise ValueError(_("no target URL and no tax callback configured"))
        with self.lock:
            record = self.declarations.get(business_no)
            if record is None:
                self._seq += 1
                county = self.sandbox.data["county"]["code"]
                record = {"business_no": business_no, "declaration_no": f"SB{county}{self._seq:08d}",
                          "declared_at": dt.datetime.now().timestamp(), "tax_amount": Decimal("0.00"),
                          "cleared_at": None, "voucher_no": None, "body": None}
                self.declarations[business_no] = record
            self._clear(record)
            record["pushed"] = True
            payload = self.clearance_payload(record)
        return self.sandbox.pusher.push(url, payload, source="tax", signer=self._signer(), wait=wait)

    def control(self, action: str, req: Request) -> Response | None:
        if action == "callback":
            body = req.json_object()
            self.callback_url = body.get("url") or None
            return Response.json({"callback_url": self.callback_url})
        if action == "push-clearance":
            body = req.json_object()
            if not body.get("business_no"):
                raise HttpError(400, "MISSING_FIELD", _("missing required field(s): {names}",
                                                         names="business_no"))
            try:
                entry = self.push_clearance(str(body["business_no"]), body.get("target_url"))
            except ValueError as exc:
                raise HttpError(400, "NO_TARGET", str(exc)) from None
            return Response.json(entry)
        return None


__all__ = ["TAX_NS", "TaxEndpoint", "now_iso"]
