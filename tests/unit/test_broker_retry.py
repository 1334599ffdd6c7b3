"""The broker's retry: Backoff waits, giving up at its deadline or at once when stopped."""

from __future__ import annotations

import threading

from bdchub.core.backoff import Backoff
from bdchub.core.broker.retry import Retry

BACKOFF = Backoff(first=0.1, cap=2.0)


class FakeTime:
    """A clock that moves only when the retry waits; ``stop_after`` waits set ``stop``."""

    def __init__(self, stop: threading.Event, stop_after: int | None = None):
        self.now = 1000.0
        self.waits: list[float] = []
        self._stop = stop
        self._stop_after = stop_after

    def clock(self) -> float:
        return self.now

    def wait(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds
        if self._stop_after is not None and len(self.waits) >= self._stop_after:
            self._stop.set()


def _retry(timeout=None, stop_after=None, backoff=BACKOFF):
    stop = threading.Event()
    fake = FakeTime(stop, stop_after)
    return Retry(backoff, stop=stop, timeout=timeout, clock=fake.clock, wait=fake.wait), fake, stop


def test_waits_follow_the_hubs_backoff_formula():
    retry, fake, _stop = _retry()
    assert all(retry.again(OSError("refused")) for _ in range(7))
    assert fake.waits == [BACKOFF.delay(n) for n in range(1, 8)]
    assert fake.waits == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0]


def test_a_reset_after_a_success_starts_again_from_the_first_wait():
    retry, fake, _stop = _retry()
    for _ in range(4):
        retry.again(OSError("refused"))
    retry.reset()
    retry.again(OSError("refused"))
    assert fake.waits[-1] == 0.1


def test_gives_up_instead_of_waiting_past_the_deadline():
    retry, fake, _stop = _retry(timeout=1.0)
    answers = [retry.again(OSError("refused")) for _ in range(4)]
    # 0.1 + 0.2 + 0.4 = 0.7 s waited; the next 0.8 s would end after 1.0 s.
    assert answers == [True, True, True, False]
    assert fake.waits == [0.1, 0.2, 0.4]


def test_a_zero_timeout_means_a_single_attempt():
    retry, fake, _stop = _retry(timeout=0.0)
    assert retry.again(OSError("refused")) is False
    assert fake.waits == []


def test_without_a_timeout_it_retries_until_stopped():
    retry, fake, _stop = _retry(stop_after=30)
    tries = 1
    while retry.again(OSError("refused")):
        tries += 1
        assert tries < 100
    assert len(fake.waits) == 30 and tries == 30


def test_a_stopped_retry_gives_up_at_once_without_waiting():
    retry, fake, stop = _retry(timeout=120.0)
    stop.set()
    assert retry.again(OSError("refused")) is False
    assert fake.waits == []


def test_a_stop_during_the_wait_ends_the_retry():
    retry, fake, _stop = _retry(timeout=120.0, stop_after=1)
    assert retry.again(OSError("refused")) is False
    assert fake.waits == [0.1]


def test_by_default_it_waits_on_the_stop_event_so_a_stop_cuts_the_wait_short():
    class StopDuringWait(threading.Event):
        def __init__(self):
            super().__init__()
            self.waits: list[float] = []

        def wait(self, timeout=None):
            self.waits.append(timeout)
            self.set()  # as kill() from another thread would
            return super().wait(timeout)

    stop = StopDuringWait()
    retry = Retry(Backoff(first=3600.0, cap=3600.0), stop=stop, timeout=7200.0)
    assert retry.again(OSError("refused")) is False
    assert stop.waits == [3600.0]


def test_the_warning_names_the_error_and_the_wait(caplog):
    retry, _fake, _stop = _retry()
    with caplog.at_level("WARNING", logger="bdchub.broker"):
        retry.again(OSError("refused"), "publish failed (%s); retrying in %.1fs")
    assert caplog.messages == ["publish failed (refused); retrying in 0.1s"]
