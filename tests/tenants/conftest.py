"""A hub of two counties in one process: 海门 (320684, its own registration
system) and 如东 (320623, the province's shared system with the county as a
parameter, one route of its own and one replaced), under 南通 (320600), with
the inbound API and the console on it. Each county has a window, a peer hub and
an operator; the tests act as county A against county B."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from bdchub.connectors.fake import FakeConnector
from bdchub.routes.middleware import MetricsMiddleware
from bdchub.routes.runtime import Hub
from bdchub.schemas.formats import resident_id_check_char
from bdchub.web.app import create_app
from bdchub.web.metrics import InboundMetrics
from tests.console.test_messages import Audits
from tests.routes.helpers import Clock, Sleeps, validator
from tests.web.conftest import SignedClient

HUB = "320600"  # 南通市: the hub's own code
A = "320684"    # 海门
B = "320623"    # 如东
ID_A = "11010519900101123" + resident_id_check_char("11010519900101123")
ID_B = "32062319880505002" + resident_id_check_char("32062319880505002")
SECRET = "tenant-test-secret-0123456789abcd"
KEYS = {"window_a": "wa", "window_b": "wb", "hub_a": "ha", "province": "pv"}


def _client(key: str, tenants: list[str], channel: str, **extra: Any) -> dict[str, Any]:
    return {"app_key": key, "app_secret": SECRET, "tenants": tenants, "channel": channel,
            **extra}


CONNECTORS = ("legacy", "shared_djxt", "archive", "gov")
CONFIG: dict[str, Any] = {
    "tenant": HUB, "name": "南通市不动产登记集成枢纽",
    "connectors": {name: {"type": "fake"} for name in CONNECTORS},
    "tenants": {
        A: {"name": "海门区不动产登记中心", "connectors": {"legacy": {"type": "fake"}}},
        B: {"name": "如东县不动产登记中心", "params": {"county": B},
            "connectors": {"legacy": {"use": "shared_djxt"}},
            "routes": {
                # 如东 keeps a copy of each application (its own route) and forwards
                # with the shared system's own operation (a replaced route).
                "archive": {"from": "application.submitted",
                            "steps": [{"to": {"connector": "archive", "operation": "keep"}}]},
                "forward": {"from": "application.submitted",
                            "steps": [{"to": {"connector": "legacy",
                                              "operation": "submit_shared"}}]},
            }},
    },
    "inbound": {"clients": {
        "window_a": _client(KEYS["window_a"], [A], "county", sends=["#"], reads="tenant"),
        "window_b": _client(KEYS["window_b"], [B], "county", sends=["#"], reads="tenant"),
        "hub_a": _client(KEYS["hub_a"], [A], "hub", sends=["#"]),
        # A pattern wider than the hub: it does not open a county the hub does not hold.
        "province": _client(KEYS["province"], ["32*"], "province", sends=["#"]),
    }},
    "routes": {
        "forward": {"from": "application.submitted",
                    "steps": [{"to": {"connector": "legacy", "operation": "submit_application"}}]},
        "corrections": {"from": "application.materials_updated",
                        "steps": [{"to": {"connector": "legacy", "operation": "update_materials"}}]},
        "stages": {"from": "legacy.stage_changed", "steps": [{"filter": "`true`"}]},
        "own_properties_query": {
            "from": {"endpoint": {"method": "POST", "path": "/api/v1/queries/own-properties",
                                  "type": "query.own_properties"}},
            "steps": [{"to": {"connector": "legacy", "operation": "query_properties",
                              "into": "found"}},
                      {"map": {"query_no": "query_no", "tenant": "_tenant", "purpose": "purpose",
                               "total": "length(found.units || `[]`)"}}]},
        "e_certificate_download": {
            "from": {"endpoint": {"method": "POST", "path": "/api/v1/e-certificates/download",
                                  "type": "e_certificate.download_requested"}},
            "steps": [{"enrich": {"connector": "gov", "operation": "download_elicense",
                                  "into": "download"}},
                      {"map": {"licence_number": "licence_number", "file": "download"}}]},
    },
}


class Calls:
    """What each connector was asked: (connector, operation, tenant, business no, payload)."""

    def __init__(self) -> None:
        self.made: list[tuple[str, str, str, str, Any]] = []
        #: operation -> the error it raises (a department down, a refusal)
        self.failing: dict[str, Exception] = {}

    def connector(self, name: str) -> FakeConnector:
        def answer(op: str, payload: Any, ctx: Any) -> Any:
            self.made.append((name, op, ctx.tenant, ctx.business_no, payload))
            if op in self.failing:
                raise self.failing[op]
            if op == "query_properties":
                return {"units": [{"unit_code": f"{ctx.tenant}001"}]}
            if op == "download_elicense":
                return {"content": "JVBERi0=", "tenant": ctx.tenant}
            return {"accepted": True}
        return FakeConnector(name, {}, handler=answer)

    def of(self, name: str) -> list[tuple[str, str, str, str, Any]]:
        return [c for c in self.made if c[0] == name]


@pytest.fixture
def calls() -> Calls:
    return Calls()


@pytest.fixture
def hub(calls):
    built = {name: calls.connector(name) for name in (*CONNECTORS, f"legacy@{A}")}
    found = Hub.from_config(CONFIG, broker="memory://", store="sqlite://", connectors=built,
                            metrics=MetricsMiddleware(CollectorRegistry()), validator=validator,
                            clock=Clock(1_800_000_000.0), sleep=Sleeps())
    found.audit = Audits()
    yield found
    found.kill()


@pytest.fixture
def api(hub):
    return create_app(hub, CONFIG, metrics=InboundMetrics(CollectorRegistry()))


def signed(api, name: str) -> SignedClient:
    return SignedClient(api, KEYS[name], SECRET)


def application(no: str, tenant: str, id_number: str) -> dict[str, Any]:
    return {"business_no": no, "tenant": tenant, "registration_type": "100", "right_type": "4",
            "unit_codes": [f"{tenant}413219GB00029F00010002"],
            "applicants": [{"name": "张三", "id_type": "1", "id_number": id_number,
                            "phone": "13812345678"}],
            "materials": [{"name": "申请书", "type": "application_form", "sha256": "a" * 64,
                           "size": 1024}],
            "channel": "county_window", "submitted_at": "2024-05-01T09:30:00+08:00"}
