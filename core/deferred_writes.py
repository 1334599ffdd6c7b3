"""Store writes nobody waits for: written by a thread of their own, together, soon.

A request/reply route's trace hops (``Store.defer``) are the hub's record of
what it did, read by ``hub trace``, the console and the interface-call log, not
by the client that is waiting for the answer. Writing them in the request made
every request of a case wait for a SQLite transaction (and, with several
processes on one store, for another process's lock): issue #15 measured half
the throughput. Here a request puts them in a bounded queue and goes on; one
thread per store takes what has gathered and writes it in one transaction at
most ``within`` seconds after the first of it arrived.

What this keeps, and what it does not:

- Nothing is dropped while the process lives: a full queue makes the request
  wait for room (back-pressure, off the event loop), a write that fails is kept
  and tried again, and ``close`` (the hub stopping, SIGTERM) writes what is left.
- A process killed outright (kill -9, a crash, power) loses the hops of its
  last ``within`` seconds. They were never part of the answer: a request/reply
  route's trace was already written after the run and not recorded when the
  store failed (``Engine.run_sync``). What a client is promised stays written
  before it is answered (progress, verification records, idempotency records
  and nonces).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from . import greenloop
from .i18n import _

log = logging.getLogger("bdchub.store")

T = TypeVar("T")

#: Seconds from the first waiting record to its write.
WITHIN = 0.1
#: Records a queue holds before a request waits for room.
CAPACITY = 10_000
#: Records written in one transaction at most.
BATCH = 200


class DeferredWrites(Generic[T]):
    """Records handed to ``write`` (a list at a time) by a thread of their own."""

    def __init__(self, write: Callable[[Sequence[T]], None], *, name: str,
                 within: float = WITHIN, capacity: int = CAPACITY, batch: int = BATCH,
                 retry: float = 1.0):
        self._write = write
        self.name = name
        self.within = within
        self.batch = batch
        self.retry = retry
        self._queue: queue.Queue[T] = queue.Queue(maxsize=capacity)
        # Records taken from the queue and not written yet (a failed write keeps them).
        self._pending: list[T] = []
        self._writing = threading.Lock()  # one write at a time: the thread's or flush's
        self._state = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def submit(self, record: T) -> None:
        """Write ``record`` within ``within`` seconds; waits only when the queue is full."""
        self._start()
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            # On the inbound server's loop the wait for room is a thread's, not the loop's.
            greenloop.blocking(self._queue.put, record)

    def flush(self) -> None:
        """Write everything submitted so far, now (raises what the write raised)."""
        with self._writing:
            self._take(self._queue.qsize() + len(self._pending))
            while self._pending:
                self._write_pending()

    def close(self) -> None:
        """Stop the thread and write what is left; a store that fails now loses it (logged)."""
        self._stop.set()
        with self._state:
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=30)
        try:
            self.flush()
        except Exception as exc:  # noqa: BLE001 - closing goes on; say what is lost
            log.error(_("{name}: {count} deferred records not written at close: {error}",
                        name=self.name, count=self.waiting, error=exc))

    @property
    def waiting(self) -> int:
        """Records submitted and not written yet."""
        return self._queue.qsize() + len(self._pending)

    # -- the thread -----------------------------------------------------------------
    def _start(self) -> None:
        if self._thread is not None or self._stop.is_set():
            return
        with self._state:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                first = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            # Gather what arrives with it: one transaction for many requests.
            deadline = time.monotonic() + self.within
            with self._writing:
                self._pending.append(first)
            while not self._stop.is_set() and time.monotonic() < deadline \
                    and self.waiting < self.batch:
                time.sleep(min(0.01, max(0.0, deadline - time.monotonic())))
            try:
                with self._writing:
                    self._take(self.batch - len(self._pending))
                    self._write_pending()
            except Exception as exc:  # noqa: BLE001 - kept; the next round tries again
                log.warning(_("{name}: {count} deferred records not written yet, trying "
                              "again: {error}", name=self.name, count=self.waiting,
                              error=exc))
                self._stop.wait(self.retry)

    def _take(self, n: int) -> None:
        for _n in range(max(0, n)):
            try:
                self._pending.append(self._queue.get_nowait())
            except queue.Empty:
                return

    def _write_pending(self) -> None:
        chunk = self._pending[:self.batch]
        self._write(chunk)
        del self._pending[:len(chunk)]
