"""Federation between hubs (issue #14, item 3): the province and its county hubs talk
with one signed envelope; ids are kept end to end, a repeat is absorbed, a county
that is down parks only its own messages, refusals are audited with nothing kept,
and the county's hops reach the province's trace."""

from __future__ import annotations

import json

import pytest
import requests

from bdchub import connectors
from bdchub.connectors.base import CallContext
from bdchub.connectors.hub import ENVELOPES_PATH
from bdchub.core.envelope import new_id
from bdchub.core.errors import PermanentError
from bdchub.web.signing import signed_headers

from .conftest import (
    HAIMEN,
    PROVINCE_KEY,
    PROVINCE_SECRET,
    RUGAO,
    Federation,
    peer,
    wait,
)


def acks(rig: Federation, business_no: str) -> list[dict]:
    return [r for r in rig.province.hub.store.verifications_for(business_no)
            if r["kind"] == "county_ack"]


def test_a_message_the_province_dispatches_arrives_at_its_county_under_its_own_id(
        federation: Federation):
    sent = federation.dispatch(HAIMEN, "HM-TAX-0001")

    haimen = federation.counties[HAIMEN]
    assert wait(haimen.received, "the county's registration system to get it") == [sent.id]
    assert federation.counties[RUGAO].received() == []
    ack = wait(lambda: acks(federation, "HM-TAX-0001"), "the county's acknowledgement")
    assert ack[0]["connector"] == f"county_{HAIMEN}"
    assert ack[0]["result"]["id"] == sent.id
    assert ack[0]["result"]["hub"] == HAIMEN and ack[0]["result"]["status"] == "accepted"


def test_an_envelope_that_crosses_twice_is_handled_once_and_answered_the_same(
        federation: Federation):
    """The province's answer was lost and it sends again: the same acknowledgement."""
    county = federation.counties[HAIMEN]
    to_county = connectors.build("county", peer(county.url, PROVINCE_KEY, PROVINCE_SECRET))
    message_id = new_id()
    context = CallContext(message_id=message_id, tenant=HAIMEN, business_no="HM-TAX-0002",
                          idempotency_key=f"{message_id}:dispatch_tax_cleared:0")
    body = {"business_no": "HM-TAX-0002", "tax_status": "cleared"}

    first = to_county.call("tax.cleared", body, context)
    second = to_county.call("tax.cleared", body, context)

    assert first == second and first["id"] == message_id and first["status"] == "accepted"
    assert wait(county.received, "the message to be handled") == [message_id]
    assert len(county.audit("inbound.accepted")) == 1
    assert county.audit("inbound.replayed")[-1]["message_id"] == message_id
    to_county.close()


def test_the_same_message_crossing_again_later_is_absorbed_by_the_countys_routes(
        federation: Federation):
    """Sent again once the county's idempotency records are gone (or by a peer that
    sends no Idempotency-Key): it reaches the county's route, which runs it once."""
    county = federation.counties[HAIMEN]
    to_county = connectors.build("county", peer(county.url, PROVINCE_KEY, PROVINCE_SECRET))
    message_id = new_id()
    body = {"business_no": "HM-TAX-0006", "tax_status": "cleared"}
    to_county.call("tax.cleared", body, CallContext(
        message_id=message_id, tenant=HAIMEN, business_no="HM-TAX-0006"))
    wait(lambda: county.hub.store.outcome_of(message_id, "tax_cleared_from_province"),
         "the county's route to finish the message")
    to_county.close()

    envelope = {"id": message_id, "type": "tax.cleared", "tenant": HAIMEN,
                "business_no": "HM-TAX-0006", "headers": {}, "body": body}
    data = json.dumps(envelope).encode()
    again = requests.post(county.url + ENVELOPES_PATH, data=data, timeout=10, headers={
        "Content-Type": "application/json",
        **signed_headers(PROVINCE_KEY, PROVINCE_SECRET, "POST", ENVELOPES_PATH, data)})

    assert again.status_code == 202 and again.json()["id"] == message_id
    assert wait(lambda: county.absorbed.ids, "the county's route to absorb it") == [message_id]
    assert county.received() == [message_id]


