"""Hubs that talk to each other on loopback: a province hub and two county hubs,
each a ``HubService`` with its inbound server on a port of its own and its
embedded broker and store in a folder of ``tmp_path``.

The province dispatches ``tax.cleared`` to the county of the message's tenant
through a ``hub`` connector and keeps the county's acknowledgement as a
verification record; each county hands it to its registration system (a fake
connector counting what it got) and reports its hops back up.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bdchub.app.service import HubService
from bdchub.connectors.fake import FakeConnector
from bdchub.core.envelope import Envelope
from bdchub.routes.middleware import Middleware
from tests.demo.conftest import Flows

PROVINCE = "320000"
HAIMEN, RUGAO = "320684", "320682"
PROVINCE_KEY, PROVINCE_SECRET = "pk-province-hub", "province-hub-secret-0123456789"
COUNTY_KEYS = {HAIMEN: ("hk-320684", "haimen-hub-secret-0123456789ab"),
               RUGAO: ("hk-320682", "rugao-hub-secret-0123456789abc")}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait(predicate: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """``predicate()``'s first truthy value, polled for at most ``timeout`` seconds."""
    return Flows.wait(predicate, timeout, what)


def base(folder: Path, tenant: str, port: int) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    return {"tenant": tenant, "__dir__": str(folder),
            "broker": {"url": f"sqla+sqlite:///{folder / 'broker.db'}"},
            "store": {"url": f"sqlite:///{folder / 'store.db'}"},
            "inbound": {"listen": {"host": "127.0.0.1", "port": port}, "clients": {}},
            "connectors": {}, "routes": {}}


def peer(url: str, key: str, secret: str) -> dict[str, Any]:
    """A ``hub`` connector block that gives up fast: one attempt, then the route parks."""
    return {"type": "hub", "base_url": url, "app_key": key, "app_secret": secret,
            "timeout": 3, "retry": {"attempts": 1}}


def province_config(folder: Path, port: int, counties: dict[str, int]) -> dict[str, Any]:
    config = base(folder, PROVINCE, port)
    when = []
    for tenant, county_port in counties.items():
        key, secret = COUNTY_KEYS[tenant]
        config["inbound"]["clients"][f"hub_{tenant}"] = {
            "app_key": key, "app_secret": secret, "tenants": [tenant], "channel": "hub"}
        config["connectors"][f"county_{tenant}"] = peer(
            f"http://127.0.0.1:{county_port}", PROVINCE_KEY, PROVINCE_SECRET)
        when.append({"condition": f"_tenant == '{tenant}'", "steps": [
            {"enrich": {"connector": f"county_{tenant}", "operation": "tax.cleared",
                        "into": "federation.ack", "record": "county_ack"}}]})
    config["routes"]["dispatch_tax_cleared"] = {
        "from": "tax.cleared", "steps": [{"choice": {"when": when}}],
        "on_error": {"retry": {"attempts": 1}, "park_for": 0.2, "park_max": 1000}}
    return config


def county_config(folder: Path, tenant: str, port: int, province_port: int) -> dict[str, Any]:
    config = base(folder, tenant, port)
    key, secret = COUNTY_KEYS[tenant]
    config["inbound"]["clients"]["province_hub"] = {
        "app_key": PROVINCE_KEY, "app_secret": PROVINCE_SECRET, "tenants": [tenant],
        "channel": "hub"}
    config["connectors"]["province"] = peer(f"http://127.0.0.1:{province_port}", key, secret)
    config["routes"]["tax_cleared_from_province"] = {
        "from": "tax.cleared",
        "steps": [{"to": {"connector": "registration", "operation": "tax_cleared"}},
                  {"report_hops": "province"}]}
    return config


class Absorbed(Middleware):
    """The ids of deliveries a hub's routes absorbed as already processed."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def on_duplicate(self, route: str, envelope: Any) -> None:
        self.ids.append(envelope.id)


class Hub:
    """One hub of the rig: its config, its running service (or None while stopped)
    and, for a county, the registration system's fake connector it calls."""

    def __init__(self, config: dict[str, Any], registration: FakeConnector | None = None):
        self.config = config
        self.registration = registration
        self.service: HubService | None = None
        self.absorbed = Absorbed()

    @property
    def tenant(self) -> str:
        return self.config["tenant"]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.config['inbound']['listen']['port']}"

    def start(self) -> Hub:
        connectors = {"registration": self.registration} if self.registration else {}
        self.service = HubService.from_config(self.config, connectors=connectors,
                                              middleware=[self.absorbed], tick_interval=0.1)
        self.service.start()
        return self

    def stop(self) -> None:
        if self.service is not None:
            self.service.stop(timeout=10)
            self.service = None

    @property
    def hub(self) -> Any:
        assert self.service is not None, "the hub is stopped"
        return self.service.hub

    def received(self) -> list[str]:
        """Ids of the messages the county's registration system got, in order."""
        assert self.registration is not None
        return [context.message_id for _op, _payload, context in self.registration.calls]

    def audit(self, event: str) -> list[dict[str, Any]]:
        path = Path(self.config["__dir__"]) / "data" / "audit.jsonl"
        records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        return [r["fields"] for r in records if r.get("event") == event]


class Federation:
    """The province and its two counties, started; stopped at the end of the test."""

    def __init__(self, folder: Path):
        ports = {name: free_port() for name in ("province", HAIMEN, RUGAO)}
        self.province = Hub(province_config(folder / "province", ports["province"],
                                            {HAIMEN: ports[HAIMEN], RUGAO: ports[RUGAO]}))
        self.counties = {
            tenant: Hub(county_config(folder / tenant, tenant, ports[tenant], ports["province"]),
                        FakeConnector("registration", {}, handler=lambda *_a: {"ok": True}))
            for tenant in (HAIMEN, RUGAO)}

    def start(self) -> Federation:
        for hub in (self.province, *self.counties.values()):
            hub.start()
        return self

    def stop(self) -> None:
        for hub in (*self.counties.values(), self.province):
            hub.stop()

    def dispatch(self, tenant: str, business_no: str) -> Envelope:
        """A provincial tax clearance for a case of ``tenant``, taken by the province."""
        envelope = Envelope(type="tax.cleared", tenant=tenant, business_no=business_no,
                            body={"business_no": business_no, "tax_status": "cleared"},
                            source="test:province-tax")
        self.province.hub.publish(envelope)
        return envelope


@pytest.fixture
def federation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Federation]:
    # Each hub keeps its key and audit log in its own folder (its config's __dir__).
    monkeypatch.delenv("HUB_DATA_DIR", raising=False)
    monkeypatch.delenv("BDCHUB_DATA_KEY", raising=False)
    rig = Federation(tmp_path).start()
    yield rig
    rig.stop()
