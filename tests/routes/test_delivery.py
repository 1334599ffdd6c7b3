"""Delivery semantics: idempotency, retries, parking, dead letters, replay, fallback, sync routes."""

from __future__ import annotations

import pytest

from bdchub.core.envelope import Envelope
from bdchub.core.errors import MessageError, PermanentError, RecoverableError
from tests.routes.helpers import (
    TENANT,
    Clock,
    FlakyStore,
    Sleeps,
    application,
    capture,
    echo,
    fake,
    make_hub,
    outcomes,
)


class Switch:
    """An endpoint that fails while ``down`` (recoverable) or for ``reject`` (permanent)."""

    def __init__(self):
        self.down = False
        self.reject: set[str] = set()
        self.keys: list[str] = []

    def __call__(self, op, payload, ctx):
        if self.down:
            raise RecoverableError("tax endpoint down", connector="tax", operation=op)
        if ctx.business_no in self.reject:
            raise PermanentError("unit code rejected by tax", connector="tax", operation=op,
                                 status=400)
        self.keys.append(ctx.idempotency_key)
        return {"accepted": True}


TAX_ROUTES = {
    "tax": {"from": "application.submitted",
            "on_error": {"retry": {"attempts": 3, "backoff": 0.5}, "park_for": 30, "park_max": 3},
            "steps": [{"enrich": {"connector": "legacy", "operation": "lookup", "into": "legacy"}},
                      {"to": {"connector": "tax", "operation": "declare"}},
                      {"publish": "tax.declared"}]},
    "notify": {"from": "other.event", "steps": [{"to": {"connector": "legacy", "operation": "n"}}]},
}


def test_duplicate_delivery_is_absorbed():
    legacy = fake("legacy", echo)
    hub = make_hub({"r": {"from": "application.submitted", "steps": [
        {"to": {"connector": "legacy", "operation": "submit"}}]}}, {"legacy": legacy})
    env = Envelope(type="application.submitted", tenant=TENANT, body=application("D-1"),
                   business_no="D-1")
    hub.publish(env)
    hub.publish(env)
    hub.run_until_idle()
    hub.publish(env)
    hub.run_until_idle()
    assert len(legacy.calls) == 1
    assert hub.engine.mw.items[0].duplicates.labels("r")._value.get() == 2


def test_redelivered_parent_republishes_same_children_and_they_are_absorbed():
    legacy = fake("legacy", echo)
    hub = make_hub({
        "a": {"from": "application.submitted", "steps": [{"publish": "application.forwarded"}]},
        "b": {"from": "application.forwarded", "steps": [
            {"to": {"connector": "legacy", "operation": "submit"}}]}}, {"legacy": legacy})
    flaky = FlakyStore(hub.store)
    hub.engine.store = flaky
    hub.send("application.submitted", application("D-2"))
    hub.run_until_idle()
    # The first run published its child, then could not record its outcome: the parent
    # was redelivered, ran again and published the same child id a second time.
    assert not flaky.fail_next
    assert len(legacy.calls) == 1
    assert hub.store.count("processed", route="a") == 1


def test_retry_policy_retries_a_recoverable_error_in_place_with_backoff():
    sw = Switch()
    attempts = []

    def flaky(op, payload, ctx):
        attempts.append(ctx.idempotency_key)
        if len(attempts) < 3:
            raise RecoverableError("503")
        return {}

    sleeps = Sleeps()
    hub = make_hub(TAX_ROUTES, {"legacy": fake("legacy", echo), "tax": fake("tax", flaky)},
                   sleep=sleeps)
    hub.send("application.submitted", application("D-3"))
    hub.run_until_idle()
    assert len(attempts) == 3 and len(set(attempts)) == 1  # same idempotency key each time
    assert sleeps == [0.5, 1.0]
    assert hub.store.count("parked") == 0 and sw.keys == []