def test_a_county_hub_that_is_down_parks_its_messages_only_and_they_complete_when_it_is_back(
        federation: Federation):
    haimen, rugao = federation.counties[HAIMEN], federation.counties[RUGAO]
    haimen.stop()

    held = federation.dispatch(HAIMEN, "HM-TAX-0003")
    passed = federation.dispatch(RUGAO, "RG-TAX-0001")

    assert wait(rugao.received, "the other county's message to go through") == [passed.id]
    wait(lambda: federation.province.audit("message.parked"),
         "the down county's message to be parked")
    assert acks(federation, "HM-TAX-0003") == []

    haimen.start()
    assert wait(haimen.received, "the parked message to reach the county", 60) == [held.id]
    wait(lambda: acks(federation, "HM-TAX-0003"), "the county's acknowledgement")
    assert rugao.received() == [passed.id]
    parked = federation.province.audit("message.parked")
    assert {(p["business_no"], p["route"]) for p in parked} == {
        ("HM-TAX-0003", "dispatch_tax_cleared")}


@pytest.mark.parametrize("secret, tenant, status, code", [
    # Signed with a secret the county does not know.
    ("not-the-secret-0123456789", HAIMEN, 401, "bad_signature"),
    # The province's client at Haimen acts for Haimen only: Rugao's case stays out.
    (PROVINCE_SECRET, RUGAO, 403, "tenant_forbidden"),
], ids=["bad_signature", "another_county"])
def test_an_envelope_with_a_bad_signature_or_for_another_county_is_refused_and_audited(
        federation: Federation, secret: str, tenant: str, status: int, code: str):
    county = federation.counties[HAIMEN]
    sender = connectors.build("county", peer(county.url, PROVINCE_KEY, secret))
    message_id = new_id()

    with pytest.raises(PermanentError, match=f"HTTP {status}"):
        sender.call("tax.cleared", {"business_no": "XX-TAX-0004"},
                    CallContext(message_id=message_id, tenant=tenant, business_no="XX-TAX-0004"))
    sender.close()

    refused = wait(lambda: county.audit("inbound.rejected"), "the refusal's audit")
    assert (refused[-1]["status"], refused[-1]["code"]) == (status, code)
    assert refused[-1]["endpoint"] == ENVELOPES_PATH
    assert refused[-1]["client"] == "province_hub"
    assert county.audit("inbound.accepted") == []
    assert county.hub.store.outcome_of(message_id, "tax_cleared_from_province") is None
    assert county.received() == []


def test_the_hops_a_county_reports_back_appear_in_the_provinces_trace(
        federation: Federation):
    sent = federation.dispatch(HAIMEN, "HM-TAX-0005")
    wait(federation.counties[HAIMEN].received, "the county to get it")

    def county_hops() -> list[dict]:
        return [h for h in federation.province.hub.trace("HM-TAX-0005")
                if h["route"].startswith(f"{HAIMEN}/")]

    reported = wait(county_hops, "the county's hops in the province's trace")
    assert [(h["route"], h["step"], h["outcome"]) for h in reported] == [
        (f"{HAIMEN}/tax_cleared_from_province", "0:to", "ok")]
    assert reported[0]["tenant"] == HAIMEN
    # The province's own hops of the case are there too, unmarked.
    wait(lambda: any(h["route"] == "dispatch_tax_cleared"
                     for h in federation.province.hub.trace("HM-TAX-0005")),
         "the province's own hops of the case")
    assert reported[0]["message_id"] != sent.id  # the report is a message of its own
    audited = wait(lambda: federation.province.audit("federation.hops_reported"),
                   "the report's audit")
    assert audited[-1]["recorded"] is True and audited[-1]["client"] == f"hub_{HAIMEN}"
