"""Taking a batch from a queue a writer thread serves: what waits now goes together.

The store's group writer and the request publisher (``core.broker.grouped``) each
take the first item their thread waited for and whatever else is queued at that
moment, up to a limit, and do it in one transaction or one confirm wait. ``None``
on the queue asks the thread to stop: it is put back for the next round, so the
batch taken with it still goes out first.
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def take_batch(source: queue.SimpleQueue[T | None], first: T, limit: int, *,
               size: Callable[[T], int] = lambda _item: 1) -> list[T]:
    """``first`` and what ``source`` holds now, until the sizes reach ``limit``."""
    batch, taken = [first], size(first)
    while taken < limit:
        try:
            more = source.get_nowait()
        except queue.Empty:
            break
        if more is None:
            source.put(None)  # this batch first, then stop
            break
        batch.append(more)
        taken += size(more)
    return batch
