"""``court`` — court orders (SOAP 1.1, WS-Security UsernameToken).

The hub polls: ``PullJudgments(Cursor, MaxItems)`` returns orders (judgments,
seizures, releases) with ``Sequence > Cursor`` in sequence order, plus
``NextCursor`` (pass it back next time; empty/absent Cursor = from the start)
and ``HasMore``. ``Ack(OrderId...)`` records that the hub has them; acking is
bookkeeping only (pulls are by cursor), ``Sandbox.court_acked()`` lists them.
Tests inject orders with ``Sandbox.court_add_seizure`` /
``court_add_judgment`` (or ``POST {url}/_sandbox/orders``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from bdchub.core.i18n import _

from ..data import valid_unit_code
from ..server import HttpError, Request, Response
from ..soap import SoapEndpoint, SoapFault, UsernameTokenCheck, as_list, now_iso, require

COURT_NS = "urn:bdc-hub:sandbox:court:v1"
ORDER_FIELDS = ("OrderId", "Sequence", "Kind", "CourtCode", "CourtName", "CaseNo", "UnitCode",
                "RespondentName", "RespondentIdNumber", "PeriodFrom", "PeriodTo", "Summary",
                "IssuedAt")


class CourtEndpoint(SoapEndpoint):
    protocol = "SOAP 1.1 + WS-Security UsernameToken"
    namespace = COURT_NS
    wsdl_file = "court.wsdl"
    xsd_files = ("court.xsd",)

    def __init__(self, sandbox: Any, name: str):
        super().__init__(sandbox, name)
        creds = sandbox.data["secrets"]["court"]
        self.auth = UsernameTokenCheck(creds["username"], creds["password"])
        self.orders: list[dict[str, Any]] = []
        self.acked: list[str] = []
        self._case_seq = 0
        for order in sandbox.data["court_orders"]:
            self.add_order(**order)

    def operations(self) -> dict[str, Any]:
        return {"PullJudgments": self.pull, "Ack": self.ack}

    def add_order(self, Kind: str, UnitCode: str, **fields: Any) -> dict[str, Any]:  # noqa: N803
        if Kind not in ("SEIZURE", "UNSEIZURE", "JUDGMENT"):
            raise ValueError(_("unknown court order kind {value}", value=Kind))
        if not valid_unit_code(UnitCode):
            raise ValueError(_("{value} is not a valid unit code", value=UnitCode))
        county = self.sandbox.data["county"]
        with self.lock:
            seq = len(self.orders) + 1
            self._case_seq += 1
            year = dt.date.today().year
            today = dt.date.today()
            order = {
                "OrderId": f"FY{county['code']}{seq:06d}", "Sequence": seq, "Kind": Kind,
                "CourtCode": fields.get("CourtCode") or f"F{county['code']}",
                "CourtName": fields.get("CourtName") or f"{county['name']}人民法院",
                "CaseNo": fields.get("CaseNo") or
                f"({year}){county['province_abbr']}{county['code'][2:]}"
                f"{'执' if Kind != 'JUDGMENT' else '民初'}{1000 + self._case_seq}号",
                "UnitCode": UnitCode,
                "RespondentName": fields.get("RespondentName"),
                "RespondentIdNumber": fields.get("RespondentIdNumber"),
                "PeriodFrom": fields.get("PeriodFrom") or
                (today.isoformat() if Kind == "SEIZURE" else None),
                "PeriodTo": fields.get("PeriodTo") or
                (today.replace(year=today.year + 3).isoformat() if Kind == "SEIZURE" else None),
                "Summary": fields.get("Summary"),
                "IssuedAt": fields.get("IssuedAt") or now_iso(),
            }
            self.orders.append(order)
            return dict(order)

    def pull(self, body: dict[str, Any], header: Any) -> dict[str, Any]:
        raw = str(body.get("Cursor") or "0").strip()
        try:
            cursor = int(raw)
        except ValueError:
            raise SoapFault("Client", _("bad cursor {value}", value=raw), "BAD_CURSOR") from None
        try:
            limit = int(body.get("MaxItems") or 50)
        except ValueError:
            raise SoapFault("Client", _("MaxItems must be an integer"), "BAD_LIMIT") from None
        limit = max(1, min(limit, 500))
        with self.lock:
            pending = [o for o in self.orders if o["Sequence"] > cursor]
        page = pending[:limit]
        next_cursor = page[-1]["Sequence"] if page else cursor
        return {"Order": [{k: o[k] for k in ORDER_FIELDS} for o in page],
                "NextCursor": str(next_cursor), "HasMore": len(pending) > len(page)}

    def ack(self, body: dict[str, Any], header: Any) -> dict[str, Any]:
        require(body, "OrderId")
        ids = [str(i) for i in as_list(body["OrderId"])]
        with self.lock:
            known = {o["OrderId"] for o in self.orders}
            good = [i for i in ids if i in known]
            for i in good:
                if i not in self.acked:
                    self.acked.append(i)
        return {"Acknowledged": len(good), "Unknown": [i for i in ids if i not in known]}

    def control(self, action: str, req: Request) -> Response | None:
        if action == "orders":
            body = req.json_object()
            try:
                order = self.add_order(**{k: v for k, v in body.items() if k in ORDER_FIELDS})
            except (TypeError, ValueError) as exc:
                raise HttpError(400, "BAD_ORDER", str(exc)) from None
            return Response.json(order, 201)
        return None
