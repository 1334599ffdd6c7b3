"""The hub config of the tracing tests (a department on loopback: the connector
tests' ``tests.connectors.loopback.Department``), in a module of its own that
imports no OpenTelemetry: the test of tracing off runs it in a fresh interpreter
and looks at what got imported."""

from __future__ import annotations

import json
from pathlib import Path

from bdchub.core.config import load

TENANT = "320684"
BUSINESS_NO = "320684-2026-000731"


def config(tmp_path: Path, department_url: str, *, traced: bool = True,
           broker: str = "memory://") -> dict:
    block = {
        "tenant": TENANT,
        "broker": {"url": broker},
        "store": {"url": f"sqlite:///{tmp_path / 'store.db'}"},
        "connectors": {"registry": {
            "type": "rest", "base_url": department_url, "timeout": 10,
            "retry": {"attempts": 1},
            "operations": {"register": {"method": "POST", "path": "/contracts",
                                         "response": "data"}}}},
        "routes": {
            # Two steps, the second calling the department, then the news for another route.
            "registration": {"from": "application.submitted", "steps": [
                {"map": {"fields": {"ywh": "business_no"}, "merge": True}},
                {"enrich": {"connector": "registry", "operation": "register",
                            "into": "registry"}},
                {"publish": "application.registered"}]},
            "notification": {"from": "application.registered", "steps": [
                {"filter": "registry.accepted"}]},
            "verify": {"from": {"endpoint": {"method": "POST", "path": "/api/v1/verify",
                                             "reply": True}},
                       "steps": [{"enrich": {"connector": "registry",
                                             "operation": "register", "into": "registry"}}]},
        },
        "inbound": {"endpoints": [
            {"method": "POST", "path": "/api/v1/verify", "route": "verify", "reply": True,
             "auth": "none"},
            {"method": "POST", "path": "/api/v1/notify", "route": "registration",
             "reply": False, "auth": "none", "type": "application.submitted"}]},
    }
    if traced:
        block["tracing"] = {"enabled": True, "exporter": "none", "service_name": "bdc-hub-test"}
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(block, ensure_ascii=False), encoding="utf-8")
    return load(str(path))


def application() -> dict:
    return {"business_no": BUSINESS_NO, "applicants": [
        {"name": "张三", "id_type": "1", "id_number": "110105199001011234"}]}


