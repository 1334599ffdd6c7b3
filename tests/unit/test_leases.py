"""Leases (core.leases): one holder at a time for a named singleton among the
processes sharing one store, taken over when the holder's lease expires, given
up on a clean stop, and fenced by expiry when the holder cannot renew.

Time is a clock of the test's own (the store's and the keeper's alike), so
nothing waits for a lease to run out. The race of contenders runs threads on
one SQLite file here and on PostgreSQL in tests/integration/test_singletons.py.
"""

from __future__ import annotations

import threading

import pytest

from bdchub.core.errors import StoreError
from bdchub.core.leases import LeaseKeeper, Leases, holder_id
from bdchub.core.store import Store

TTL = 9.0


class Clock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    yield store
    store.close()


@pytest.fixture
def leases(store, clock) -> Leases:
    return Leases(store.engine, clock=clock)


def row(leases: Leases, name: str = "pollers") -> dict:
    return next(r for r in leases.held() if r["name"] == name)


def test_a_free_lease_is_taken_and_another_holder_is_refused_until_it_expires(leases, clock):
    assert leases.take("pollers", "a", TTL)
    assert not leases.take("pollers", "b", TTL)
    clock.now += TTL - 0.1
    assert not leases.take("pollers", "b", TTL)
    assert row(leases)["holder"] == "a"


def test_a_renewal_moves_the_expiry_on_and_keeps_the_time_it_was_taken(leases, clock):
    assert leases.take("pollers", "a", TTL)
    clock.now += 3
    assert leases.take("pollers", "a", TTL)
    lease = row(leases)
    assert lease["expires_at"] == 1003.0 + TTL
    assert lease["taken_at"] == 1000.0
    assert lease["held"] and lease["expires_in"] == TTL


def test_an_expired_lease_is_taken_over_and_its_old_holder_cannot_renew_it(leases, clock):
    assert leases.take("pollers", "a", TTL)
    clock.now += TTL
    assert not row(leases)["held"]
    assert leases.take("pollers", "b", TTL)
    assert not leases.take("pollers", "a", TTL)
    lease = row(leases)
    assert (lease["holder"], lease["taken_at"]) == ("b", 1000.0 + TTL)


def test_only_the_holder_releases_and_then_another_takes_it_at_once(leases):
    assert leases.take("pollers", "a", TTL)
    assert not leases.release("pollers", "b")
    assert not leases.take("pollers", "b", TTL)
    assert leases.release("pollers", "a")
    assert leases.take("pollers", "b", TTL)


def test_each_name_is_a_lease_of_its_own(leases):
    assert leases.take("pollers", "a", TTL)
    assert leases.take("reconciler", "b", TTL)
    assert [(r["name"], r["holder"]) for r in leases.held()] == [("pollers", "a"),
                                                                 ("reconciler", "b")]


def test_the_holder_id_names_the_host_and_the_process_and_differs_per_start(store):
    import os
    import socket

    first, second = holder_id(), holder_id()
    assert first != second
    assert first.startswith(f"{socket.gethostname()}:{os.getpid()}:")
    leases = Leases(store.engine)  # the store's own clock
    assert leases.take("pollers", first, TTL)
    lease = row(leases)
    assert (lease["host"], lease["pid"], lease["held"]) == (socket.gethostname(), os.getpid(),
                                                            True)
    assert 0 < lease["expires_in"] <= TTL


def _take(leases: Leases, holder: str, barrier: threading.Barrier, won: list[str]) -> None:
    barrier.wait(timeout=30)
    if leases.take("pollers", holder, TTL):
        won.append(holder)