def test_route_parks_message_when_tax_endpoint_down_and_completes_when_it_returns():
    sw = Switch()
    sw.down = True
    legacy = fake("legacy", echo)
    clock = Clock()
    hub = make_hub(TAX_ROUTES, {"legacy": legacy, "tax": fake("tax", sw)}, clock=clock)
    declared = capture(hub, "tax.declared")
    hub.send("application.submitted", application("D-4"))
    hub.send("other.event", {"n": 1}, business_no="D-5")
    hub.run_until_idle()
    # Other routes are unaffected; the tax message is parked, not lost, not dead.
    assert [c[0] for c in legacy.calls] == ["lookup", "n"]
    [parked] = hub.parked_list()
    assert (parked["route"], parked["step"], parked["park_count"]) == ("tax", "1:to", 1)
    assert "tax endpoint down" in parked["last_error"]
    assert hub.dlq_list() == [] and declared() == []
    # Not due yet: nothing happens.
    clock.advance(10)
    assert hub.tick()["parked"] == 0
    sw.down = False
    clock.advance(21)
    assert hub.tick()["parked"] == 1
    hub.run_until_idle()
    [done] = declared()
    assert done.business_no == "D-4" and done.body["legacy"] == {"ok": True, "op": "lookup"}
    # It resumed at the failing step: the lookup before it was not called again.
    assert [c[0] for c in legacy.calls] == ["lookup", "n"]
    assert hub.parked_list() == []
    assert [o for _r, s, o in outcomes(hub, "D-4") if s == "1:to"] == ["parked", "ok"]


def test_parked_message_is_dead_lettered_after_park_max():
    sw = Switch()
    sw.down = True
    clock = Clock()
    hub = make_hub(TAX_ROUTES, {"legacy": fake("legacy", echo), "tax": fake("tax", sw)},
                   clock=clock)
    hub.send("application.submitted", application("D-6"))
    hub.run_until_idle()
    for _ in range(3):
        clock.advance(31)
        hub.tick()
        hub.run_until_idle()
    assert hub.parked_list() == []
    [dead] = hub.dlq_list()
    assert (dead["reason"], dead["route"], dead["step"]) == ("park_max", "tax", "1:to")
    assert "tax endpoint down" in dead["last_error"]


def test_then_dead_letter_skips_parking():
    sw = Switch()
    sw.down = True
    routes = {"tax": {**TAX_ROUTES["tax"], "on_error": {"retry": {"attempts": 1},
                                                        "then": "dead_letter"}}}
    hub = make_hub(routes, {"legacy": fake("legacy", echo), "tax": fake("tax", sw)})
    hub.send("application.submitted", application("D-7"))
    hub.run_until_idle()
    [dead] = hub.dlq_list()
    assert dead["reason"] == "retries_exhausted"


def test_poison_message_goes_to_dead_letters_with_reason_and_is_replayed_after_fix():
    sw = Switch()
    sw.reject.add("D-8")
    hub = make_hub(TAX_ROUTES, {"legacy": fake("legacy", echo), "tax": fake("tax", sw)})
    declared = capture(hub, "tax.declared")
    original = hub.send("application.submitted", application("D-8"))
    hub.send("application.submitted", application("D-9"))
    hub.run_until_idle()
    [dead] = hub.dlq_list()
    assert (dead["reason"], dead["route"], dead["step"], dead["business_no"], dead["message_id"]) \
        == ("permanent", "tax", "1:to", "D-8", original.id)
    assert "unit code rejected by tax" in dead["last_error"]
    shown = hub.dlq_show(dead["id"][:12])
    assert shown["envelope"]["id"] == original.id
    assert shown["envelope"]["body"]["applicants"][0]["id_number"] == "110105********1234"
    assert [e.business_no for e in declared()] == ["D-9"]
    sw.reject.clear()  # the fix
    [replayed] = hub.dlq_replay(dead["id"])
    hub.run_until_idle()
    assert sorted(e.business_no for e in declared()) == ["D-8", "D-9"]
    assert hub.dlq_list() == []
    assert hub.store.dead_letter(dead["id"])["status"] == "replayed"
    # The replay keeps the original's idempotency keys, so the endpoint can absorb repeats.
    assert sw.keys[-1] == f"{original.id}:tax:1"
    with pytest.raises(Exception, match="no dead letter"):
        hub.dlq_replay("no-such-id")


def test_dlq_replay_all_and_drop():
    sw = Switch()
    sw.reject.update({"D-10", "D-11", "D-12"})
    hub = make_hub(TAX_ROUTES, {"legacy": fake("legacy", echo), "tax": fake("tax", sw)})
    for no in ("D-10", "D-11", "D-12"):
        hub.send("application.submitted", application(no))
    hub.run_until_idle()
    dead = hub.dlq_list()
    assert len(dead) == 3
    assert hub.dlq_drop(dead[0]["id"]) is True
    assert hub.dlq_drop(dead[0]["id"]) is False
    sw.reject.clear()
    assert len(hub.dlq_replay("all")) == 2
    hub.run_until_idle()
    assert hub.dlq_list() == [] and len(sw.keys) == 2


