"""Fixtures of the inbound web layer: a fake hub, an app, a signing client."""

from __future__ import annotations

import copy
import json
import os
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from werkzeug.test import Client

from bdchub.schemas.formats import resident_id_check_char
from bdchub.web.app import create_app
from bdchub.web.fake import FakeHub
from bdchub.web.metrics import InboundMetrics
from bdchub.web.signing import signed_headers

TENANT = "320684"
APP_KEY = "ck-county-window"
SECRET = "s3cret-for-tests-only-0123456789"
PROVINCE_KEY = "pk-province"
PROVINCE_SECRET = "another-secret-for-tests-0123456"
BANK_KEY = "bk-bank"
BANK_SECRET = "bank-secret-for-tests-0123456789"
LEGACY_KEY = "lk-registration-system"
LEGACY_SECRET = "legacy-secret-for-tests-01234567"
ID_NUMBER = "11010519900101123" + resident_id_check_char("11010519900101123")

APPLICATION: dict[str, Any] = {
    "business_no": "YWH2024000001",
    "tenant": TENANT,
    "registration_type": "100",
    "right_type": "4",
    "unit_codes": ["320684413219GB00029F00010002"],
    "applicants": [{"name": "张三", "id_type": "1", "id_number": ID_NUMBER,
                    "phone": "13812345678"}],
    "materials": [{"name": "申请书", "type": "application_form", "sha256": "a" * 64,
                   "size": 1024}],
    "channel": "county_window",
    "submitted_at": "2024-05-01T09:30:00+08:00",
}

APPOINTMENT: dict[str, Any] = {
    "request_no": "A20240501001",
    "tenant": TENANT,
    "applicant": {"name": "李四", "id_type": "1", "id_number": ID_NUMBER},
    "service": "二手房转移登记",
    "office": {"name": "海门区不动产登记中心"},
    "date": "2024-05-08",
    "time_slot": {"start": "09:00", "end": "09:30"},
    "requested_at": "2024-05-01T10:00:00+08:00",
}

MATERIALS: dict[str, Any] = {
    "materials": [{"name": "身份证明", "type": "identity_document", "sha256": "b" * 64,
                   "size": 2048}],
    "reason": "补正通知要求补充身份证明",
}


def config(**inbound: Any) -> dict[str, Any]:
    block: dict[str, Any] = {
        "clients": {
            # Both windows may send any type but a hub event (no pattern reaches one), so
            # tests of other checks need not list the types of their endpoints.
            "county_window": {"app_key": APP_KEY, "app_secret": SECRET,
                              "tenants": [TENANT], "channel": "county", "sends": ["#"]},
            "province_window": {"app_key": PROVINCE_KEY, "app_secret": PROVINCE_SECRET,
                                "tenants": ["32*"], "channel": "province", "sends": ["#"]},
            "bank": {"app_key": BANK_KEY, "app_secret": BANK_SECRET, "tenants": [TENANT],
                     "channel": "bank", "sends": ["application.submitted"]},
            # The registration system reports through the SOAP endpoint: the source of
            # the progress and register-entry events.
            "registration_system": {"app_key": LEGACY_KEY, "app_secret": LEGACY_SECRET,
                                    "tenants": [TENANT], "channel": "legacy",
                                    "owns": ["progress.reported", "registration.recorded"]},
        },
        "max_body_bytes": 64 * 1024,
    }
    block.update(inbound)
    return {"tenant": TENANT, "inbound": block}


class SignedClient:
    """werkzeug's test client that signs like a one-window platform."""

    def __init__(self, app, app_key: str = APP_KEY, secret: str = SECRET):
        self.raw = Client(app)
        self.app_key = app_key
        self.secret = secret

    def request(self, method: str, path: str, *, json_body: Any = None, data: bytes | None = None,
                headers: dict[str, str] | None = None, sign: bool = True,
                content_type: str = "application/json", **signing: Any):
        if json_body is not None:
            data = json.dumps(json_body, ensure_ascii=False).encode("utf-8")
        data = data or b""
        all_headers = dict(headers or {})
        if sign:
            all_headers = {**signed_headers(self.app_key, self.secret, method, path, data,
                                            **signing), **all_headers}
        base, _, query = path.partition("?")
        return self.raw.open(base, method=method, query_string=query or None, data=data,
                             headers=all_headers,
                             content_type=content_type if data else None)

    def post(self, path: str, body: Any = None, **kw: Any):
        return self.request("POST", path, json_body=body, **kw)

    def get(self, path: str, **kw: Any):
        return self.request("GET", path, **kw)


@pytest.fixture
def hub() -> FakeHub:
    return FakeHub()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def make_app(hub, registry):
    def make(**inbound: Any):
        return create_app(hub, config(**inbound), metrics=InboundMetrics(registry))
    return make


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app) -> SignedClient:
    return SignedClient(app)


@pytest.fixture
def application() -> dict[str, Any]:
    return copy.deepcopy(APPLICATION)


@pytest.fixture(autouse=True)
def _no_hub_lang(monkeypatch):
    if "HUB_LANG" in os.environ:
        monkeypatch.delenv("HUB_LANG")
