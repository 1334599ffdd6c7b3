"""What the hub asks of a message broker: the ``Broker`` interface, the
``Delivery`` a handler gets, and AMQP topic matching."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import NamedTuple

__all__ = ["Broker", "Delivery", "Handler", "Outbound", "topic_matches"]


@lru_cache(maxsize=4096)
def topic_matches(pattern: str, key: str) -> bool:
    """AMQP topic semantics: ``*`` is exactly one word, ``#`` zero or more."""
    return _match(tuple(pattern.split(".")), tuple(key.split(".")))


def _match(pat: tuple[str, ...], words: tuple[str, ...]) -> bool:
    if not pat:
        return not words
    head, rest = pat[0], pat[1:]
    if head == "#":
        return any(_match(rest, words[i:]) for i in range(len(words) + 1))
    if not words:
        return False
    return (head == "*" or head == words[0]) and _match(rest, words[1:])


class Delivery:
    """One received message. ``ack``/``reject`` may be called from any thread,
    once; later calls are ignored. ``dead_from``: on the broker's
    ``dead_letter_queue``, the queue the message exceeded its delivery limit on."""

    __slots__ = ("body", "queue", "redelivered", "dead_from", "_settle", "_done", "_lock")

    def __init__(self, body: bytes, queue: str, redelivered: bool,
                 settle: Callable[[str], None], *, dead_from: str = ""):
        self.body = body
        self.queue = queue
        self.redelivered = redelivered
        self.dead_from = dead_from
        self._settle = settle
        self._done = False
        self._lock = threading.Lock()

    def _once(self, op: str) -> None:
        with self._lock:
            if self._done:
                return
            self._done = True
        self._settle(op)

    def ack(self) -> None:
        self._once("ack")

    def reject(self, requeue: bool = True) -> None:
        self._once("requeue" if requeue else "drop")

    @property
    def settled(self) -> bool:
        return self._done


Handler = Callable[[Delivery], None]


class Outbound(NamedTuple):
    """One message for ``Broker.publish_many``: ``publish``'s arguments."""

    body: bytes
    routing_key: str
    queue: str | None = None
    message_id: str = ""


class Broker:
    """A message broker as the hub uses one.

    ``declare_queue``, ``publish`` and ``consume`` are what every broker must
    do. The rest are hooks with a safe default, overridden by a broker that
    has something to wait for, release or count.
    """

    url: str = ""
    #: The queue a broker moves a message to once it was handed out too often
    #: without an ack (RabbitMQ's quorum queues), for the hub to consume and record
    #: as a dead letter; None where the broker has no such limit.
    dead_letter_queue: str | None = None

    def declare_queue(self, name: str, patterns: Sequence[str], *, ordered: bool = False) -> None:
        """Make sure the durable queue ``name`` exists, bound to the topic exchange
        by message-type ``patterns`` and to the direct exchange by its own name
        (continuations, replays, parked messages and fallbacks go to one route only).

        ``ordered``: the queue's messages go to one consumer at a time however many
        workers consume it, so a route with ``concurrency: 1`` keeps their order
        (RabbitMQ's single active consumer, on quorum queues); a broker that cannot
        (classic queues, the embedded broker) ignores it."""
        raise NotImplementedError

    def publish(self, body: bytes, routing_key: str, *, queue: str | None = None,
                message_id: str = "") -> None:
        """Give ``body`` to every queue bound to ``routing_key``, or to ``queue`` alone.

        Returns only once the broker has the message, so the caller may forget
        it. A broker that can be out of reach retries until its publish timeout,
        then raises ``RecoverableError``. Safe to call from any thread.
        """
        raise NotImplementedError

    def publish_many(self, messages: Sequence[Outbound]) -> None:
        """``publish`` each of ``messages``; returns once the broker has them all.

        A broker that confirms publications waits for all of them together. On a
        failure any of them may have been published (and is published again by
        the caller's next attempt: the ids say it is the same message).
        One at a time by default."""
        for message in messages:
            self.publish(message.body, message.routing_key, queue=message.queue,
                         message_id=message.message_id)

    def consume(self, handlers: Mapping[str, Handler], prefetch: Mapping[str, int]) -> None:
        """Hand the messages of each queue in ``handlers`` to its handler on a
        background thread, at most ``prefetch[queue]`` unacknowledged at once.
        The handler settles each ``Delivery`` then or later, from any thread.
        Called again, even while consuming, it adds (or resumes) those queues."""
        raise NotImplementedError

    def cancel(self, queue: str) -> None:
        """Stop handing out the messages of ``queue`` and forget its handler, while
        the other queues go on (``hub reload`` swapping one route). Deliveries
        already handed out may still be settled; a message that reaches the
        consumer afterwards goes back to the queue. ``consume`` again resumes it.

        No-op by default: a broker that cannot stop one queue keeps delivering it,
        and the hub puts back what arrives for a stopped route.
        """

    def stop(self, timeout: float = 30.0) -> None:
        """Stop taking new deliveries; wait up to ``timeout`` for outstanding acks.

        No-op by default: a broker without a consumer thread has nothing to wait for.
        """

    def close(self) -> None:
        """Release connections. Idempotent; never raises.

        No-op by default: nothing is held.
        """

    def kill(self) -> None:
        """Drop everything now, acknowledging nothing more, as a killed process
        would (durability tests). Never raises.

        By default the same as ``close()``.
        """
        with contextlib.suppress(Exception):
            self.close()

    def ping(self, timeout: float = 2.0) -> None:
        """Raise (any error) unless the broker answers now: what ``/readyz`` asks.

        No-op by default: a broker in this process always answers.
        """

    def queue_size(self, name: str) -> int | None:
        """Messages ready in ``name`` (not counting unacknowledged), if known.

        ``None`` by default: a size is only informative.
        """
        return None

    @property
    def in_flight(self) -> int:
        """Deliveries handed to handlers and not settled yet; 0 where not counted."""
        return 0
