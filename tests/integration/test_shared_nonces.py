"""Anti-replay across hubs: every hub that opens the same store refuses a signed
request another one already took, whether they are processes of one `hub run`
or separate `hub run`s (issue #10, finding 4). On the embedded SQLite store and
on PostgreSQL."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from bdchub.routes.runtime import Hub
from bdchub.web.app import create_app
from bdchub.web.metrics import InboundMetrics
from bdchub.web.signing import StoreNonceStore
from tests.integration.test_reliability import _pg_database
from tests.web.conftest import APPLICATION, SignedClient, config


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return _pg_database(request.getfixturevalue("postgres_url"))


@pytest.fixture
def two_hubs(store_url):
    """Two hubs assembled from the same config, as two `hub run`s on one store."""
    hubs = [Hub.from_config(config(), broker="memory://", store=store_url) for _ in range(2)]
    yield hubs
    for hub in hubs:
        hub.close()


def test_a_signed_request_taken_by_one_hub_is_a_replay_at_another_on_the_same_store(two_hubs):
    one, other = (create_app(hub, config(), metrics=InboundMetrics(CollectorRegistry()))
                  for hub in two_hubs)

    first = SignedClient(one).post("/api/v1/applications", APPLICATION, nonce="nonce-two-hubs")
    again = SignedClient(other).post("/api/v1/applications", APPLICATION, nonce="nonce-two-hubs")

    assert first.status_code == 202, first.get_json()
    assert again.status_code == 401, again.get_json()  # the duplicate application is refused
    assert again.get_json()["error"]["code"] == "replayed_nonce"


def test_a_hub_on_an_in_memory_store_keeps_its_nonces_to_itself():
    hub = Hub.from_config(config(), broker="memory://", store="sqlite://")
    try:
        app = create_app(hub, config(), metrics=InboundMetrics(CollectorRegistry()))
        assert not isinstance(app.nonces, StoreNonceStore)  # no store write per request
        first = SignedClient(app).post("/api/v1/applications", APPLICATION, nonce="nonce-alone")
        again = SignedClient(app).post("/api/v1/applications", APPLICATION, nonce="nonce-alone")
        assert (first.status_code, again.status_code) == (202, 401)
    finally:
        hub.close()
