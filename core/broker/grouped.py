"""Publishes of concurrent requests, grouped: one ``Broker.publish_many`` for all that wait.

Why: a request/reply route that publishes (``Engine.run_sync``) published in a
thread of the server's, one message per transaction of the embedded broker (one
confirm round trip each on RabbitMQ), and that was half of such a request's
cost (issue #15). Here one publisher thread takes every message waiting when it
is free and hands them to the broker together: one transaction on the SQL
transport, one wait for RabbitMQ's confirms. A batch is what arrived while the
previous one was being published, so it grows with the load and never waits
for company: a lone request is published at once.

The promise is ``Broker.publish``'s: ``publish`` returns only once the broker
has the caller's messages, durably. A batch that fails (after the broker's own
retries) fails each of its callers: with ``RecoverableError`` naming the
caller's own message, in the caller's language, as a failed publish did; any
other error as it was. The waiting caller on the inbound server's event loop suspends its
greenlet only (``core.greenloop``), so the loop serves other requests meanwhile.
``close`` publishes what is waiting, then refuses more.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future

from .. import greenloop
from ..batches import take_batch
from ..errors import RecoverableError
from ..i18n import _
from .base import Broker, Outbound

__all__ = ["GroupPublisher"]

_Waiting = tuple[tuple[Outbound, ...], "Future[None]"]


class GroupPublisher:
    """One thread publishing, together, the messages its callers are waiting on."""

    #: Messages in one ``publish_many`` at most; what waits beyond goes in the next.
    MAX_BATCH = 256

    def __init__(self, broker: Broker):
        self.broker = broker
        self._queue: queue.SimpleQueue[_Waiting | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False

    def publish(self, messages: Sequence[Outbound]) -> None:
        """Publish ``messages`` with whatever other callers publish meanwhile; returns
        once the broker has them. Raises what the batch's publish raised."""
        if not messages:
            return
        future = self.enqueue(messages)
        try:
            greenloop.result(future)
        except RecoverableError as exc:
            # Said here, in the caller's context (its language), about its own message.
            cause = exc.__cause__ or exc
            raise RecoverableError(_("broker unavailable, message {id} not published: {error}",
                                     id=messages[0].message_id, error=cause)) from cause

    def enqueue(self, messages: Sequence[Outbound]) -> Future[None]:
        """``messages`` to be published; the future answers once the broker has them."""
        future: Future[None] = Future()
        with self._lock:
            if self._closed:
                raise RecoverableError(_("the hub is stopping: message {id} not published",
                                         id=messages[0].message_id))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="group-publisher",
                                                daemon=True)
                self._thread.start()
            self._queue.put((tuple(messages), future))
        return future

    def close(self, timeout: float = 30.0) -> None:
        """Publish what is waiting (up to ``timeout``), then refuse more. Idempotent."""
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            self._publish(take_batch(self._queue, item, self.MAX_BATCH,
                                     size=lambda waiting: len(waiting[0])))

    def _publish(self, batch: list[_Waiting]) -> None:
        # Running: a caller that gives up now (a cancelled request) can no longer
        # cancel its future, and its messages are published all the same, as a
        # publish already under way was before.
        answering = [future for _m, future in batch if future.set_running_or_notify_cancel()]
        try:
            self.broker.publish_many([m for messages, _f in batch for m in messages])
        except BaseException as exc:  # noqa: BLE001 - handed to every caller
            for future in answering:
                future.set_exception(exc)
            return
        for future in answering:
            future.set_result(None)

