"""Singleton inputs under a lease (app.singletons): of the processes sharing one
store, the one holding a singleton's lease runs it; the others take over when it
stops or dies; the holder shows in ``bdchub_singleton_held`` and the logs.

Two ``hub run`` processes (SQLite, and RabbitMQ + PostgreSQL) with one killed are
in tests/integration/test_singletons.py.
"""

from __future__ import annotations

import logging
import time

import pytest
from prometheus_client import CollectorRegistry

from bdchub.app.inputs import Background
from bdchub.app.service import HubService
from bdchub.app.singletons import Leased, SingletonMetrics
from bdchub.core.leases import Leases
from bdchub.core.store import Store

TENANT = "320684"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Watch:
    """A singleton's target: counts its starts and stops."""

    made: list[Watch] = []

    def __init__(self) -> None:
        self.running = False
        self.starts = self.stops = 0
        Watch.made.append(self)

    def start(self) -> None:
        self.running, self.starts = True, self.starts + 1

    def stop(self, timeout: float = 10.0) -> None:
        self.running, self.stops = False, self.stops + 1


@pytest.fixture
def shared(tmp_path):
    """Two processes' views of one store file, on one clock of the test's own."""
    clock = Clock()
    stores = [Store(f"sqlite:///{tmp_path / 'store.db'}") for _ in range(2)]
    yield clock, [Leases(s.engine, clock=clock) for s in stores]
    for s in stores:
        s.close()


def leased(leases: Leases, clock: Clock, registry: CollectorRegistry) -> Leased:
    return Leased(Background("bridge.ferry_inbox", Watch(), build=Watch), leases,
                  metrics=SingletonMetrics(registry), clock=clock)


def held(registry: CollectorRegistry) -> float | None:
    return registry.get_sample_value("bdchub_singleton_held", {"name": "bridge.ferry_inbox"})


def test_the_holder_runs_the_singleton_and_the_metric_says_which(shared, caplog):
    clock, (one, two) = shared
    first_metrics, second_metrics = CollectorRegistry(), CollectorRegistry()
    first, second = leased(one, clock, first_metrics), leased(two, clock, second_metrics)
    with caplog.at_level(logging.INFO, logger="bdchub.singletons"):
        first.keeper.step()
        second.keeper.step()
    assert first.target.running and not second.target.running
    assert (held(first_metrics), held(second_metrics)) == (1.0, 0.0)
    taken = [r.getMessage() for r in caplog.records]
    assert len(taken) == 1 and "bridge.ferry_inbox" in taken[0]
    assert first.keeper.holder in taken[0]


def test_a_clean_stop_hands_the_singleton_over_at_the_next_attempt(shared, caplog):
    clock, (one, two) = shared
    first_metrics, second_metrics = CollectorRegistry(), CollectorRegistry()
    first, second = leased(one, clock, first_metrics), leased(two, clock, second_metrics)
    first.keeper.step()
    second.keeper.step()
    with caplog.at_level(logging.INFO, logger="bdchub.singletons"):
        first.stop(timeout=5)
        second.keeper.step()
    assert first.target.stops == 1 and not first.target.running
    assert second.target.running
    assert (held(first_metrics), held(second_metrics)) == (0.0, 1.0)
    lost, taken = [r.getMessage() for r in caplog.records]
    assert first.keeper.holder in lost and second.keeper.holder in taken


def test_a_holder_cut_off_past_its_lease_stops_and_a_later_take_runs_a_new_target(shared):
    clock, (one, two) = shared
    first, second = leased(one, clock, CollectorRegistry()), leased(two, clock,
                                                                     CollectorRegistry())
    first.keeper.step()
    before = first.target
    clock.now += first.keeper.ttl  # first was paused past its lease: second takes it
    second.keeper.step()
    assert second.target.running and before.running
    first.keeper.step()  # first wakes up and hears it
    assert not before.running and before.stops == 1
    second.stop(timeout=5)
    # The round that heard of the loss may have stopped waiting for its question
    # (the fence had passed) and takes its answer, "another holds it", now; the
    # round after asks again and takes the lease.
    first.keeper.step()
    first.keeper.step()
    assert first.target is not before and first.target.running and not before.running


def test_two_hub_services_on_one_store_poll_the_department_from_one_only(tmp_path):
    """Two processes' services, here in one test process: one store file, each its own
    connector to the court; only one of them polls, and when it stops the other does."""
    from bdchub.routes.runtime import Hub

    config = {"tenant": TENANT, "routes": {},
              "connectors": {"court": {"type": "fake", "responses": {
                  "PullJudgments": {"Order": [], "NextCursor": ""}}}},
              "pollers": {"court_orders": {
                  "connector": "court", "operation": "PullJudgments", "every": 0.05,
                  "cursor": {"param": "Cursor", "next": "NextCursor"}, "items": "Order",
                  "key": "OrderId", "publish": "court.order_received"}}}
    services = []
    for _ in range(2):
        hub = Hub.from_config(config, broker="memory://", store=f"sqlite:///{tmp_path / 's.db'}")
        services.append(HubService(config, hub, web=False, metrics_listener=False))
    first, second = services

    def polls(service: HubService) -> int:
        return len([c for c in service.hub.connectors["court"].inner.calls
                    if c[0] == "PullJudgments"])

    def wait(predicate, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.05)

    try:
        first.start()
        second.start()
        wait(lambda: polls(first) >= 5)
        assert polls(second) == 0
        assert first.pollers is not None and second.pollers is not None
        first.stop(timeout=5)
        wait(lambda: polls(second) >= 3)  # within one attempt of the release
        stopped_at = polls(first)
        wait(lambda: polls(second) >= 6)
        assert polls(first) == stopped_at
    finally:
        for service in services:
            service.stop(timeout=5)


def test_hub_status_names_the_process_holding_each_singleton(capturing):
    from bdchub.app.status import status

    hub = capturing.hub
    leases = Leases(hub.store.engine)
    keeper = Leased(Background("pollers", Watch()), leases,
                    metrics=SingletonMetrics(CollectorRegistry())).keeper
    keeper.step()
    try:
        doc = status(hub, [], time.time(), leases=leases.held())
    finally:
        keeper.stop()
    host, pid, _random = keeper.holder.split(":")
    [pollers] = doc["singletons"]
    assert (pollers["name"], pollers["host"], pollers["pid"], pollers["held"]) == (
        "pollers", host, int(pid), True)
    assert 0 < pollers["expires_in"] <= keeper.ttl
    assert status(hub, [], time.time(), leases=leases.held())["singletons"] == []  # released
