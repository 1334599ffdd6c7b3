"""The message envelope: what travels on the broker between route steps.

An envelope is immutable; every change (a new hop, another attempt, a mapped
body) makes a new one with ``evolve``. Ids are time-ordered UUIDs (version 7,
RFC 9562) so that sorting by id sorts by creation time, which the store's
indexes and ``hub trace`` rely on.

With tracing on (``core.tracing``) the headers also carry the W3C Trace Context
(``traceparent``, ``tracestate``) of the span that made the message, so the
route that takes it, in this process or another, continues the same trace.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from .errors import MessageError
from .i18n import _

TYPE_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
TENANT_PATTERN = re.compile(r"^\d{6}$")

_uuid_lock = threading.Lock()
_last_ms = 0
_counter = 0


def new_id() -> str:
    """A UUIDv7 string: 48-bit Unix milliseconds, then a counter, then randomness.

    Within one millisecond the 12-bit counter keeps ids of this process in order.
    """
    global _last_ms, _counter
    with _uuid_lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            _counter += 1
            if _counter > 0xFFF:  # counter exhausted: borrow the next millisecond
                _last_ms += 1
                _counter = 0
            ms = _last_ms
        else:
            _last_ms = ms
            _counter = int.from_bytes(os.urandom(2), "big") & 0x3FF  # room to count up
        counter = _counter
    rand = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62) | rand
    return str(uuid.UUID(int=value))


def id_time(message_id: str) -> float:
    """Creation time (Unix seconds) encoded in a UUIDv7."""
    return (uuid.UUID(message_id).int >> 80) / 1000.0


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Hop:
    """One step of a message's journey, with its timing."""

    route: str
    step: str
    started_at: float
    duration_ms: float
    outcome: str = "ok"  # ok | error | parked | dead_letter | skipped
    detail: str = ""
    #: What a calling step (``to``, ``enrich``, ``wire_tap``) called, each list joined
    #: with ``,``: kept in the store's trace (the console's audit of outbound calls),
    #: not carried in the message, which gets no bigger for it.
    connector: str = ""
    operation: str = ""

    def wire(self) -> dict[str, Any]:
        """The hop as a message carries it."""
        return {"route": self.route, "step": self.step, "started_at": self.started_at,
                "duration_ms": self.duration_ms, "outcome": self.outcome, "detail": self.detail}


@dataclass(frozen=True)
class Envelope:
    type: str
    tenant: str
    body: Mapping[str, Any]
    business_no: str = ""
    source: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    id: str = field(default_factory=new_id)
    created_at: str = field(default_factory=_now)
    attempt: int = 0
    trace: tuple[Hop, ...] = ()

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.type, str) or not TYPE_PATTERN.match(self.type):
            problems.append(_("message type '{type}' must be dotted lowercase words, e.g. application.submitted",
                              type=self.type))
        if not isinstance(self.tenant, str) or not TENANT_PATTERN.match(self.tenant):
            problems.append(_("tenant '{tenant}' must be the county's 6-digit division code",
                              tenant=self.tenant))
        if not isinstance(self.body, Mapping):
            problems.append(_("message body must be a JSON object"))
        if problems:
            raise MessageError("; ".join(problems))

    def evolve(self, **changes: Any) -> Envelope:
        return replace(self, **changes)

    def with_hop(self, hop: Hop) -> Envelope:
        return replace(self, trace=(*self.trace, hop))

    def with_headers(self, **headers: str) -> Envelope:
        return replace(self, headers={**self.headers, **headers})

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["body"] = dict(self.body)
        data["headers"] = dict(self.headers)
        data["trace"] = [h.wire() for h in self.trace]
        return data

    def to_json(self) -> bytes:
        """The wire format: compact UTF-8 JSON. Built field by field rather than
        through ``to_dict``: ``asdict`` deep-copies the body, and every message
        the hub publishes passes here."""
        body = self.body if isinstance(self.body, dict) else dict(self.body)
        return json.dumps({
            "type": self.type, "tenant": self.tenant, "body": body,
            "business_no": self.business_no, "source": self.source,
            "headers": dict(self.headers), "id": self.id, "created_at": self.created_at,
            "attempt": self.attempt,
            "trace": [h.wire() for h in self.trace]},
            ensure_ascii=False, separators=(",", ":"), default=str).encode("utf-8")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Envelope:
        try:
            trace = tuple(Hop(**h) for h in data.get("trace") or ())
            return cls(type=data["type"], tenant=data["tenant"], body=data["body"],
                       business_no=data.get("business_no") or "",
                       source=data.get("source") or "",
                       headers=dict(data.get("headers") or {}),
                       id=data.get("id") or new_id(),
                       created_at=data.get("created_at") or _now(),
                       attempt=int(data.get("attempt") or 0), trace=trace)
        except (KeyError, TypeError, ValueError) as exc:
            raise MessageError(_("not a valid message envelope: {error}", error=exc)) from exc

    @classmethod
    def from_json(cls, raw: bytes | str) -> Envelope:
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise MessageError(_("message envelope is not valid JSON: {error}", error=exc)) from exc
        if not isinstance(data, dict):
            raise MessageError(_("message envelope must be a JSON object"))
        return cls.from_dict(data)
