"""One-stop payment (flow h, guide §二(一)5) through the real engine, against the
sandbox's finance platform (统一公共支付平台).

The hub runs config.yaml with transfers (200) configured to be paid before they
are forwarded (``HUB_PAYMENT_REQUIRED_TYPES=200``). Each test submits a
tax-related transfer as the county window would; the sandbox's tax bureau clears
it, the hub asks the payment platform for an order, and the test plays the
applicant paying (``PaymentEndpoint.pay``), whose notification the platform posts
to the hub, signed.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import requests

NOTIFY_PATH = "/api/v1/inbound/payment/notifications"


@pytest.fixture
def paid_flows(clean_sandbox: Any, tmp_path: Any):
    from .conftest import _flows

    platform = clean_sandbox.endpoint("payment")
    platform.auto_pay = None  # the applicant pays when the test says so
    yield from _flows(clean_sandbox, tmp_path, env={"HUB_PAYMENT_REQUIRED_TYPES": "200"})


def _of(no: str):
    return lambda body: isinstance(body, dict) and (body.get("YWH") == no
                                                    or body.get("business_no") == no)


def _awaiting_payment(flows, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Submit ``body`` and wait until its order exists and the case waits for payment."""
    no = body["business_no"]
    flows.submit("county_window", body)
    order = flows.wait(lambda: flows.sb.endpoint("payment").order_of(no), what="payment order")
    flows.wait(lambda: _waiting_for_payment(flows, no), what="the await for payment.confirmed")
    return no, order


def _waiting_for_payment(flows, no: str) -> bool:
    waiting = flows.hub.store.waiting_correlations(flows.hub.tenant, no)
    return any("payment.confirmed" in (json.loads(w["types"]) if isinstance(w["types"], str)
                                       else w["types"]) for w in waiting)


def _submitted(flows, no: str) -> list[dict[str, Any]]:
    return flows.received("legacy", operation="SubmitApplication", where=_of(no))


def _refusals(flows) -> list[dict[str, Any]]:
    return [r["fields"] for r in flows.hub.audit_log().records()
            if r["event"] == "inbound.rejected" and r["fields"].get("endpoint") == NOTIFY_PATH]


def _nothing_marked_paid(flows, no: str) -> None:
    """The case still waits for its payment: nothing confirmed, recorded or forwarded."""
    assert _waiting_for_payment(flows, no)
    assert "payment" not in {r["kind"] for r in flows.hub.store.verifications_for(no)}
    assert not [h for h in flows.trace(no) if h["route"] == "payment_notification"
                and h["outcome"] == "ok" and h["step"].endswith(":publish")]
    assert not _submitted(flows, no)


def _progress(flows, no: str) -> dict[str, Any]:
    from bdchub.web.signing import signed_headers

    c = flows.config["inbound"]["clients"]["county_window"]
    path = f"/api/v1/progress/{no}"
    resp = requests.get(flows.service.url + path, timeout=30,
                        headers=signed_headers(c["app_key"], c["app_secret"], "GET", path, b""))
    assert resp.status_code == 200, resp.text
    return resp.json()["progress"][0]


def test_paid_transfer_reaches_the_registration_system_only_after_payment(paid_flows):
    flows = paid_flows
    no, order = _awaiting_payment(flows, copy.deepcopy(flows.samples["transfer"]))

    # One bill: the registration fee, the certificate of the second owner, and the tax
    # the tax bureau cleared, listed with its voucher and not collected again.
    assert [i["code"] for i in order["items"]] == ["registration_fee", "certificate_fee", "tax"]
    assert order["items"][2]["voucher_no"].startswith("WS")
    assert order["total"] == "90.00"
    assert order["payer"]["id_number"] == flows.samples["transfer"]["applicants"][0]["id_number"]
    notice = flows.wait(lambda: flows.received(
        "window_county", path="/notices",
        where=lambda b: b.get("business_no") == no and b.get("notice_type") == "payment.ordered"),
        what="payment notice")[0]["body"]
    assert (notice["pay_url"], notice["pay_code"], notice["total"]) == (
        order["pay_url"], order["pay_code"], "90.00")

    # Tax cleared, order open: the registration system has heard nothing of the case.
    assert flows.received("tax", operation="ReceiveDeclaration", where=lambda b: b.get("BusinessNo") == no)
    assert not _submitted(flows, no)

    delivery = flows.sb.endpoint("payment").pay(no)
    assert (delivery["status"], delivery["delivered"]) == (200, True)
    assert delivery["payload"]["amount"] == "90.00"
    flows.wait(lambda: _submitted(flows, no), what="SubmitApplication after payment")
    assert [h for h in flows.trace(no) if h["route"] == "payment_notification"
            and h["step"].endswith(":publish")]  # what the refusal tests look for

    records = {r["kind"]: r["result"] for r in flows.hub.store.verifications_for(no)}
    assert records["payment_order"]["order_no"] == order["order_no"]
    assert records["payment"]["order_no"] == order["order_no"]
    assert records["payment"]["total"] == "90.00" and records["payment"]["receipt_no"]
    history = _progress(flows, no)["history"]
    assert {"type": "payment.notified", "route": "payment_notification",
            "outcome": "ok"}.items() <= next(
        h for h in history if h["route"] == "payment_notification").items()


def test_a_payment_notice_with_a_bad_signature_is_refused_audited_and_marks_nothing(paid_flows):
    flows = paid_flows
    no, _order = _awaiting_payment(flows, copy.deepcopy(flows.samples["transfer"]))
    platform = flows.sb.endpoint("payment")

    delivery = platform.pay(no, bad_signature=True)
    assert (delivery["status"], delivery["delivered"]) == (401, False)
    refused = _refusals(flows)
    assert refused and refused[-1]["code"] == "bad_signature"
    assert refused[-1]["client"] == "payment"
    _nothing_marked_paid(flows, no)

    # The case kept waiting: the platform's genuine notice still goes through.
    assert platform.pay(no)["status"] == 200
    flows.wait(lambda: _submitted(flows, no), what="SubmitApplication after the genuine notice")


def test_a_payment_notice_whose_amount_differs_from_the_order_is_refused_and_marks_nothing(
        paid_flows):
    flows = paid_flows
    no, order = _awaiting_payment(flows, copy.deepcopy(flows.samples["transfer"]))
    platform = flows.sb.endpoint("payment")

    delivery = platform.pay(no, amount="1.00")  # the notice says 1 yuan; the order is 90
    assert (delivery["status"], delivery["delivered"]) == (422, False)
    refused = _refusals(flows)
    assert refused and refused[-1]["code"] == "schema_violation"
    assert refused[-1]["violations"] == ["$.amount_matches"]
    assert refused[-1]["business_no"] == no and refused[-1]["client"] == "payment"
    _nothing_marked_paid(flows, no)

    assert platform.pay(no)["status"] == 200
    flows.wait(lambda: _submitted(flows, no), what="SubmitApplication after the genuine notice")
    records = {r["kind"]: r["result"] for r in flows.hub.store.verifications_for(no)}
    assert records["payment"]["order_no"] == order["order_no"]
