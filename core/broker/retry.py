"""The broker's one way of trying again: ``Backoff`` waits, until a deadline or a stop.

Declaring a queue, publishing and reconnecting the consumer all meet a broker
that is restarting or out of reach; each attempt loop asks a ``Retry`` after
every failure whether to go on. The wait is on the broker's stop event, so a
killed (or stopped) broker gives up at once instead of sleeping out the delay.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ..backoff import Backoff

__all__ = ["Retry"]

log = logging.getLogger("bdchub.broker")


class Retry:
    """Whether, and after what wait, to try one operation again.

    Call ``again(error)`` after each failed attempt. It answers False at once
    when ``stop`` is set or when the next wait would end more than ``timeout``
    seconds after the ``Retry`` was made (``None``: no deadline); otherwise it
    waits ``backoff.delay(failures)`` on ``stop`` and answers True unless
    ``stop`` was set meanwhile. ``reset()`` after an attempt that succeeded
    without ending the operation (a consumer that connected, to lose the
    connection later), so the next failure waits the first delay again.
    ``clock`` and ``wait`` stand in for time in tests.
    """

    def __init__(self, backoff: Backoff, *, stop: threading.Event,
                 timeout: float | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 wait: Callable[[float], object] | None = None):
        self.backoff = backoff
        self.failures = 0
        self._stop = stop
        self._clock = clock
        self._wait = wait or stop.wait
        self._deadline = None if timeout is None else clock() + timeout

    def again(self, error: BaseException, warning: str = "") -> bool:
        """Whether to try again after ``error``; ``warning`` (a log format taking
        the error and the delay) is logged before waiting."""
        if self._stop.is_set():
            return False
        self.failures += 1
        delay = self.backoff.delay(self.failures)
        if self._deadline is not None and self._clock() + delay > self._deadline:
            return False
        if warning:
            log.warning(warning, error, delay)
        self._wait(delay)
        return not self._stop.is_set()

    def reset(self) -> None:
        self.failures = 0
