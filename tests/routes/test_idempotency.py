"""Idempotency towards the registration system, counted at the sandbox's legacy
system: a redelivered message and replayed dead letters register nothing twice.

The legacy connector carries each call's idempotency key in a SOAP header
(``idempotency: {header: …}``); the sandbox answers a repeated key with its
first answer and keeps a ledger of what it applied (``Sandbox.legacy_doubles``).
"""

from __future__ import annotations

import uuid

import pytest

from bdchub import connectors
from bdchub.core.errors import PermanentError
from tests.routes.helpers import TENANT, FlakyStore, application, fake, make_hub

KEY_HEADER = "{urn:bdc-hub:sandbox:legacy:v1}IdempotencyKey"


def legacy(sb, **block):
    return connectors.build("legacy", {
        "type": "soap", "wsdl": sb.wsdl_url("legacy"), "soap_version": "1.2", "timeout": 5,
        "retry": {"attempts": 2, "backoff": 0.01, "jitter": 0},
        "idempotency": {"header": KEY_HEADER}, **block}, sleep=lambda s: None)


SUBMIT = {"to": {"connector": "legacy", "operation": "SubmitApplication", "into": "legacy",
                 "payload": {"YWH": "business_no", "DJLX": "'100'", "QLLX": "'4'",
                             "BDCDYH": "unit_codes[0]",
                             "QLR": "applicants[].{QLRMC: name, ZJZL: id_type, ZJH: id_number}"}}}


def _application(sb, no):
    person = sb.data["people"][0]
    return application(no, unit_codes=[sb.data["units"][12]], applicants=[
        {"name": person["name"], "id_type": "1", "id_number": person["cert_num"]}])


def _submissions(sb, numbers):
    """SubmitApplication requests the sandbox received for ``numbers``."""
    return [r for r in sb.received("legacy") if r["operation"] == "SubmitApplication"
            and r["body"].get("YWH") in numbers]


def _doubles(sb, numbers):
    return [d for d in sb.legacy_doubles() if d["subject"] in numbers]


def test_a_message_redelivered_after_a_crash_registers_the_application_once(clean_sandbox):
    sb = clean_sandbox
    no = f"{TENANT}-RD-{uuid.uuid4().hex[:8]}"
    hub = make_hub({"forward": {"from": "application.submitted", "steps": [SUBMIT]}},
                   {"legacy": legacy(sb)})
    hub.engine.store = FlakyStore(hub.store)
    hub.send("application.submitted", _application(sb, no))
    assert hub.run_until_idle() == 2  # delivered, crashed, delivered again
    assert len(_submissions(sb, {no})) == 2  # the system was sent it twice…
    assert [e["outcome"] for e in sb.legacy_ledger(no)] == ["applied", "replayed"]
    assert _doubles(sb, {no}) == []  # …and registered it once
    assert hub.store.outcome_of(hub.trace(no)[0]["message_id"], "forward") == "completed"


@pytest.mark.parametrize("from_start", [False, True], ids=["resume", "from-start"])
def test_replaying_40_dead_letters_registers_nothing_twice(clean_sandbox, from_start):
    sb = clean_sandbox
    broken = {"yes": True}

    def notify(op, payload, ctx):
        if broken["yes"]:
            raise PermanentError("window rejects the notice", connector="window",
                                 operation=op, status=400)
        return {"ok": True}

    window = fake("window", notify)
    hub = make_hub({"forward": {"from": "application.submitted", "steps": [
        SUBMIT, {"to": {"connector": "window", "operation": "notify"}}]}},
        {"legacy": legacy(sb), "window": window})
    tag = uuid.uuid4().hex[:6]
    numbers = {f"{TENANT}-DL-{tag}-{i:02d}" for i in range(40)}
    for no in sorted(numbers):
        hub.send("application.submitted", _application(sb, no))
    hub.run_until_idle()
    assert len(hub.dlq_list(limit=100)) == 40
    broken["yes"] = False  # the fix
    replays = hub.dlq_replays("all", from_start=from_start)
    assert len(replays) == 40
    hub.run_until_idle()
    assert hub.dlq_list() == [] and len(window.calls) == 80
    if from_start:
        # Sent again, with the same keys: the system answers each from its first time.
        assert len(_submissions(sb, numbers)) == 80
    else:
        assert len(_submissions(sb, numbers)) == 40  # resumed at the failed step
    assert _doubles(sb, numbers) == []
