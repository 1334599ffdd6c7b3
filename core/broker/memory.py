"""``InMemoryBroker``: the test double beside the real broker.

Queues live in this process and vanish with it: for unit tests and benchmarks,
never for a hub that must not lose messages. ``deliver_one()`` lets a test
drive delivery from its own thread, one message at a time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence

from .base import Broker, Delivery, Handler, topic_matches

__all__ = ["InMemoryBroker"]

log = logging.getLogger("bdchub.broker")


class InMemoryBroker(Broker):
    """Queues in this process. ``deliver_one()`` hands one message to its handler
    in the caller's thread; ``consume`` alone does nothing until ``start_thread()``."""

    def __init__(self, url: str = "memory://"):
        self.url = url
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._queues: dict[str, deque[tuple[bytes, bool]]] = {}
        self._patterns: dict[str, tuple[str, ...]] = {}
        self._handlers: dict[str, Handler] = {}
        self._prefetch: dict[str, int] = {}
        self._unacked: dict[str, int] = {}
        self._thread: threading.Thread | None = None
        self._running = False
        self.published = 0

    def declare_queue(self, name: str, patterns: Sequence[str], *, ordered: bool = False) -> None:
        with self._lock:
            self._queues.setdefault(name, deque())
            self._unacked.setdefault(name, 0)
            self._patterns[name] = tuple(patterns)

    def publish(self, body: bytes, routing_key: str, *, queue: str | None = None,
                message_id: str = "") -> None:
        with self._cond:
            if queue is not None:
                targets = [queue] if queue in self._queues else []
            else:
                targets = [q for q, pats in self._patterns.items()
                           if any(topic_matches(p, routing_key) for p in pats)]
            for q in targets:
                self._queues[q].append((body, False))
            self.published += 1
            self._cond.notify_all()

    def consume(self, handlers: Mapping[str, Handler], prefetch: Mapping[str, int]) -> None:
        with self._lock:
            self._handlers.update(handlers)
            self._prefetch.update(prefetch)

    def cancel(self, queue: str) -> None:
        with self._lock:
            self._handlers.pop(queue, None)

    def _take(self) -> tuple[Delivery, Handler] | None:
        # The handler is taken with the message: one cancelled a moment later
        # still gets what it was handed (the hub puts it back).
        with self._lock:
            for name, handler in self._handlers.items():
                q = self._queues.get(name)
                limit = self._prefetch.get(name) or 0
                if q and (not limit or self._unacked[name] < limit):
                    body, redelivered = q.popleft()
                    self._unacked[name] += 1
                    return Delivery(body, name, redelivered, self._settler(name, body)), handler
        return None

    def _settler(self, name: str, body: bytes) -> Callable[[str], None]:
        def settle(op: str) -> None:
            with self._cond:
                self._unacked[name] -= 1
                if op == "requeue":
                    self._queues[name].appendleft((body, True))
                self._cond.notify_all()
        return settle

    def deliver_one(self) -> bool:
        """Hand one ready message to its handler, here. False when none is ready."""
        taken = self._take()
        if taken is None:
            return False
        delivery, handler = taken
        handler(delivery)
        return True

    def start_thread(self) -> None:
        """Deliver from a background thread (handlers must not block it for long)."""
        if self._thread is not None:
            return
        self._running = True
        self._thread = threading.Thread(target=self._loop, name="memory-broker", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while self._running:
            taken = self._take()
            if taken is None:
                with self._cond:
                    self._cond.wait(0.05)
                continue
            delivery, handler = taken
            try:
                handler(delivery)
            except Exception:  # a handler bug must not stop delivery
                log.exception("handler failed")
                delivery.reject(requeue=True)

    def stop(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        self._running = False
        if self._thread is not None:
            self._thread.join(max(0.0, deadline - time.monotonic()))
            self._thread = None
        with self._cond:
            while self.in_flight and time.monotonic() < deadline:
                self._cond.wait(0.05)

    def close(self) -> None:
        self._running = False

    def queue_size(self, name: str) -> int | None:
        with self._lock:
            q = self._queues.get(name)
            return len(q) if q is not None else None

    def peek(self, name: str) -> list[bytes]:
        """The ready messages of ``name``, oldest first, left in the queue (tests)."""
        with self._lock:
            return [body for body, _r in self._queues.get(name, ())]

    @property
    def in_flight(self) -> int:
        with self._lock:
            return sum(self._unacked.values())

    def pending(self) -> int:
        """Ready plus unacknowledged messages across every queue."""
        with self._lock:
            return sum(len(q) for q in self._queues.values()) + sum(self._unacked.values())
