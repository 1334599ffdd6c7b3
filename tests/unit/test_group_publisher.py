"""core.broker.grouped: what concurrent callers publish goes to the broker together.

While one batch is being published, what other callers publish waits and goes in
the next ``publish_many``. A caller returns only once the broker has its messages;
a batch the broker refuses fails each of its callers as a failed publish did;
``close`` publishes what waits and refuses more. On the event loop a waiting
caller suspends its greenlet only: the loop goes on serving others.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest

from bdchub.core import greenloop
from bdchub.core.broker import InMemoryBroker, KombuBroker, Outbound
from bdchub.core.broker.grouped import GroupPublisher
from bdchub.core.errors import RecoverableError

QUEUE = "checked"


def message(n: int) -> Outbound:
    return Outbound(f'{{"n": {n}}}'.encode(), "applicant.checked", QUEUE, f"m-{n}")


class HeldBroker(InMemoryBroker):
    """Holds each ``publish_many`` until the test lets it go, and says what each held."""

    def __init__(self):
        super().__init__()
        self.declare_queue(QUEUE, [])
        self.batches: list[list[str]] = []
        self.entered = threading.Semaphore(0)
        self.go = threading.Event()
        self.refusal: Exception | None = None

    def publish_many(self, messages):
        self.entered.release()
        assert self.go.wait(10)
        if self.refusal is not None:
            raise self.refusal
        super().publish_many(messages)
        self.batches.append([m.message_id for m in messages])

    def queued(self) -> list[bytes]:
        return self.peek(QUEUE)


def wait_until(condition, what: str) -> None:
    for _ in range(400):  # bounded: a few seconds at most
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


def waiting(publisher: GroupPublisher) -> int:
    return publisher._queue.qsize()


async def until_waiting(publisher: GroupPublisher, n: int) -> None:
    for _ in range(1000):  # bounded: a few seconds at most
        if waiting(publisher) >= n:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"{n} callers never waited")


async def on_loop(publisher: GroupPublisher, messages: list[Outbound]):
    return await greenloop.run(publisher.publish, messages)


def test_callers_that_publish_while_a_batch_is_out_share_the_next_publish():
    broker = HeldBroker()
    publisher = GroupPublisher(broker)
    ticks = []

    async def main():
        first = asyncio.ensure_future(on_loop(publisher, [message(0)]))
        await asyncio.to_thread(broker.entered.acquire, timeout=5)  # batch 1 is out
        rest = [asyncio.ensure_future(on_loop(publisher, [message(n)])) for n in range(1, 6)]
        while waiting(publisher) < 5 and len(ticks) < 1000:
            ticks.append(1)  # the loop serves others while the callers wait
            await asyncio.sleep(0.005)
        assert not first.done() and not any(t.done() for t in rest)
        broker.go.set()
        await asyncio.gather(first, *rest)

    asyncio.run(main())
    assert broker.batches == [["m-0"], ["m-1", "m-2", "m-3", "m-4", "m-5"]]
    assert len(broker.queued()) == 6 and ticks
    publisher.close()


def test_no_caller_returns_before_the_broker_has_its_message():
    broker = HeldBroker()
    publisher = GroupPublisher(broker)
    returned: list[tuple[int, int]] = []  # (caller, messages in the broker when it returned)

    def caller(n: int) -> None:
        publisher.publish([message(n)])
        returned.append((n, len(broker.queued())))

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    assert broker.entered.acquire(timeout=5)
    time.sleep(0.1)  # the callers had every chance to return early
    assert returned == [] and broker.queued() == []
    broker.go.set()
    for thread in threads:
        thread.join(10)
    assert sorted(n for n, _ in returned) == [0, 1, 2, 3]
    assert all(in_broker >= 1 for _, in_broker in returned)
    assert len(broker.batches) <= 2  # threads off the loop are grouped too
    publisher.close()


def _unreachable_amqp_url() -> str:
    with socket.socket() as sock:  # a loopback port nothing listens on any more
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"amqp://guest:guest@127.0.0.1:{port}//"


class HeldRabbit(KombuBroker):
    """RabbitMQ out of reach, whose ``publish_many`` starts when the test says."""

    def __init__(self, url: str, **options):
        super().__init__(url, **options)
        self.entered = threading.Semaphore(0)
        self.go = threading.Event()

    def publish_many(self, messages):
        self.entered.release()
        assert self.go.wait(10)
        super().publish_many(messages)


def test_a_refused_batch_fails_each_caller_with_the_error_a_publish_of_its_message_gives():
    broker = HeldRabbit(_unreachable_amqp_url(), publish_timeout=0)
    publisher = GroupPublisher(broker)
    errors: dict[str, str] = {}

    async def caller(n: int) -> None:
        try:
            await on_loop(publisher, [message(n)])
        except RecoverableError as exc:
            errors[f"m-{n}"] = str(exc)

    async def main():
        callers = [asyncio.ensure_future(caller(0))]
        await asyncio.to_thread(broker.entered.acquire, timeout=5)  # the first is out
        callers += [asyncio.ensure_future(caller(n)) for n in (1, 2)]
        await until_waiting(publisher, 2)
        broker.go.set()
        await asyncio.gather(*callers)

    asyncio.run(main())
    today = {}
    for n in range(3):
        with pytest.raises(RecoverableError) as refused:
            KombuBroker.publish(broker, message(n).body, "applicant.checked", queue=QUEUE,
                                message_id=f"m-{n}")
        today[f"m-{n}"] = str(refused.value)
    assert errors == today
    publisher.close()


def test_a_failure_that_is_not_the_broker_being_away_reaches_every_caller_as_it_was():
    broker = HeldBroker()
    broker.refusal = ValueError("a body the broker cannot take")
    broker.go.set()
    publisher = GroupPublisher(broker)
    with pytest.raises(ValueError, match="cannot take"):
        publisher.publish([message(0)])
    assert broker.queued() == []
    publisher.close()


def test_close_publishes_what_waits_and_refuses_more():
    broker = HeldBroker()
    publisher = GroupPublisher(broker)
    done: list[str] = []

    def caller(n: int) -> None:
        publisher.publish([message(n)])
        done.append(f"m-{n}")

    first = threading.Thread(target=caller, args=(0,))
    first.start()
    assert broker.entered.acquire(timeout=5)
    behind = [threading.Thread(target=caller, args=(n,)) for n in (1, 2)]
    for thread in behind:
        thread.start()
    wait_until(lambda: waiting(publisher) == 2, "two callers waiting")
    closing = threading.Thread(target=publisher.close)
    closing.start()
    wait_until(lambda: publisher._closed, "the publisher closing")
    with pytest.raises(RecoverableError, match="m-9"):
        publisher.publish([message(9)])
    broker.go.set()
    closing.join(10)
    for thread in [first, *behind]:
        thread.join(10)
    assert sorted(done) == ["m-0", "m-1", "m-2"] and len(broker.queued()) == 3
    assert not closing.is_alive()
