"""await: correlation by business number, resume, aggregation, timeout."""

from __future__ import annotations

from tests.routes.helpers import TENANT, Clock, application, echo, fake, make_hub, outcomes

ROUTES = {
    "joint": {"from": "application.accepted", "steps": [
        {"to": {"connector": "legacy", "operation": "before"}},
        {"await": {"types": ["tax.cleared"], "timeout": 3600, "into": "tax",
                   "on_timeout": [{"to": {"connector": "legacy", "operation": "chase_tax"}}]}},
        {"to": {"connector": "legacy", "operation": "register"}}]},
}


def _hub(routes=None, clock=None):
    legacy = fake("legacy", echo)
    clock = clock or Clock()
    return make_hub(routes or ROUTES, {"legacy": legacy}, clock=clock), legacy, clock


def test_await_resumes_after_the_awaited_type_arrives_with_its_body_merged():
    hub, legacy, _clock = _hub()
    hub.send("application.accepted", application("A-1"))
    hub.run_until_idle()
    assert [c[0] for c in legacy.calls] == ["before"]
    hub.send("tax.cleared", {"paid": 1234.5}, business_no="A-1")
    hub.run_until_idle()
    assert [c[0] for c in legacy.calls] == ["before", "register"]
    registered = legacy.calls[1][1]
    assert registered["tax"] == {"paid": 1234.5}
    assert registered["applicants"][0]["name"] == "张三"
    assert [o for _r, s, o in outcomes(hub, "A-1")] == ["ok", "awaiting", "ok", "ok"]
    # The resumed run keeps the original message's idempotency keys.
    assert legacy.calls[1][2].idempotency_key.split(":")[0] == \
        legacy.calls[0][2].idempotency_key.split(":")[0]


def test_await_ignores_other_business_numbers_and_other_tenants():
    hub, legacy, _clock = _hub()
    hub.send("application.accepted", application("A-2"))
    hub.run_until_idle()
    hub.send("tax.cleared", {}, business_no="A-3")
    hub.send("tax.cleared", {}, business_no="A-2", tenant="320612")
    hub.run_until_idle()
    assert [c[0] for c in legacy.calls] == ["before"]
    hub.send("tax.cleared", {}, business_no="A-2", tenant=TENANT)
    hub.run_until_idle()
    assert [c[0] for c in legacy.calls] == ["before", "register"]


def test_awaited_message_arriving_before_the_await_is_not_missed():
    hub, legacy, _clock = _hub()
    hub.declare()
    hub.send("tax.cleared", {"paid": 1}, business_no="A-4")
    hub.run_until_idle()
    hub.send("application.accepted", application("A-4"))
    hub.run_until_idle()
    assert [c[0] for c in legacy.calls] == ["before", "register"]
    assert legacy.calls[1][1]["tax"] == {"paid": 1}


def test_await_all_waits_for_every_type_and_merges_each_by_type():
    routes = {"joint": {"from": "application.accepted", "steps": [
        {"await": {"types": ["tax.cleared", "trade.filed"], "timeout": 60, "into": "joint"}},
        {"to": {"connector": "legacy", "operation": "register"}}]}}
    hub, legacy, _clock = _hub(routes)
    hub.send("application.accepted", application("A-5"))
    hub.send("tax.cleared", {"t": 1}, business_no="A-5")
    hub.run_until_idle()
    assert legacy.calls == []
    hub.send("trade.filed", {"f": 2}, business_no="A-5")
    hub.run_until_idle()
    [(_op, payload, _ctx)] = legacy.calls
    assert payload["joint"] == {"tax.cleared": {"t": 1}, "trade.filed": {"f": 2}}


def test_await_any_resumes_on_the_first_arrival_only_once():
    routes = {"joint": {"from": "application.accepted", "steps": [
        {"await": {"types": ["court.#"], "mode": "any", "timeout": 60}},
        {"to": {"connector": "legacy", "operation": "register"}}]}}
    hub, legacy, _clock = _hub(routes)
    hub.send("application.accepted", application("A-6"))
    hub.run_until_idle()
    hub.send("court.seizure.lifted", {"c": 1}, business_no="A-6")
    hub.send("court.judgment", {"c": 2}, business_no="A-6")
    hub.run_until_idle()
    [(_op, payload, _ctx)] = legacy.calls
    assert payload["awaited"] == {"c": 1}


