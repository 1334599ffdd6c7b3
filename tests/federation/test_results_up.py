"""Results up, county -> province -> national (issue #14, item 2), through two real
hubs on loopback running the shipped configs: examples/province/county.yaml as 海门
(320684) and config.province.yaml, each a ``HubService`` with its inbound server,
embedded broker and store in a folder of ``tmp_path``. Only the departments are
fakes (the county's registration system, the province's court and windows).

A registration result with its certificate number and the e-certificate's metadata,
published at the county as config.yaml's flow e publishes them, reach the
province's and the nation's windows once each; the county keeps the province's
acknowledgement; the same envelope sent up again is absorbed.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from bdchub import connectors
from bdchub.app.service import HubService
from bdchub.connectors.base import CallContext
from bdchub.connectors.fake import FakeConnector
from bdchub.connectors.hub import ENVELOPES_PATH
from bdchub.core.config import load
from bdchub.core.envelope import Envelope
from bdchub.web.signing import signed_headers

from .conftest import HAIMEN, Absorbed, free_port, peer, wait

ROOT = Path(__file__).resolve().parents[2]
BUSINESS_NO = "3206842026000021"
CERTIFICATE_NO = "苏（2026）海门市不动产权第0000021号"
RESULT = {"business_no": BUSINESS_NO, "tenant": HAIMEN, "registration_type": "200",
          "right_type": "4", "unit_codes": ["320684001002GB00105F00010001"],
          "registered_at": "2026-05-08T09:30:00+08:00",
          "certificate_numbers": [CERTIFICATE_NO], "proof_numbers": []}
E_CERTIFICATE = {"business_no": BUSINESS_NO, "licence_type": "real_estate_certificate",
                 "licence_number": CERTIFICATE_NO, "licence_id": "EL-21"}


def receipt(op: str, payload: Any, ctx: Any) -> dict[str, Any]:
    return {"receipt_id": f"R-{ctx.message_id}", "duplicate": False}


class Running:
    """One shipped config running as a hub: its service, fakes and what it absorbed."""

    def __init__(self, config_path: Path, folder: Path, environ: dict[str, str],
                 fakes: dict[str, FakeConnector]):
        folder.mkdir(parents=True)
        self.folder = folder
        config = load(config_path, environ={
            **environ, "HUB_BROKER_URL": f"sqla+sqlite:///{folder / 'broker.db'}",
            "HUB_STORE_URL": f"sqlite:///{folder / 'store.db'}"})
        # Its data key and audit log in its own folder, not beside the shipped file.
        config["__dir__"] = str(folder)
        self.fakes = fakes
        self.absorbed = Absorbed()
        self.service = HubService.from_config(
            config, connectors=fakes, middleware=[self.absorbed], tick_interval=0.1,
            pollers=False, demo_secrets=True)
        self.service.start()

    @property
    def hub(self) -> Any:
        return self.service.hub

    def audit(self, event: str) -> list[dict[str, Any]]:
        path = self.folder / "data" / "audit.jsonl"
        lines = path.read_text(encoding="utf-8").splitlines()
        return [r["fields"] for r in map(json.loads, lines) if r.get("event") == event]

    def records(self, kind: str) -> list[dict[str, Any]]:
        return [r for r in self.hub.store.verifications_for(BUSINESS_NO) if r["kind"] == kind]


class Relay:
    """The province hub and 海门's county hub, linked both ways with fresh secrets."""

    def __init__(self, folder: Path):
        province_port, county_port = free_port(), free_port()
        self.up_secret = secrets.token_hex(16)
        down_secret = secrets.token_hex(16)
        self.province_url = f"http://127.0.0.1:{province_port}"
        self.province = Running(
            ROOT / "config.province.yaml", folder / "province",
            {"HUB_LISTEN_PORT": str(province_port),
             f"HUB_COUNTY_{HAIMEN}_URL": f"http://127.0.0.1:{county_port}",
             f"HUB_COUNTY_{HAIMEN}_SECRET": down_secret,
             f"HUB_{HAIMEN}_HUB_SECRET": self.up_secret},
            {name: FakeConnector(name, {}, handler=receipt)
             for name in ("window_province", "window_national", "court")})
        self.county = Running(
            ROOT / "examples" / "province" / "county.yaml", folder / HAIMEN,
            {"HUB_TENANT": HAIMEN, "HUB_LISTEN_PORT": str(county_port),
             "HUB_PROVINCE_URL": self.province_url, "HUB_PROVINCE_APP_KEY": f"hk-{HAIMEN}",
             "HUB_PROVINCE_APP_SECRET": self.up_secret,
             "HUB_PROVINCE_CLIENT_SECRET": down_secret},
            {"legacy": FakeConnector("legacy", {}, handler=receipt)})

    def stop(self) -> None:
        for running in (self.county, self.province):
            running.service.stop(timeout=10)

    def window(self, name: str) -> list[tuple[str, str]]:
        """(result_type, county) of each result the province's window ``name`` got."""
        return sorted((payload["result_type"], payload["county"])
                      for _op, payload, _ctx in self.province.fakes[name].calls)


