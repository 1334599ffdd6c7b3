"""core.deferred_writes: records nobody waits for are written later, together, and
never dropped while the process lives."""

from __future__ import annotations

import threading

import pytest

from bdchub.core.deferred_writes import DeferredWrites


class Sink:
    """A write that can be held shut or made to fail."""

    def __init__(self):
        self.written: list[list[int]] = []
        self.open = threading.Event()
        self.open.set()
        self.failures = 0

    def __call__(self, records):
        self.open.wait(timeout=30)
        if self.failures:
            self.failures -= 1
            raise OSError("store away")
        self.written.append(list(records))

    @property
    def records(self):
        return [r for batch in self.written for r in batch]


def test_records_submitted_together_are_written_in_one_write():
    sink = Sink()
    writes = DeferredWrites(sink, name="test", within=60)  # the thread waits; flush writes
    for n in range(50):
        writes.submit(n)
    writes.flush()
    assert sink.written == [list(range(50))]
    writes.close()


def test_close_writes_what_is_left():
    sink = Sink()
    writes = DeferredWrites(sink, name="test", within=60)
    writes.submit(1)
    writes.submit(2)
    writes.close()
    assert sink.records == [1, 2]
    writes.submit(3)  # after close: kept for a flush, no thread started again
    writes.flush()
    assert sink.records == [1, 2, 3]


def test_a_failed_write_keeps_its_records_for_the_next():
    sink = Sink()
    sink.failures = 1
    writes = DeferredWrites(sink, name="test", within=60)
    writes.submit("a")
    with pytest.raises(OSError):
        writes.flush()
    assert writes.waiting == 1
    writes.submit("b")
    writes.flush()
    assert sink.records == ["a", "b"] and writes.waiting == 0
    writes.close()


def test_a_full_queue_makes_the_submitter_wait_instead_of_dropping():
    sink = Sink()
    sink.open.clear()  # the store is slow: nothing gets written for now
    writes = DeferredWrites(sink, name="test", within=0.01, capacity=2, batch=1)
    for n in range(3):  # the thread holds one, the queue two
        writes.submit(n)
    fourth = threading.Thread(target=writes.submit, args=(3,))
    fourth.start()
    fourth.join(timeout=1)
    waited = fourth.is_alive()
    sink.open.set()
    fourth.join(timeout=30)
    writes.close()
    assert waited
    assert sorted(sink.records) == [0, 1, 2, 3]
