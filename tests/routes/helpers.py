"""Helpers for route tests: a hub on the in-memory broker with fake connectors."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator
from prometheus_client import CollectorRegistry

from bdchub.connectors.fake import FakeConnector
from bdchub.core.errors import StoreError
from bdchub.routes.middleware import MetricsMiddleware
from bdchub.routes.runtime import Hub

TENANT = "320684"

SCHEMAS = {
    "application": {"type": "object", "required": ["business_no", "applicants"],
                    "properties": {"business_no": {"type": "string"},
                                   "applicants": {"type": "array", "minItems": 1}}},
}


def validator(name: str, instance: Any) -> list:
    from bdchub.schemas.catalog import Violation

    v = Draft202012Validator(SCHEMAS[name])
    return [Violation("$." + ".".join(map(str, e.absolute_path)), e.message, e.validator)
            for e in v.iter_errors(instance)]


class Clock:
    def __init__(self, start: float = 1_750_000_000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Sleeps(list):
    """A sleep that records instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


class FlakyStore:
    """Wraps a store; ``finish`` fails once, after the run's calls went out: as if the
    process died before committing, the message is delivered again."""

    def __init__(self, store):
        self._store = store
        self.fail_next = True

    def __getattr__(self, name):
        return getattr(self._store, name)

    def finish(self, rec):
        if self.fail_next:
            self.fail_next = False
            raise StoreError("disk full")
        return self._store.finish(rec)

    def finish_many(self, recs):  # a route of in-process steps writes its batch's outcomes
        if self.fail_next:
            self.fail_next = False
            raise StoreError("disk full")
        return self._store.finish_many(recs)


def fake(name: str, handler=None, **responses: Any) -> FakeConnector:
    return FakeConnector(name, {"responses": responses}, handler=handler)


def echo(op: str, payload: Any, ctx: Any) -> Any:
    return {"ok": True, "op": op}


def make_hub(routes: dict[str, Any], connectors: dict[str, FakeConnector] | None = None, *,
             checklists: dict[str, Any] | None = None, clock: Clock | None = None,
             sleep: Sleeps | None = None, store: str = "sqlite://", **kw: Any) -> Hub:
    connectors = connectors or {}
    config = {"tenant": TENANT, "name": "海门区不动产登记中心",
              "connectors": {n: {"type": "fake"} for n in connectors},
              "routes": routes, "checklists": checklists or {}}
    return Hub.from_config(config, broker="memory://", store=store, connectors=connectors,
                           metrics=MetricsMiddleware(CollectorRegistry()), validator=validator,
                           clock=clock or Clock(), sleep=sleep if sleep is not None else Sleeps(),
                           **kw)


def application(no: str = "320684-2026-000001", **extra: Any) -> dict[str, Any]:
    body = {"business_no": no, "tenant": TENANT, "registration_type": "200",
            "applicants": [{"name": "张三", "id_type": "1", "id_number": "110105199001011234"}],
            "materials": [{"name": "申请书", "type": "application_form"}]}
    body.update(extra)
    return body


def outcomes(hub: Hub, business_no: str) -> list[tuple[str, str, str]]:
    return [(h["route"], h["step"], h["outcome"]) for h in hub.trace(business_no)]


def capture(hub: Hub, pattern: str, name: str = "test.capture"):
    """Collect messages matching ``pattern`` in a queue nobody consumes; returns a reader."""
    from bdchub.core.envelope import Envelope

    hub.declare()
    hub.broker.declare_queue(name, [pattern])
    return lambda: [Envelope.from_json(b) for b in hub.broker.peek(name)]
