"""Route queues on RabbitMQ for several workers (issue #14, item 4), on a real node:

- ``broker.queue_type: quorum``: a message handed out ``broker.delivery_limit``
  times without an ack moves to the dead-letter queue, and the hub records it as
  a dead letter of its route (reason ``delivery_limit``) that ``hub dlq replay``
  brings back once the cause is gone, while the route's other messages flow;
- a queue RabbitMQ already holds with another type stops the hub at start with a
  message that says how to move (not two minutes of retries);
- each route's consumer has its own prefetch (a held route does not hold the
  others), and publishes are confirmed (a message the broker refuses is an error).
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
import yaml

from bdchub.core.broker import KombuBroker
from bdchub.core.config import load
from bdchub.core.envelope import Envelope
from bdchub.core.errors import ConfigError, RecoverableError, StoreError
from bdchub.routes.runtime import Hub
from tests.integration.test_reliability import TENANT, _application, _wait
from tests.routes import sink

pytestmark = pytest.mark.integration

ROUTE = {"from": "application.submitted", "concurrency": 2,
         "steps": [{"to": {"connector": "legacy", "operation": "submit"}}]}


@pytest.fixture(autouse=True)
def _sink_type():
    sink.register()


def _hub(tmp_path: Path, amqp_url: str, prefix: str, **broker: object) -> Hub:
    config = {"tenant": TENANT,
              "broker": {"url": amqp_url, "prefix": prefix, **broker},
              "store": {"url": f"sqlite:///{tmp_path / 'store.db'}"},
              "connectors": {"legacy": {"type": "testsink", "db": str(tmp_path / "legacy.db")}},
              "routes": {"intake": ROUTE}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    return Hub.from_config(load(path), publish_timeout=5)


def _submit(hub: Hub, no: str) -> Envelope:
    env = Envelope(type="application.submitted", tenant=TENANT, body=_application(no),
                   business_no=no)
    hub.engine.publish(env)
    return env


def test_a_message_past_its_delivery_limit_is_recorded_as_a_dead_letter_and_replayed(
        tmp_path, amqp_url):
    hub = _hub(tmp_path, amqp_url, f"t{uuid.uuid4().hex[:10]}", queue_type="quorum",
               delivery_limit=2)
    finish = hub.store.finish
    poison = "320684-Q-POISON"

    def refusing(rec):  # the store takes every message but this one
        if rec.business_no == poison:
            raise StoreError("value too long for type character varying(64)")
        return finish(rec)

    hub.store.finish = refusing
    hub.start()
    try:
        bad = _submit(hub, poison)
        good = [_submit(hub, f"320684-Q-{i}") for i in range(3)]
        _wait(lambda: hub.dlq_list(), 60, "the poison message's dead letter")
        [dead] = hub.dlq_list()
        assert (dead["message_id"], dead["route"], dead["reason"]) == (
            bad.id, "intake", "delivery_limit")
        assert "2 times" in dead["last_error"]
        _wait(lambda: all(hub.store.is_processed(e.id, "intake") for e in good), 30,
              "the other messages")
        assert not hub.store.is_processed(bad.id, "intake")
        # Tried 1 + delivery_limit times, then left alone.
        assert sink.total_calls(tmp_path / "legacy.db", "submit") == 3 + 3
        assert hub.broker.queue_size(hub.routes["intake"].queue) == 0

        hub.store.finish = finish  # the column widened
        [replayed] = hub.dlq_replay(dead["id"])
        _wait(lambda: hub.store.is_processed(replayed, "intake"), 30, "the replay")
        assert sink.done(tmp_path / "legacy.db", "submit") == {
            e.business_no: 1 for e in [bad, *good]}
    finally:
        hub.stop()


def test_a_queue_held_as_classic_stops_a_quorum_hub_at_start_saying_how_to_move(
        tmp_path, amqp_url):
    prefix = f"t{uuid.uuid4().hex[:10]}"
    classic = _hub(tmp_path, amqp_url, prefix)
    classic.declare()
    classic.close()
    quorum = _hub(tmp_path, amqp_url, prefix, queue_type="quorum")
    started = time.monotonic()
    with pytest.raises(ConfigError) as refused:
        quorum.start()
    quorum.stop()
    assert time.monotonic() - started < 5, "retried a refusal that cannot change"
    message = str(refused.value)
    assert f"{prefix}.route.intake" in message and "PRECONDITION_FAILED" in message
    assert "broker.queue_type: classic" in message and "delete_queue" in message


def test_an_ordered_queue_is_served_by_one_worker_at_a_time_and_by_the_next_when_it_dies(
        amqp_url):
    prefix = f"t{uuid.uuid4().hex[:10]}"
    queue = f"{prefix}.route.stages"
    workers = [KombuBroker(amqp_url, prefix=prefix, queue_type="quorum") for _ in range(2)]
    try:
        for broker in workers:
            broker.declare_queue(queue, [queue], ordered=True)
        got: list[list[bytes]] = [[], []]
        workers[0].consume({queue: lambda d: got[0].append(d.body)}, {queue: 2})
        _wait(lambda: workers[0].connected.is_set(), 10, "the first worker")
        workers[1].consume({queue: lambda d: (got[1].append(d.body), d.ack())}, {queue: 2})
        _wait(lambda: workers[1].connected.is_set(), 10, "the second worker")
        for i in range(6):
            workers[0].publish(b"%d" % i, queue, queue=queue, message_id=str(i))
        _wait(lambda: len(got[0]) == 2, 10, "the active consumer's deliveries")
        time.sleep(0.5)  # the other, idle, gets nothing while the first one lives
        assert got == [[b"0", b"1"], []]

        workers[0].kill()  # its two unsettled messages come back, first
        _wait(lambda: len(got[1]) == 6, 20, "the next worker to take the queue over")
        assert got[1] == [b"%d" % i for i in range(6)]
    finally:
        for broker in workers:
            broker.kill()


def test_each_consumer_has_its_own_prefetch_and_a_refused_publish_is_an_error(amqp_url):
    prefix = f"t{uuid.uuid4().hex[:10]}"
    broker = KombuBroker(amqp_url, prefix=prefix, queue_type="quorum", publish_timeout=0)
    try:
        for name in ("a", "b"):
            broker.declare_queue(f"{prefix}.{name}", [f"{prefix}.{name}"])
            for i in range(10):
                broker.publish(b"{}", f"{prefix}.{name}", message_id=str(i))
        held = []
        broker.consume({f"{prefix}.a": held.append, f"{prefix}.b": held.append},
                       {f"{prefix}.a": 2, f"{prefix}.b": 3})
        _wait(lambda: len(held) == 5, 10, "the prefetched deliveries")
        time.sleep(0.5)  # no more come while none is settled
        assert len(held) == 5
        assert broker.queue_size(f"{prefix}.a") == 8 and broker.queue_size(f"{prefix}.b") == 7

        # Publisher confirms: a queue full with reject-publish nacks, and publish says so.
        import kombu

        with kombu.Connection(amqp_url) as conn, conn.channel() as channel:
            kombu.Queue(f"{prefix}.full", exchange=broker.direct, routing_key=f"{prefix}.full",
                        queue_arguments={"x-max-length": 1, "x-overflow": "reject-publish"},
                        )(channel).declare()
        broker.publish(b"{}", "-", queue=f"{prefix}.full")
        with pytest.raises(RecoverableError, match="not published"):
            broker.publish(b"{}", "-", queue=f"{prefix}.full", message_id="refused")
    finally:
        broker.kill()