@pytest.fixture
def relay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Relay]:
    monkeypatch.delenv("HUB_DATA_DIR", raising=False)
    monkeypatch.delenv("BDCHUB_DATA_KEY", raising=False)
    rig = Relay(tmp_path)
    yield rig
    rig.stop()


def test_a_countys_result_and_e_certificate_reach_the_national_window_through_the_province_once(
        relay: Relay):
    sent = []
    for type_, body in (("registration.result", RESULT), ("e_certificate.issued", E_CERTIFICATE)):
        envelope = Envelope(type=type_, tenant=HAIMEN, business_no=BUSINESS_NO, body=body,
                            source="test:flow-e")
        relay.county.hub.publish(envelope)
        sent.append(envelope)
    both = [("e_certificate.issued", HAIMEN), ("registration.result", HAIMEN)]

    assert wait(lambda: relay.window("window_national") == both and both,
                "both to reach the national window") == both
    wait(lambda: relay.window("window_province") == both, "both to reach the province window")
    [certificate] = [p for _op, p, _ctx in relay.province.fakes["window_national"].calls
                     if p["result_type"] == "registration.result"]
    assert certificate["certificate_numbers"] == [CERTIFICATE_NO]
    assert certificate["level"] == "national"
    # Under the ids they had at the county, and acknowledged per message there.
    national_ids = {ctx.message_id for *_, ctx in relay.province.fakes["window_national"].calls}
    assert national_ids == {e.id for e in sent}
    acks = wait(lambda: len(relay.county.records("province_ack")) == 2
                and relay.county.records("province_ack"), "the province's acknowledgements")
    assert {(a["result"]["id"], a["result"]["status"]) for a in acks} == {
        (e.id, "accepted") for e in sent}
    wait(lambda: len(relay.province.records("result_receipt")) == 4, "the windows' receipts")

    # The county sends the result up again under its id (the province's answer was
    # lost, or the county's route ran again after a crash): absorbed at the province.
    up = connectors.build("province", peer(relay.province_url, f"hk-{HAIMEN}", relay.up_secret))
    again = up.call("registration.result", RESULT, CallContext(
        message_id=sent[0].id, tenant=HAIMEN, business_no=BUSINESS_NO))
    up.close()

    assert again["id"] == sent[0].id and again["status"] == "accepted"
    replayed = wait(lambda: relay.province.audit("inbound.replayed"), "the repeat's audit")
    assert [r["message_id"] for r in replayed] == [sent[0].id]
    # Once the province's idempotency records are gone (or without the key): it
    # reaches the province's routes, which have run it and absorb it.
    envelope = json.dumps({"id": sent[1].id, "type": "e_certificate.issued", "tenant": HAIMEN,
                           "business_no": BUSINESS_NO, "headers": {},
                           "body": E_CERTIFICATE}).encode()
    late = requests.post(relay.province_url + ENVELOPES_PATH, data=envelope, timeout=10,
                         headers={"Content-Type": "application/json", **signed_headers(
                             f"hk-{HAIMEN}", relay.up_secret, "POST", ENVELOPES_PATH,
                             envelope)})

    assert late.status_code == 202 and late.json()["id"] == sent[1].id
    assert sorted(wait(lambda: len(relay.province.absorbed.ids) == 2
                       and relay.province.absorbed.ids,
                       "the province's routes to absorb the repeat")) == [sent[1].id] * 2
    assert relay.window("window_national") == both
    assert relay.window("window_province") == both
