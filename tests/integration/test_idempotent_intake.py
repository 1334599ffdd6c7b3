"""Idempotent intake across hubs (issue #11, item 4): every hub that opens the same
store knows what another one already accepted, so a platform's retry that lands on
another process or hub gets the first answer and is forwarded nowhere, and two
identical requests at two hubs at once are forwarded once. On the embedded SQLite
store and on PostgreSQL."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from prometheus_client import CollectorRegistry

from bdchub.routes.runtime import Hub
from bdchub.web.app import create_app
from bdchub.web.metrics import InboundMetrics
from tests.integration import test_shared_nonces
from tests.web.conftest import APPLICATION, APPOINTMENT, SignedClient, config

store_url = test_shared_nonces.store_url  # the same two stores: SQLite, and PostgreSQL


@pytest.fixture
def two_hubs(store_url, tmp_path, monkeypatch):
    """Two hubs assembled from the same config, as two `hub run`s on one store, each
    counting what it forwards."""
    monkeypatch.setenv("HUB_DATA_DIR", str(tmp_path / "data"))  # one data key, one audit log
    hubs = [Hub.from_config(config(), broker="memory://", store=store_url) for _ in range(2)]
    for hub in hubs:
        hub.forwarded = []
        hub.publish = _counting(hub)
    yield hubs
    for hub in hubs:
        hub.close()


def _counting(hub):
    publish = hub.publish

    def counted(envelope):
        publish(envelope)
        hub.forwarded.append(envelope.id)
    return counted


def clients(hubs):
    return [SignedClient(create_app(hub, config(), metrics=InboundMetrics(CollectorRegistry())))
            for hub in hubs]


def test_a_retry_at_another_hub_answers_the_first_answer_and_forwards_nothing(two_hubs):
    one, other = clients(two_hubs)

    first = one.post("/api/v1/appointments", APPOINTMENT, headers={"Idempotency-Key": "k-1"})
    again = other.post("/api/v1/appointments", APPOINTMENT, headers={"Idempotency-Key": "k-1"})

    assert first.status_code == again.status_code == 202, again.get_json()
    assert again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert [len(h.forwarded) for h in two_hubs] == [1, 0]


def test_an_application_sent_again_to_another_hub_is_known_by_its_business_number(two_hubs):
    one, other = clients(two_hubs)

    first = one.post("/api/v1/applications", APPLICATION)
    again = other.post("/api/v1/applications", APPLICATION)
    changed = other.post("/api/v1/applications",
                         {**APPLICATION, "submitted_at": "2024-05-01T09:31:00+08:00"})

    assert again.get_json()["id"] == first.get_json()["id"]
    assert changed.status_code == 409
    assert changed.get_json()["error"]["code"] == "business_no_reused"
    assert sum(len(h.forwarded) for h in two_hubs) == 1


def test_identical_requests_at_two_hubs_at_once_are_forwarded_once(two_hubs):
    copies = 6
    arrived: set[str] = set()
    gate = threading.Condition()
    for hub in two_hubs:
        _gate_records(hub, arrived, gate)
        _gate_publish(hub, lambda: len(arrived) >= copies, gate)
    apps = [create_app(hub, config(idempotency={"wait": 20}),
                       metrics=InboundMetrics(CollectorRegistry())) for hub in two_hubs]

    def post(i: int):
        return SignedClient(apps[i % 2]).post("/api/v1/appointments", APPOINTMENT,
                                              headers={"Idempotency-Key": "k-together"})

    with ThreadPoolExecutor(copies) as pool:
        answers = list(pool.map(post, range(copies)))

    assert len(arrived) == copies  # all of them were in before the first was forwarded
    forwarded = [i for h in two_hubs for i in h.forwarded]
    assert len(forwarded) == 1
    assert {a.status_code for a in answers} == {202}
    assert {a.get_json()["id"] for a in answers} == set(forwarded)


def _gate_records(hub, arrived, gate):
    store = hub.store

    class Counting:
        def __getattr__(self, name):
            return getattr(store, name)

        def claim_request(self, *a, **kw):
            with gate:
                arrived.add(kw["owner"])
                gate.notify_all()
            return store.claim_request(*a, **kw)

    hub.request_records = lambda: Counting()


def _gate_publish(hub, ready, gate):
    publish = hub.publish

    def gated(envelope):
        with gate:
            gate.wait_for(ready, timeout=20)
        publish(envelope)
    hub.publish = gated


def test_a_record_left_pending_by_a_dead_process_is_taken_over_after_its_lease(two_hubs):
    store = two_hubs[0].store
    other = two_hubs[1].store
    fields = {"tenant": "320684", "client": "county_window", "scope": "key",
              "fingerprint": "f" * 64, "lease": 300.0}

    assert store.claim_request("r1", owner="dead", now=1000.0, expires_at=87400.0,
                               **fields) is None
    held = other.claim_request("r1", owner="late", now=1200.0, expires_at=87600.0, **fields)
    taken = other.claim_request("r1", owner="late", now=1301.0, expires_at=87701.0, **fields)

    assert held["state"] == "pending" and held["owner"] == "dead"
    assert taken is None
    assert not store.settle_request("r1", "dead", message_id="m", answer="{}",
                                    expires_at=90000.0)  # too late: not its record now
    assert other.settle_request("r1", "late", message_id="m2", answer="{}", expires_at=90000.0)
    assert store.inbound_request("r1")["message_id"] == "m2"
