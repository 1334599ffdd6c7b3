"""Each tenant's messages find its own connectors and routes: 海门 calls its own
registration system, 如东 the province's shared one with the county as a
parameter, the hub's own code the shared default; a route a tenant replaces or
adds runs for that tenant's messages only."""

from __future__ import annotations

import copy

from prometheus_client import CollectorRegistry

from bdchub.core.envelope import Envelope
from bdchub.routes.middleware import MetricsMiddleware
from bdchub.routes.runtime import Hub

from .conftest import CONFIG, HUB, ID_A, ID_B, A, B, application


def _submit(hub, no: str, tenant: str, id_number: str) -> None:
    hub.send("application.submitted", application(no, tenant, id_number), tenant=tenant)


def test_each_tenants_connector_override_is_called_for_its_own_messages_only(hub, calls):
    _submit(hub, "A-1", A, ID_A)
    _submit(hub, "B-1", B, ID_B)
    _submit(hub, "H-1", HUB, ID_A)
    hub.run_until_idle()
    assert [(c[1], c[2], c[3]) for c in calls.of(f"legacy@{A}")] == [
        ("submit_application", A, "A-1")]
    assert [(c[1], c[2], c[3]) for c in calls.of("shared_djxt")] == [
        ("submit_shared", B, "B-1")]
    # A tenant with no override (here the hub's own code) gets the shared connector.
    assert [(c[1], c[2], c[3]) for c in calls.of("legacy")] == [
        ("submit_application", HUB, "H-1")]


def test_the_shared_system_gets_the_county_as_a_parameter(hub, calls):
    _submit(hub, "B-2", B, ID_B)
    hub.run_until_idle()
    [(_, _, _, _, payload)] = calls.of("shared_djxt")
    assert payload["county"] == B and payload["business_no"] == "B-2"


def test_a_route_a_tenant_adds_or_replaces_runs_for_that_tenant_only(hub, calls):
    _submit(hub, "A-3", A, ID_A)
    _submit(hub, "B-3", B, ID_B)
    hub.run_until_idle()
    assert [c[3] for c in calls.of("archive")] == ["B-3"]
    routes_of = {no: sorted({h["route"] for h in hub.trace(no)}) for no in ("A-3", "B-3")}
    assert routes_of == {"A-3": ["forward"], "B-3": [f"archive@{B}", f"forward@{B}"]}


def test_a_replaced_endpoint_route_is_picked_by_the_requests_tenant(calls):
    config = copy.deepcopy(CONFIG)
    query = copy.deepcopy(config["routes"]["own_properties_query"])
    query["steps"][0]["to"]["operation"] = "query_registry"
    config["tenants"][B]["routes"]["own_properties_query"] = query
    hub = Hub.from_config(config, broker="memory://", store="sqlite://",
                          connectors={n: calls.connector(n) for n in
                                      ("legacy", "shared_djxt", "archive", "gov",
                                       f"legacy@{A}")},
                          metrics=MetricsMiddleware(CollectorRegistry()))
    try:
        assert [e["route"] for e in hub.endpoints()].count("own_properties_query") == 1
        for tenant in (A, B):
            hub.run_sync("own_properties_query", Envelope(
                type="query.own_properties", tenant=tenant, body={"purpose": "x"}))
        assert [(c[0], c[1], c[2]) for c in calls.made] == [
            (f"legacy@{A}", "query_properties", A), ("shared_djxt", "query_registry", B)]
    finally:
        hub.kill()
