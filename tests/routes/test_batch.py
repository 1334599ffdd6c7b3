"""Deliveries of a route of in-process steps handled together (routes.batch): one
duplicate check, one confirmed publish, one store transaction, and still each
delivery acked only once its outputs are published and its outcome stored."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from bdchub.core.broker import Delivery
from bdchub.core.envelope import Envelope
from bdchub.core.errors import RecoverableError, StoreError
from bdchub.routes.batch import batchable, handle_batch
from bdchub.routes.runtime import _Batches

from .helpers import TENANT, application, capture, fake, make_hub

RELAY = {"relay": {"from": "application.submitted", "steps": [
    {"validate": "application"},
    {"map": {"fields": {"ywh": "business_no"}, "merge": True}},
    {"publish": "application.relayed"}]}}


class Settled:
    """Deliveries that record how they were settled."""

    def __init__(self):
        self.ops: dict[str, list[str]] = {}

    def delivery(self, env: Envelope, queue: str = "q") -> Delivery:
        ops = self.ops.setdefault(env.business_no, [])
        return Delivery(env.to_json(), queue, False, ops.append)


def _env(no: str) -> Envelope:
    return Envelope(type="application.submitted", tenant=TENANT, body=application(no),
                    business_no=no)


class _Refusing:
    """A store whose batch transaction fails; ``poison`` outcomes fail alone too;
    ``away``: it does not answer at all."""

    def __init__(self, store, poison: str = "", away: bool = False):
        self._store = store
        self.poison = poison
        self.away = away

    def __getattr__(self, name):
        return getattr(self._store, name)

    def ping(self, timeout: float = 2.0) -> None:
        if self.away:
            raise StoreError("connection refused")

    def finish_many(self, recs):
        if self.away or any(r.business_no == self.poison for r in recs):
            raise StoreError("value too long for type character varying(64)")
        return self._store.finish_many(recs)


def test_a_batch_runs_each_message_once_and_acks_each_after_its_outcome_is_stored(hubs):
    hub = make_hub(RELAY)
    hubs.append(hub)
    relayed = capture(hub, "application.relayed")
    route = hub.routes["relay"]
    a, b, c = _env("B-1"), _env("B-2"), _env("B-3")
    settled = Settled()
    handle_batch(hub.engine, route, [settled.delivery(c)])  # c was processed before
    outcomes = handle_batch(hub.engine, route, [settled.delivery(e) for e in (a, b, a, c)])
    assert sorted(outcomes) == ["completed", "completed", "duplicate", "duplicate"]
    assert settled.ops == {"B-1": ["ack", "ack"], "B-2": ["ack"], "B-3": ["ack", "ack"]}
    # One child each: the repeat of a in the batch and the earlier c did not run again.
    assert sorted(m.body["ywh"] for m in relayed()) == ["B-1", "B-2", "B-3"]
    assert hub.store.count("processed", route="relay") == 3
    assert hub.engine.mw.items[0].duplicates.labels("relay")._value.get() == 2


def test_an_outcome_the_store_refuses_goes_back_alone(hubs):
    hub = make_hub(RELAY)
    hubs.append(hub)
    hub.declare()
    hub.engine.store = _Refusing(hub.store, poison="B-POISON")
    settled = Settled()
    good, poison = _env("B-1"), _env("B-POISON")
    handle_batch(hub.engine, hub.routes["relay"], [
        settled.delivery(e) for e in (good, poison, _env("B-2"))])
    assert settled.ops == {"B-1": ["ack"], "B-POISON": ["requeue"], "B-2": ["ack"]}
    assert hub.store.is_processed(good.id, "relay")
    assert not hub.store.is_processed(poison.id, "relay")


def test_a_store_that_is_away_sends_the_whole_batch_back_and_its_repeat_is_absorbed(hubs):
    hub = make_hub(RELAY)
    hubs.append(hub)
    relayed = capture(hub, "application.relayed")
    route = hub.routes["relay"]
    hub.engine.store = away = _Refusing(hub.store, away=True)
    settled = Settled()
    batch = [_env("B-1"), _env("B-2")]
    handle_batch(hub.engine, route, [settled.delivery(e) for e in batch])
    assert settled.ops == {"B-1": ["requeue"], "B-2": ["requeue"]}
    assert hub.store.count("processed", route="relay") == 0
    away.away = False  # back: the redelivered batch runs again
    handle_batch(hub.engine, route, [settled.delivery(e) for e in batch])
    assert settled.ops == {"B-1": ["requeue", "ack"], "B-2": ["requeue", "ack"]}
    assert hub.store.count("processed", route="relay") == 2
    # Published twice, under the same ids: their consumers absorb the repeat.
    children = relayed()
    assert len(children) == 4 and len({m.id for m in children}) == 2


def test_a_broker_that_does_not_confirm_sends_the_batch_back_with_nothing_stored(hubs):
    hub = make_hub(RELAY)
    hubs.append(hub)
    hub.declare()

    def unconfirmed(messages):
        raise RecoverableError("broker unavailable")

    hub.engine.broker.publish_many = unconfirmed
    settled = Settled()
    handle_batch(hub.engine, hub.routes["relay"], [settled.delivery(_env(n)) for n in ("B-1", "B-2")])
    assert settled.ops == {"B-1": ["requeue"], "B-2": ["requeue"]}
    assert hub.store.count("processed", route="relay") == 0


def test_only_routes_whose_every_step_stays_in_the_process_are_batched():
    legacy = fake("legacy", lambda op, payload, ctx: {})
    hub = make_hub({
        **RELAY,
        "calls": {"from": "a.b", "steps": [{"to": {"connector": "legacy", "operation": "x"}}]},
        "nested": {"from": "a.c", "steps": [{"choice": {
            "when": [{"condition": "business_no", "steps": [
                {"to": {"connector": "legacy", "operation": "x"}}]}],
            "otherwise": [{"publish": "a.d"}]}}]},
    }, {"legacy": legacy})
    try:
        assert batchable(hub.routes["relay"])
        assert not batchable(hub.routes["calls"])
        assert not batchable(hub.routes["nested"])
    finally:
        hub.kill()


def test_deliveries_that_arrive_while_the_thread_is_busy_are_its_next_batch():
    batches: list[list[str]] = []
    first_taken, release = threading.Event(), threading.Event()

    def handler(deliveries):
        batches.append([d.body.decode() for d in deliveries])
        first_taken.set()
        assert release.wait(10)
        for d in deliveries:
            d.ack()

    pool = ThreadPoolExecutor(max_workers=1)
    workers = _Batches(pool, handler, threads=1)
    acked: list[str] = []
    try:
        workers.dispatch(Delivery(b"1", "q", False, acked.append))
        assert first_taken.wait(10)
        for n in "2345":
            workers.dispatch(Delivery(n.encode(), "q", False, acked.append))
        release.set()
        assert workers.idle(10)
    finally:
        pool.shutdown(wait=True)
    assert batches == [["1"], ["2", "3", "4", "5"]]
    assert acked == ["ack"] * 5


def test_a_paused_route_puts_back_what_reaches_it():
    workers = _Batches(None, lambda deliveries: pytest.fail("ran while paused"), threads=1)
    workers.close()
    settled: list[str] = []
    workers.dispatch(Delivery(b"1", "q", False, settled.append))
    assert settled == ["requeue"] and workers.idle(0)