def test_dead_letter_replay_resumes_at_the_failed_step_so_earlier_calls_are_not_repeated():
    sw = Switch()
    sw.reject.add("D-30")
    a = fake("a", lambda op, p, ctx: {"ywh": "Y-30"})
    routes = {"r": {"from": "application.submitted", "steps": [
        {"to": {"connector": "a", "operation": "submit", "into": "a_reply"}},
        {"to": {"connector": "tax", "operation": "declare", "payload": "a_reply"}},
        {"publish": "tax.declared"}]}}
    hub = make_hub(routes, {"a": a, "tax": fake("tax", sw)})
    declared = capture(hub, "tax.declared")
    hub.send("application.submitted", application("D-30"))
    hub.run_until_idle()
    [dead] = hub.dlq_list()
    sw.reject.clear()
    [replay] = hub.dlq_replays(dead["id"])
    assert replay["resumed_at"] == "1:to"
    hub.run_until_idle()
    assert len(a.calls) == 1  # A is not called again
    # B gets what A answered the first time: the replay goes on from the state at B.
    assert hub.engine.connectors["tax"].calls[-1][1] == {"ywh": "Y-30"}
    assert [e.business_no for e in declared()] == ["D-30"] and hub.dlq_list() == []


def test_dead_letter_replay_from_the_start_runs_every_step_with_the_same_keys():
    sw = Switch()
    sw.reject.add("D-31")
    a = fake("a", echo)
    routes = {"r": {"from": "application.submitted", "steps": [
        {"to": {"connector": "a", "operation": "submit"}},
        {"to": {"connector": "tax", "operation": "declare"}}]}}
    hub = make_hub(routes, {"a": a, "tax": fake("tax", sw)})
    hub.send("application.submitted", application("D-31"))
    hub.run_until_idle()
    sw.reject.clear()
    [replay] = hub.dlq_replays("all", from_start=True)
    assert replay["resumed_at"] is None
    hub.run_until_idle()
    keys = [ctx.idempotency_key for _op, _p, ctx in a.calls]
    assert len(keys) == 2 and keys[0] == keys[1]
    assert hub.dlq_list() == []


def test_malformed_message_is_dead_lettered_as_malformed():
    hub = make_hub({"r": {"from": "application.submitted", "steps": [{"publish": "x.y"}]}})
    hub.declare()
    hub.broker.publish(b"{not json", "application.submitted")
    hub.broker.publish(b'{"type": "application.submitted", "tenant": "12", "body": {}}',
                       "application.submitted")
    hub.run_until_idle()
    dead = hub.dlq_list()
    assert [d["reason"] for d in dead] == ["malformed", "malformed"]
    with pytest.raises(Exception, match="cannot be replayed"):
        hub.dlq_replay(dead[0]["id"])


def test_fallback_route_receives_the_failed_message_with_the_error():
    sw = Switch()
    sw.reject.add("D-13")
    manual = fake("manual", echo)
    routes = {"tax": {**TAX_ROUTES["tax"], "on_error": {"then": "fallback",
                                                        "fallback": "manual"}},
              "manual": {"from": "never.used", "steps": [
                  {"to": {"connector": "manual", "operation": "queue_for_staff"}}]}}
    hub = make_hub(routes, {"legacy": fake("legacy", echo), "tax": fake("tax", sw),
                            "manual": manual})
    hub.send("application.submitted", application("D-13"))
    hub.run_until_idle()
    [(op, payload, ctx)] = manual.calls
    assert payload["business_no"] == "D-13" and payload["legacy"]["op"] == "lookup"
    assert hub.dlq_list() == []
    assert outcomes(hub, "D-13")[1] == ("tax", "1:to", "fallback")


def test_store_outage_requeues_the_message_instead_of_losing_it():
    legacy = fake("legacy", echo)
    hub = make_hub({"r": {"from": "a.b", "steps": [
        {"to": {"connector": "legacy", "operation": "x"}}]}}, {"legacy": legacy})
    flaky = FlakyStore(hub.store)
    hub.engine.store = flaky
    hub.send("a.b", {}, business_no="D-14")
    assert hub.run_until_idle() == 2  # requeued once, then done
    assert hub.store.outcome_of(legacy.calls[0][2].message_id, "r") == "completed"


