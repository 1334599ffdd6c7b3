"""Fixtures for the assembly floor: a hub on an in-memory broker whose published
messages can be read back, and a ferry rig (keys, packer) for the ferry inbox."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from bdchub.bridge.ferry.sign import HmacKey
from bdchub.bridge.ferry.testing import FerryRig
from bdchub.core.envelope import Envelope
from bdchub.routes.middleware import MetricsMiddleware
from bdchub.routes.runtime import Hub

TENANT = "320684"
ENVELOPE = {"id": "0190a0b0-0000-7000-8000-000000000001", "type": "review.result",
            "tenant": TENANT, "business_no": "YWH2024000123",
            "body": {"result": "审核通过", "business_no": "YWH2024000123"}}
PDF = b"%PDF-1.7\n" + b"x" * 5000
SECRET = b"k" * 64


class CapturingHub:
    """What a test needs of a hub that publishes: ``Hub`` on ``memory://`` with a
    queue bound to every message type."""

    def __init__(self, config: dict | None = None):
        base = {"tenant": TENANT, "connectors": {}, "routes": {}}
        self.hub = Hub.from_config({**base, **(config or {})}, broker="memory://",
                                   store="sqlite://",
                                   metrics=MetricsMiddleware(CollectorRegistry()))
        self.hub.declare()
        self.hub.broker.declare_queue("test.capture", ["#"])

    def published(self) -> list[Envelope]:
        return [Envelope.from_json(b) for b in self.hub.broker.peek("test.capture")]


@pytest.fixture
def capturing() -> Iterator[CapturingHub]:
    h = CapturingHub()
    yield h
    h.hub.close()


@pytest.fixture
def ferry(tmp_path: Path) -> FerryRig:
    """A signed batch of three items ready to pack: an envelope, a plain message, a PDF."""
    rig = FerryRig(tmp_path / "rig")
    rig.signer = rig.verifier = HmacKey(SECRET)
    rig.write("results/review.json", json.dumps(ENVELOPE, ensure_ascii=False))
    rig.write("results/plain.json", '{"business_no": "B2", "status": "ok"}')
    rig.write("附件/宗地图.pdf", PDF)
    return rig
