"""On RabbitMQ, what concurrent requests publish meanwhile is confirmed together
(core.broker.grouped over KombuBroker.publish_many): one wait for the confirms of
the whole batch, and every caller returns with its message in its queue."""

from __future__ import annotations

import threading
import uuid

import kombu
import pytest

from bdchub.core.broker import KombuBroker, Outbound
from bdchub.core.broker.grouped import GroupPublisher

pytestmark = pytest.mark.integration


class CountedRabbit(KombuBroker):
    """Counts its confirm waits; the first batch waits until the test lets it go."""

    def __init__(self, url: str, **options):
        super().__init__(url, **options)
        self.confirm_waits = 0
        self.first_out = threading.Event()
        self.go = threading.Event()

    def _confirms(self):
        confirms = super()._confirms()
        publish = confirms.publish

        def counted(wire, timeout):
            self.confirm_waits += 1
            publish(wire, timeout)
        confirms.publish = counted
        return confirms

    def publish_many(self, messages):
        self.first_out.set()
        assert self.go.wait(20)
        super().publish_many(messages)


@pytest.fixture
def rabbit(amqp_url):
    prefix = f"t{uuid.uuid4().hex[:10]}"
    broker = CountedRabbit(amqp_url, prefix=prefix, publish_timeout=20)
    broker.declare_queue(f"{prefix}.q", ["applicant.checked"])
    yield broker
    broker.close()
    with kombu.Connection(amqp_url) as conn, conn.channel() as channel:
        kombu.Queue(f"{prefix}.q")(channel).delete()


def test_callers_that_publish_meanwhile_wait_for_one_confirm_and_find_their_message_queued(rabbit):
    publisher = GroupPublisher(rabbit)
    queue = f"{rabbit.prefix}.q"
    queued_when_returned: list[int | None] = []

    def caller(n: int) -> None:
        publisher.publish([Outbound(f'{{"n": {n}}}'.encode(), "applicant.checked", None,
                                    f"m-{n}")])
        queued_when_returned.append(rabbit.queue_size(queue))

    first = threading.Thread(target=caller, args=(0,))
    first.start()
    assert rabbit.first_out.wait(10)
    rest = [threading.Thread(target=caller, args=(n,)) for n in range(1, 7)]
    for thread in rest:
        thread.start()
    for _ in range(400):  # bounded: until the six wait behind the first batch
        if publisher._queue.qsize() == 6:
            break
        threading.Event().wait(0.01)
    rabbit.go.set()
    for thread in [first, *rest]:
        thread.join(30)
    publisher.close()
    # The first alone (one publish, its own confirm), then the six with one wait.
    assert rabbit.confirm_waits == 1
    assert rabbit.queue_size(queue) == 7
    assert len(queued_when_returned) == 7 and all(n and n >= 1 for n in queued_when_returned)