def contend(make_leases, rounds: int = 15, contenders: int = 6) -> list[list[str]]:
    """Each round: the lease has expired and ``contenders`` threads, each with its own
    connection to the store, try to take it at the same moment. The winners, by round."""
    clock = Clock()
    each = [make_leases(clock) for _ in range(contenders)]
    winners: list[list[str]] = []
    for _round in range(rounds):
        clock.now += TTL + 1  # whoever holds it, it has expired
        barrier = threading.Barrier(contenders)
        won: list[str] = []
        threads = [threading.Thread(target=_take, args=(each[i], f"w{i}", barrier, won))
                   for i in range(contenders)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        winners.append(won)
    return winners


def contend_on(url: str) -> list[list[str]]:
    """``contend`` with each contender on a store of its own at ``url``."""
    stores: list[Store] = []

    def make(clock: Clock) -> Leases:
        stores.append(Store(url))
        return Leases(stores[-1].engine, clock=clock)

    try:
        return contend(make)
    finally:
        for s in stores:
            s.close()


def test_contenders_at_the_same_moment_never_both_take_it_on_one_sqlite_file(tmp_path):
    winners = contend_on(f"sqlite:///{tmp_path / 'shared.db'}")
    assert all(len(won) == 1 for won in winners), winners


# -- the keeper: take, renew, fence, take over, release --------------------------------


class Singleton:
    """What a keeper runs: records when it was started and stopped, by the clock."""

    def __init__(self, clock: Clock):
        self.clock = clock
        self.events: list[tuple[str, float]] = []

    def start(self) -> None:
        self.events.append(("start", self.clock.now))

    def stop(self, reason: str) -> None:
        self.events.append(("stop", self.clock.now))
        self.reason = reason

    @property
    def running(self) -> bool:
        return bool(self.events) and self.events[-1][0] == "start"


def keeper(leases: Leases, clock: Clock, name: str = "a") -> tuple[LeaseKeeper, Singleton]:
    singleton = Singleton(clock)
    return LeaseKeeper(leases, "pollers", holder=name, ttl=TTL, clock=clock,
                       on_take=singleton.start, on_lose=singleton.stop), singleton


def test_one_keeper_runs_the_singleton_and_the_other_waits(leases, clock):
    a, run_a = keeper(leases, clock, "a")
    b, run_b = keeper(leases, clock, "b")
    assert a.step() == pytest.approx(TTL / 3)  # the next renewal
    assert b.step() == pytest.approx(1.0)      # the next attempt
    assert run_a.running and a.holding
    assert not run_b.events and not b.holding


def test_a_holder_that_renews_keeps_it_round_after_round(leases, clock):
    a, run_a = keeper(leases, clock, "a")
    b, run_b = keeper(leases, clock, "b")
    for _round in range(10):
        clock.now += a.step()
        b.step()
    assert run_a.events == [("start", 1000.0)]
    assert not run_b.events


def test_the_holder_dies_and_another_takes_over_when_its_lease_expires(leases, clock):
    a, run_a = keeper(leases, clock, "a")
    b, run_b = keeper(leases, clock, "b")
    a.step()
    died = clock.now  # a is killed: it steps no more
    while not b.holding and clock.now < died + 3 * TTL:  # bounded
        clock.now += b.step()
    assert run_b.running
    taken = run_b.events[0][1]
    assert died + TTL <= taken <= died + TTL + 1.0  # within the TTL and one attempt


def test_a_clean_stop_stops_the_singleton_then_releases_so_another_takes_it_at_once(
        leases, clock):
    a, run_a = keeper(leases, clock, "a")
    b, run_b = keeper(leases, clock, "b")
    a.step()
    b.step()
    a.stop()
    assert run_a.events[-1][0] == "stop" and not a.holding
    assert leases.held() == []
    b.step()  # at the same moment
    assert run_b.running


class Failing(Leases):
    """A store cut off from this process after its first answer."""

    def __init__(self, inner: Leases, answer=None):
        self.inner = inner
        self.calls = 0
        self.answer = answer

    def take(self, name: str, holder: str, ttl: float = TTL) -> bool:
        self.calls += 1
        if self.calls == 1:
            return self.inner.take(name, holder, ttl)
        if self.answer is not None:
            self.answer.wait(timeout=30)  # hangs until the test lets it go
        raise StoreError("connection refused")

    def release(self, name: str, holder: str) -> bool:
        raise StoreError("connection refused")


def test_a_holder_that_cannot_renew_stops_its_singleton_before_its_lease_expires(leases, clock):
    a, run_a = keeper(Failing(leases), clock, "a")
    b, run_b = keeper(leases, clock, "b")
    a.step()
    for _round in range(20):  # bounded: the fence comes within the TTL
        if not a.holding:
            break
        clock.now += a.step()
        b.step()
    stopped = run_a.events[-1]
    assert stopped[0] == "stop" and "not renewed in time" in run_a.reason
    assert stopped[1] < row(leases)["expires_at"]  # stopped before anyone could take it
    assert not run_b.events  # and nobody did meanwhile
    clock.now = row(leases)["expires_at"]
    b.step()
    assert run_b.running and run_a.events[-1][0] == "stop"


def test_a_store_that_does_not_answer_stops_the_singleton_at_the_fence(leases, clock):
    answer = threading.Event()
    a, run_a = keeper(Failing(leases, answer), clock, "a")
    try:
        a.step()
        clock.now = a.valid_until - a.margin  # the renewal sent meanwhile hangs
        a.step()
        assert not a.holding and run_a.events[-1][0] == "stop"
        assert "did not answer" in run_a.reason
    finally:
        answer.set()
        a.kill()


def test_a_singleton_that_cannot_start_gives_the_lease_back(leases, clock):
    def broken() -> None:
        raise OSError("inbox folder not mounted")

    a = LeaseKeeper(leases, "pollers", holder="a", ttl=TTL, clock=clock, on_take=broken,
                    on_lose=lambda reason: None)
    with pytest.raises(OSError):
        a.step(raise_on_take=True)
    assert not a.holding and leases.held() == []
    b, run_b = keeper(leases, clock, "b")
    b.step()
    assert run_b.running
