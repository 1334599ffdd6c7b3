"""``payment`` — the finance department's unified public payment platform
(财政统一公共支付平台): one bill of registration fees and taxes, paid online.

The hub (app-key HMAC, ``credentials``) asks for a payment order (缴款单) and
checks it; the citizen pays on the order's page; the platform then POSTs a
notification of the payment to the ``notify_url`` the order was created with,
signed with the platform's push key (app-key scheme, ``credentials``'
``push_app_key`` / ``push_app_secret``), as every payment platform does.

- ``POST /api/payment/orders {business_no, payer: {name, id_type?, id_number},
  items: [{code, name, unit_price, quantity?=1, voucher_no?}], notify_url?}`` →
  the order: ``{order_no, business_no, items (each with its amount), total,
  prepaid, pay_url, pay_code, pay_state: unpaid, expires_at, duplicate}``. An
  item with a ``voucher_no`` was paid elsewhere (a tax paid at the tax bureau):
  listed, counted in ``prepaid``, not in ``total``. The same business number
  with the same items is the same order (``duplicate: true``); other items
  while it is unpaid: 409 ``ORDER_CONFLICT``; nothing left to pay: 400
  ``NOTHING_TO_PAY``.
- ``GET /api/payment/orders/{order_no}`` → the order with ``pay_state``
  (``unpaid`` | ``paid``), ``paid_amount``, ``paid_at``, ``trade_no``; 404
  ``ORDER_NOT_FOUND``.
- ``GET /api/payment/orders/{order_no}/receipt`` → the electronic receipt
  (非税收入电子票据) of a paid order: ``{receipt_no, check_code, order_no,
  business_no, payer, items, total, paid_at, issuer}``; 409 ``NOT_PAID`` before.
- ``GET /pay/{order_no}`` (the citizen's page, no auth): the bill as HTML;
  ``POST /pay/{order_no}``: pays it in full and notifies.

Notification JSON: ``{business_no, order_no, amount, paid_at, trade_no,
pay_channel, pay_state: "paid"}``, retried like the sandbox's other pushes.
``pay(ref, amount=…, bad_signature=True, channel=…)`` (also ``POST
/_sandbox/pay {order_no | business_no, amount?, bad_signature?}``) pays an
order and sends its notification again when it is paid already; ``amount``
changes only what the notification says (a notice altered on its way), and
``bad_signature`` signs it with a wrong secret. ``auto_pay`` (seconds, or None:
paid only by hand; ``POST /_sandbox/auto-pay {interval}``) has every new
order paid that long after it was created. The generic fault knobs apply to
the hub's calls.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import random
import threading
from decimal import Decimal, InvalidOperation
from typing import Any

from bdchub.core.i18n import _

from ..rest import AppKeyAuth, RestEndpoint, require, route
from ..server import HttpError, Request, Response

CENT = Decimal("0.01")


def payment_credentials(seed: int) -> dict[str, str]:
    """The platform's app key for the hub's calls and its push key for notifications,
    from a random stream of their own (the other departments' seeded values stay)."""
    rng = random.Random(f"bdc-sandbox:{seed}:payment")

    def hexsecret(n: int) -> str:
        return "".join(rng.choice("0123456789abcdef") for _ in range(n))

    return {"app_key": f"ak-pay-{hexsecret(12)}", "app_secret": hexsecret(40),
            "push_app_key": f"ak-paypush-{hexsecret(8)}", "push_app_secret": hexsecret(40)}


def _money(value: Any, name: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise HttpError(400, "BAD_AMOUNT", _("{name} must be a number", name=name)) from None
    if not number.is_finite() or number < 0 or number != number.quantize(CENT):
        raise HttpError(400, "BAD_AMOUNT", _("{name} must be a number", name=name))
    return number.quantize(CENT)


def _now() -> dt.datetime:
    return dt.datetime.now().astimezone().replace(microsecond=0)


class PaymentEndpoint(RestEndpoint):
    protocol = "REST/JSON + app-key HMAC"

    def __init__(self, sandbox: Any, name: str):
        super().__init__(sandbox, name)
        self.credentials = payment_credentials(sandbox.seed)
        self.auth = AppKeyAuth(self.credentials["app_key"], self.credentials["app_secret"])
        self.orders: dict[str, dict[str, Any]] = {}
        self.by_business: dict[str, str] = {}
        self.auto_pay: float | None = None
        self._seq = 0
        self._pay_lock = threading.Lock()

    def authenticate(self, req: Request) -> None:
        self.auth.check(req)

    # -- the hub's calls
    @route("POST", "/api/payment/orders", "order.create")
    def create_order(self, req: Request) -> Any:
        body = req.json_object()
        require(body, "business_no", "payer", "items")
        payer = body["payer"]
        if not isinstance(payer, dict):
            raise HttpError(400, "BAD_PAYER", _("payer must be an object with name and id_number"))
        require(payer, "name", "id_number")
        items = self._items(body["items"])
        total = sum((i["amount"] for i in items if not i.get("voucher_no")), Decimal("0.00"))
        if total <= 0:
            raise HttpError(400, "NOTHING_TO_PAY", _("the order has nothing left to pay"))
        business_no = str(body["business_no"])
        content = {"payer": {k: payer.get(k) for k in ("name", "id_type", "id_number")},
                   "items": [{k: str(v) for k, v in i.items()} for i in items]}
        with self.lock:
            existing = self.by_business.get(business_no)
            if existing is not None:
                order = self.orders[existing]
                if order["content"] == content:
                    return {**self._view(order), "duplicate": True}
                if order["pay_state"] == "unpaid":
                    raise HttpError(409, "ORDER_CONFLICT",
                                    _("business {business_no} has an unpaid order {order_no} "
                                      "with other items", business_no=business_no,
                                      order_no=existing))
            self._seq += 1
            county = self.sandbox.data["county"]["code"]
            order_no = f"JK{county}{self.sandbox.seed % 100:02d}{self._seq:08d}"
            digest = hashlib.sha256(f"{self.sandbox.seed}:{order_no}".encode()).hexdigest()
            created = _now()
            order = {"order_no": order_no, "business_no": business_no, "content": content,
                     "payer": content["payer"], "items": items, "total": total,
                     "prepaid": sum((i["amount"] for i in items if i.get("voucher_no")),
                                    Decimal("0.00")),
                     "pay_code": str(int(digest[:16], 16))[:20].rjust(20, "0"),
                     "notify_url": body.get("notify_url") or None,
                     "created_at": created.isoformat(),
                     "expires_at": (created + dt.timedelta(days=7)).isoformat(),
                     "pay_state": "unpaid", "paid_amount": None, "paid_at": None,
                     "trade_no": None, "pay_channel": None, "receipt_no": None}
            self.orders[order_no] = order
            self.by_business[business_no] = order_no
            view = self._view(order)
        if self.auto_pay is not None:
            self.sandbox.scheduler.call_later(float(self.auto_pay),
                                              lambda: self.pay(order_no, wait=False))
        return {**view, "duplicate": False}

    def _items(self, raw: Any) -> list[dict[str, Any]]:
        if not isinstance(raw, list) or not raw:
            raise HttpError(400, "MISSING_FIELD", _("missing required field(s): {names}",
                                                     names="items"))
        items = []
        for item in raw:
            if not isinstance(item, dict):
                raise HttpError(400, "BAD_ITEM", _("each item must be an object"))
            require(item, "code", "name", "unit_price")
            price = _money(item["unit_price"], "unit_price")
            try:
                quantity = int(item.get("quantity", 1))
            except (TypeError, ValueError):
                raise HttpError(400, "BAD_ITEM", _("{name} must be a number",
                                                   name="quantity")) from None
            if quantity < 1:
                raise HttpError(400, "BAD_ITEM", _("{name} must be a number", name="quantity"))
            entry: dict[str, Any] = {"code": str(item["code"]), "name": str(item["name"]),
                                     "unit_price": price, "quantity": quantity,
                                     "amount": (price * quantity).quantize(CENT)}
            if item.get("voucher_no"):
                entry["voucher_no"] = str(item["voucher_no"])
            items.append(entry)
        return items

    @route("GET", r"/api/payment/orders/(?P<order_no>[^/]+)", "order.query")
    def query_order(self, req: Request, order_no: str) -> Any:
        with self.lock:
            return self._view(self._order(order_no))

    @route("GET", r"/api/payment/orders/(?P<order_no>[^/]+)/receipt", "order.receipt")
    def receipt(self, req: Request, order_no: str) -> Any:
        with self.lock:
            order = self._order(order_no)
            if order["pay_state"] != "paid":
                raise HttpError(409, "NOT_PAID", _("order {order_no} is not paid",
                                                   order_no=order_no))
            view = self._view(order)
        check = hashlib.sha256(f"{order['receipt_no']}:{view['total']}".encode()).hexdigest()
        return {"receipt_no": order["receipt_no"], "check_code": check[:8].upper(),
                "order_no": order_no, "business_no": view["business_no"],
                "payer": view["payer"], "items": view["items"], "total": view["total"],
                "paid_at": view["paid_at"],
                "issuer": f"{self.sandbox.data['county']['name']}财政局"}

    # -- the citizen's page
    @route("GET", r"/pay/(?P<order_no>[^/]+)", "pay.page", auth=False)
    def pay_page(self, req: Request, order_no: str) -> Response:
        with self.lock:
            view = self._view(self._order(order_no))
        rows = "".join(f"<tr><td>{html.escape(i['name'])}</td><td>{i['amount']}</td></tr>"
                       for i in view["items"])
        page = (f"<!doctype html><meta charset=utf-8><title>缴款单 {html.escape(order_no)}</title>"
                f"<h1>缴款单 {html.escape(order_no)}</h1><p>业务号 "
                f"{html.escape(view['business_no'])}</p><table>{rows}</table>"
                f"<p>应缴 {view['total']} 元，缴款码 {view['pay_code']}，状态 "
                f"{view['pay_state']}</p><form method=post><button>支付</button></form>")
        return Response(status=200, body=page.encode(), content_type="text/html; charset=utf-8")

    @route("POST", r"/pay/(?P<order_no>[^/]+)", "pay.submit", auth=False)
    def pay_submit(self, req: Request, order_no: str) -> Any:
        with self.lock:
            self._order(order_no)
        self.pay(order_no, wait=False)
        with self.lock:
            return {"order_no": order_no, "pay_state": self.orders[order_no]["pay_state"]}

    # -- paying and notifying
    def pay(self, ref: str, *, amount: str | None = None, bad_signature: bool = False,
            channel: str = "wechat", wait: bool = True) -> dict[str, Any] | None:
        """Pay order ``ref`` (an order or business number) in full, then POST its
        notification to the order's ``notify_url``; with ``wait`` return the
        delivery (``{"url", "status", "delivered", "payload", …}``)."""
        with self._pay_lock, self.lock:
            order_no = ref if ref in self.orders else self.by_business.get(ref)
            if order_no is None:
                raise KeyError(_("no payment order {ref}", ref=ref))
            order = self.orders[order_no]
            if order["pay_state"] != "paid":
                self._seq += 1
                paid = _now()
                order.update(pay_state="paid", paid_amount=order["total"],
                             paid_at=paid.isoformat(), pay_channel=channel,
                             trade_no=f"{paid:%Y%m%d}{self._seq:012d}",
                             receipt_no=f"PJ{self.sandbox.data['county']['code']}{self._seq:010d}")
            payload = {"business_no": order["business_no"], "order_no": order_no,
                       "amount": str(order["paid_amount"] if amount is None
                                     else _money(amount, "amount")),
                       "paid_at": order["paid_at"], "trade_no": order["trade_no"],
                       "pay_channel": order["pay_channel"], "pay_state": "paid"}
            url = order["notify_url"]
        if not url:
            return None
        secret = self.credentials["push_app_secret"]
        if bad_signature:
            secret = hashlib.sha256(secret.encode()).hexdigest()[:40]
        return self.sandbox.pusher.push(url, payload, source="payment",
                                        signer=(self.credentials["push_app_key"], secret),
                                        wait=wait)

    def paid(self, ref: str) -> bool:
        with self.lock:
            order_no = ref if ref in self.orders else self.by_business.get(ref)
            return bool(order_no) and self.orders[order_no]["pay_state"] == "paid"

    def order_of(self, business_no: str) -> dict[str, Any] | None:
        """The order of ``business_no`` as the hub sees it (None when there is none)."""
        with self.lock:
            order_no = self.by_business.get(business_no)
            return self._view(self.orders[order_no]) if order_no else None

    def control(self, action: str, req: Request) -> Response | None:
        if action == "pay":
            body = req.json_object()
            ref = body.get("order_no") or body.get("business_no")
            if not ref:
                raise HttpError(400, "MISSING_FIELD", _("missing required field(s): {names}",
                                                         names="order_no | business_no"))
            try:
                entry = self.pay(str(ref), amount=body.get("amount"),
                                 bad_signature=bool(body.get("bad_signature")))
            except KeyError as exc:
                raise HttpError(404, "ORDER_NOT_FOUND", str(exc.args[0])) from None
            return Response.json(entry)
        if action == "auto-pay":
            body = req.json_object()
            try:
                interval = body.get("interval")
                self.auto_pay = None if interval in (None, "", 0) else float(interval)
            except (TypeError, ValueError):
                raise HttpError(400, "BAD_INTERVAL",
                                _("interval must be a number of seconds")) from None
            return Response.json({"auto_pay": self.auto_pay})
        return None

    # -- helpers (the caller holds the lock)
    def _order(self, order_no: str) -> dict[str, Any]:
        order = self.orders.get(order_no)
        if order is None:
            raise HttpError(404, "ORDER_NOT_FOUND", _("no payment order {ref}", ref=order_no))
        return order

    def _view(self, order: dict[str, Any]) -> dict[str, Any]:
        return {"order_no": order["order_no"], "business_no": order["business_no"],
                "payer": dict(order["payer"]),
                "items": [{**i, "unit_price": str(i["unit_price"]), "amount": str(i["amount"])}
                          for i in order["items"]],
                "total": str(order["total"]), "prepaid": str(order["prepaid"]),
                "pay_url": f"{self.url}/pay/{order['order_no']}", "pay_code": order["pay_code"],
                "pay_state": order["pay_state"],
                "paid_amount": None if order["paid_amount"] is None else str(order["paid_amount"]),
                "paid_at": order["paid_at"], "trade_no": order["trade_no"],
                "pay_channel": order["pay_channel"], "created_at": order["created_at"],
                "expires_at": order["expires_at"]}


__all__ = ["PaymentEndpoint", "payment_credentials"]
