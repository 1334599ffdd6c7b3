"""``each``: nested steps once per item of a list (every party checked, not the first)."""

from __future__ import annotations

import pytest

from bdchub.core.errors import ConfigError, RecoverableError
from bdchub.routes.compiler import compile_route
from tests.routes.helpers import Clock, application, capture, echo, fake, make_hub, outcomes

PARTIES = [{"name": "甲公司", "id_type": "8", "id_number": "91320684AAAA"},
           {"name": "张三", "id_type": "1", "id_number": "110105199001011234"},
           {"name": "乙银行", "id_type": "8", "id_number": "91320684BBBB"},
           {"name": "甲公司", "id_type": "8", "id_number": "91320684AAAA"}]

CHECK_EVERY_ORGANISATION = {
    "from": "application.submitted",
    "on_error": {"retry": {"attempts": 1}, "park_for": 30, "park_max": 3},
    "steps": [
        {"each": {"items": "applicants[?id_type=='8']", "as": "checks.organisation",
                  "distinct": "id_number", "collect": "checks.organisations",
                  "steps": [{"enrich": {"connector": "market", "operation": "licence",
                                        "payload": {"uscc": "checks.organisation.id_number"},
                                        "into": "checks.organisation.licence",
                                        "record": "business_licence"}}]}},
        {"to": {"connector": "legacy", "operation": "submit"}}],
}


def licence(op, payload, ctx):
    return {"uscc": payload["uscc"], "status": "存续"}


def test_each_runs_its_steps_once_per_distinct_item_and_collects_what_they_left():
    market, legacy = fake("market", licence), fake("legacy", echo)
    hub = make_hub({"r": CHECK_EVERY_ORGANISATION}, {"market": market, "legacy": legacy})
    env = hub.send("application.submitted", application("E-1", applicants=PARTIES))
    hub.run_until_idle()

    assert [c[1] for c in market.calls] == [{"uscc": "91320684AAAA"}, {"uscc": "91320684BBBB"}]
    # Each iteration is its own call: a department that honours the key does not take the
    # second organisation's question for a retry of the first's.
    assert [c[2].idempotency_key for c in market.calls] == [
        f"{env.id}:r:0.steps.0@0", f"{env.id}:r:0.steps.0@1"]
    sent = legacy.calls[0][1]
    assert [(o["name"], o["licence"]["uscc"]) for o in sent["checks"]["organisations"]] == [
        ("甲公司", "91320684AAAA"), ("乙银行", "91320684BBBB")]
    assert "organisation" not in sent["checks"]  # the loop's variable does not outlive it
    records = hub.store.verifications_for("E-1")
    assert [(r["kind"], r["result"]["uscc"]) for r in records] == [
        ("business_licence", "91320684AAAA"), ("business_licence", "91320684BBBB")]
    assert outcomes(hub, "E-1") == [("r", "0.steps.0:enrich@0", "ok"),
                                    ("r", "0.steps.0:enrich@1", "ok"),
                                    ("r", "0:each", "ok"), ("r", "1:to", "ok")]


def test_each_over_nothing_runs_no_steps_and_collects_an_empty_list():
    market, legacy = fake("market", licence), fake("legacy", echo)
    hub = make_hub({"r": CHECK_EVERY_ORGANISATION}, {"market": market, "legacy": legacy})
    hub.send("application.submitted", application("E-2"))  # one natural person only
    hub.run_until_idle()
    assert market.calls == []
    assert legacy.calls[0][1]["checks"] == {"organisations": []}


def test_a_loop_that_parks_is_redone_whole_and_records_each_item_once():
    down = {"91320684BBBB"}

    def market_call(op, payload, ctx):
        if payload["uscc"] in down:
            raise RecoverableError("market down", connector="market", operation=op)
        return licence(op, payload, ctx)

    market, legacy = fake("market", market_call), fake("legacy", echo)
    clock = Clock()
    hub = make_hub({"r": CHECK_EVERY_ORGANISATION}, {"market": market, "legacy": legacy},
                   clock=clock)
    hub.send("application.submitted", application("E-3", applicants=PARTIES))
    hub.run_until_idle()
    [parked] = hub.parked_list()
    assert parked["step"] == "0.steps.0:enrich"
    assert outcomes(hub, "E-3")[-1] == ("r", "0.steps.0:enrich@1", "parked")  # which item
    assert hub.store.verifications_for("E-3") == []  # the failed attempt left none

    down.clear()
    clock.advance(31)
    assert hub.tick()["parked"] == 1
    hub.run_until_idle()
    # Resumed at the loop, not at its second iteration's step: both asked again.
    assert [c[1]["uscc"] for c in market.calls] == [
        "91320684AAAA", "91320684BBBB", "91320684AAAA", "91320684BBBB"]
    assert len(legacy.calls[0][1]["checks"]["organisations"]) == 2
    assert sorted(r["result"]["uscc"] for r in hub.store.verifications_for("E-3")) == [
        "91320684AAAA", "91320684BBBB"]


def test_messages_published_in_a_loop_have_an_id_per_iteration():
    hub = make_hub({"r": {"from": "application.submitted", "steps": [
        {"each": {"items": "applicants", "as": "party",
                  "steps": [{"publish": {"type": "party.checked",
                                         "body": {"name": "party.name"}}}]}}]}})
    checked = capture(hub, "party.checked")
    hub.send("application.submitted", application("E-4", applicants=PARTIES))
    hub.run_until_idle()
    got = checked()
    assert [e.body["name"] for e in got] == ["甲公司", "张三", "乙银行", "甲公司"]
    assert len({e.id for e in got}) == 4


def test_each_cannot_await():
    with pytest.raises(ConfigError, match="each cannot await"):
        compile_route("r", {"from": "a.b", "steps": [{"each": {
            "items": "applicants", "as": "party", "steps": [
                {"choice": {"when": [{"condition": "party", "steps": [
                    {"await": {"types": ["c.d"], "timeout": 10}}]}]}}]}}]})