def test_await_timeout_runs_the_timeout_branch_and_ends_the_route():
    hub, legacy, clock = _hub()
    hub.send("application.accepted", application("A-7"))
    hub.run_until_idle()
    clock.advance(3599)
    assert hub.tick()["timed_out"] == 0
    clock.advance(2)
    assert hub.tick()["timed_out"] == 1
    hub.run_until_idle()
    assert [c[0] for c in legacy.calls] == ["before", "chase_tax"]
    # A late arrival does not resume a timed-out await.
    hub.send("tax.cleared", {}, business_no="A-7")
    hub.run_until_idle()
    assert [c[0] for c in legacy.calls] == ["before", "chase_tax"]
    assert outcomes(hub, "A-7")[-2:] == [("joint", "1:await", "timeout"),
                                         ("joint", "1.on_timeout.0:to", "ok")]


def test_arrival_racing_the_deadline_resumes_instead_of_timing_out():
    hub, legacy, clock = _hub()
    hub.send("application.accepted", application("A-8"))
    hub.run_until_idle()
    # The awaited message is in the inbox but its await was not resumed yet
    # (the arrival's process died): at the deadline the scheduler resumes it.
    hub.store.inbox_add("m-1", TENANT, "A-8", "tax.cleared", {"paid": 2}, clock())
    clock.advance(3601)
    hub.tick()
    hub.run_until_idle()
    assert [c[0] for c in legacy.calls] == ["before", "register"]


def test_lost_continuation_is_published_again_by_the_scheduler():
    hub, legacy, clock = _hub()
    hub.send("application.accepted", application("A-9"))
    hub.run_until_idle()
    [corr] = hub.store.waiting_correlations(TENANT, "A-9")
    # A worker decided to resume and died before publishing the continuation.
    hub.store.decide_correlation(corr["id"], "resumed", clock(), corr["envelope"].replace(
        '"headers":{', '"headers":{"x-hub-resume":"1","x-hub-resume-mode":"after",', 1))
    clock.advance(31)
    assert hub.tick()["redelivered"] == 1
    hub.run_until_idle()
    assert [c[0] for c in legacy.calls] == ["before", "register"]
    assert hub.tick()["redelivered"] == 0


def test_await_inside_a_choice_branch_resumes_after_it_then_after_the_choice():
    routes = {"r": {"from": "application.accepted", "steps": [
        {"choice": {"when": [{"condition": "registration_type == '200'", "steps": [
            {"await": {"types": ["tax.cleared"], "timeout": 60}},
            {"to": {"connector": "legacy", "operation": "in_branch"}}]}]}},
        {"to": {"connector": "legacy", "operation": "after_choice"}}]}}
    hub, legacy, _clock = _hub(routes)
    hub.send("application.accepted", application("A-10"))
    hub.run_until_idle()
    assert legacy.calls == []
    hub.send("tax.cleared", {}, business_no="A-10")
    hub.run_until_idle()
    assert [c[0] for c in legacy.calls] == ["in_branch", "after_choice"]


def test_await_without_business_number_is_dead_lettered():
    hub, legacy, _clock = _hub()
    hub.send("application.accepted", {"x": 1}, business_no="")
    hub.run_until_idle()
    [dead] = hub.dlq_list()
    assert dead["step"] == "1:await" and dead["reason"] == "error"


class _StoreAway:
    """The hub's store while its database is away: writes fail, and ``ping`` fails
    ``pings`` times before the database answers again."""

    def __init__(self, store, pings: int):
        self._store = store
        self.pings = pings

    def __getattr__(self, name):
        return getattr(self._store, name)

    def inbox_add(self, *args, **kwargs):
        from bdchub.core.errors import StoreError

        raise StoreError("could not connect to server")

    def ping(self, timeout: float = 2.0) -> None:
        from bdchub.core.errors import StoreError

        if self.pings > 0:
            self.pings -= 1
            raise StoreError("could not connect to server")


def test_an_awaited_message_the_store_cannot_take_is_held_until_the_store_answers():
    # Each return to the await queue counts against a quorum queue's delivery limit:
    # with the store away for ten seconds and a return every half second, three
    # workers ran a tax clearance past the limit of 20 into the dead letters.
    from bdchub.core.broker import Delivery
    from bdchub.core.envelope import Envelope
    from tests.routes.helpers import Sleeps

    sleeps = Sleeps()
    legacy = fake("legacy", echo)
    hub = make_hub(ROUTES, {"legacy": legacy}, sleep=sleeps)
    away = _StoreAway(hub.engine.store, pings=3)
    hub.engine.store = hub.engine.correlations.store = away
    settled: list[str] = []
    env = Envelope("tax.cleared", TENANT, {"paid": 1}, business_no="A-9")
    delivery = Delivery(env.to_json(), hub.engine.await_queue, False, settled.append)

    assert hub.engine.correlations.handle_awaited(delivery) == "requeued"
    assert settled == ["requeue"]
    # Held while the store did not answer (three pings failed, the fourth answered),
    # each wait longer than the one before, before going back once.
    assert away.pings == 0
    assert len(sleeps) == 4 and sleeps == sorted(sleeps) and sum(sleeps) > 5
