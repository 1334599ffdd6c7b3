"""Publishing many messages with one wait for RabbitMQ's confirms
(KombuBroker.publish_many): every one is in its queue when the call returns, and a
connection lost between batches is replaced by the next."""

from __future__ import annotations

import socket
import threading
import time
import uuid

import kombu
import pytest

from bdchub.core.broker import KombuBroker, Outbound

pytestmark = pytest.mark.integration


@pytest.fixture
def broker(amqp_url):
    prefix = f"t{uuid.uuid4().hex[:10]}"
    b = KombuBroker(amqp_url, prefix=prefix, publish_timeout=20)
    b.declare_queue(f"{prefix}.q", ["batch.*"])
    yield b
    b.close()
    with kombu.Connection(amqp_url) as conn, conn.channel() as channel:
        kombu.Queue(f"{prefix}.q")(channel).delete()


def _batch(broker: KombuBroker, n: int, tag: str) -> list[Outbound]:
    queue = f"{broker.prefix}.q"
    # Half by type through the topic exchange, half to the queue by name.
    return [Outbound(f'{{"n": "{tag}{i}"}}'.encode(), "batch.relayed",
                     queue if i % 2 else None, f"{tag}{i}") for i in range(n)]


def _drain(broker: KombuBroker, n: int) -> list[bytes]:
    got: list[bytes] = []
    done = threading.Event()

    def handler(delivery):
        got.append(delivery.body)
        delivery.ack()
        if len(got) >= n:
            done.set()

    broker.consume({f"{broker.prefix}.q": handler}, {f"{broker.prefix}.q": 50})
    done.wait(30)
    broker.stop(timeout=5)
    return got


def test_every_message_of_a_batch_is_queued_when_publish_many_returns(broker):
    batch = _batch(broker, 40, "a")
    broker.publish_many(batch)
    assert broker.queue_size(f"{broker.prefix}.q") == 40
    assert sorted(_drain(broker, 40)) == sorted(m.body for m in batch)


def test_a_batch_after_a_lost_connection_goes_out_on_a_new_one(broker):
    broker.publish_many(_batch(broker, 10, "a"))
    # The thread's connection dies between two batches (a broker restart, a
    # dropped socket): the next batch reconnects and is confirmed all the same.
    broker._local.producer.channel.connection.transport.sock.shutdown(socket.SHUT_RDWR)
    started = time.monotonic()
    broker.publish_many(_batch(broker, 10, "b"))
    assert time.monotonic() - started < 15
    assert broker.queue_size(f"{broker.prefix}.q") == 20