def test_run_sync_returns_the_route_result_and_publishes_children():
    legacy = fake("legacy", lambda op, p, c: {"ywh": "Y-1", "status": "accepted"})
    hub = make_hub({"query": {
        "from": {"endpoint": {"method": "POST", "path": "/v1/applications", "reply": True}},
        "steps": [{"enrich": {"connector": "legacy", "operation": "submit", "into": "result"}},
                  {"publish": "application.accepted"},
                  {"map": {"ywh": "result.ywh", "status": "result.status"}}]}},
        {"legacy": legacy})
    read = capture(hub, "application.accepted")
    assert hub.endpoints() == [{"route": "query", "method": "POST", "path": "/v1/applications",
                                "reply": True, "type": "inbound.query"}]
    request = Envelope(type="inbound.query", tenant=TENANT, body=application("S-1"),
                       business_no="S-1")
    result = hub.run_sync("query", request)
    assert result.body == {"ywh": "Y-1", "status": "accepted"}
    assert result.headers["x-hub-outcome"] == "completed"
    assert [h.step for h in result.trace] == ["0:enrich", "1:publish", "2:map"]
    assert [e.business_no for e in read()] == ["S-1"]
    assert [r["step"] for r in hub.trace("S-1")] == ["0:enrich", "1:publish", "2:map"]


def test_run_sync_raises_the_step_error_for_the_web_layer():
    def bad(op, p, c):
        raise PermanentError("legacy says no", status=422)

    hub = make_hub({"q": {"from": {"endpoint": {"path": "/q", "reply": True}},
                          "steps": [{"validate": "application"},
                                    {"to": {"connector": "legacy", "operation": "x"}}]}},
                   {"legacy": fake("legacy", bad)})
    with pytest.raises(MessageError) as err:
        hub.run_sync("q", Envelope(type="inbound.q", tenant=TENANT, body={"business_no": "S-2"}))
    assert err.value.violations
    with pytest.raises(PermanentError, match="legacy says no"):
        hub.run_sync("q", Envelope(type="inbound.q", tenant=TENANT, body=application("S-3")))
    assert hub.dlq_list() == [] and hub.parked_list() == []


def test_endpoint_route_without_reply_is_queued_with_submit():
    legacy = fake("legacy", echo)
    hub = make_hub({"upload": {"from": {"endpoint": {"path": "/upload", "reply": False}},
                               "steps": [{"to": {"connector": "legacy", "operation": "x"}}]}},
                   {"legacy": legacy})
    hub.submit("upload", Envelope(type="inbound.upload", tenant=TENANT, body={"a": 1}))
    hub.run_until_idle()
    assert len(legacy.calls) == 1


def test_metrics_count_messages_outcomes_and_parked():
    sw = Switch()
    sw.down = True
    hub = make_hub(TAX_ROUTES, {"legacy": fake("legacy", echo), "tax": fake("tax", sw)})
    hub.send("application.submitted", application("M-1"))
    hub.run_until_idle()
    reg = hub.engine.mw.items[0].registry
    assert reg.get_sample_value("bdchub_route_messages_in_total", {"route": "tax"}) == 1
    assert reg.get_sample_value("bdchub_route_parked_total", {"route": "tax"}) == 1
    assert reg.get_sample_value("bdchub_route_outcomes_total",
                                {"route": "tax", "outcome": "parked"}) == 1
    assert reg.get_sample_value("bdchub_route_step_seconds_count",
                                {"route": "tax", "kind": "enrich"}) == 1


def test_hub_is_what_the_web_layer_expects_and_audits_to_a_chained_log(tmp_path):
    from bdchub.core.audit import AuditLog
    from bdchub.web.ports import HubPort

    hub = make_hub({"r": {"from": "a.b", "steps": [{"publish": "c.d"}]}})
    hub.config = {**hub.config, "__dir__": str(tmp_path)}
    assert isinstance(hub, HubPort)
    hub.audit("inbound.accepted", id="m-1", business_no="B-1", client="window")
    hub.audit("inbound.accepted", id="m-2", business_no="B-2", client="window")
    log = AuditLog(tmp_path / "data" / "audit.jsonl", key=hub.audit_key())
    assert [r["object"] for r in log.records()] == ["m-1", "m-2"]
    assert log.verify() == []
    # Keyed without being asked to: the chain does not check out without the key.
    assert AuditLog(log.path).verify() != []


def test_dead_letter_errors_are_shown_with_id_numbers_masked_and_kept_whole_in_the_store():
    def refuse(op, payload, ctx):
        raise PermanentError("applicant 110105199001011234 is not on the register",
                             connector="tax", operation=op)

    hub = make_hub(TAX_ROUTES, {"legacy": fake("legacy", echo), "tax": fake("tax", refuse)})
    hub.send("application.submitted", application("D-10"))
    hub.run_until_idle()
    [listed] = hub.dlq_list()
    shown = hub.dlq_show(listed["id"])
    for text in (listed["last_error"], shown["last_error"]):
        assert "110105199001011234" not in text and "110105" in text and "1234" in text
    assert "110105199001011234" in hub.store.dead_letter(listed["id"])["last_error"]
