"""In-memory ``HubPort`` for tests: records what the web layer hands over.

    hub = FakeHub()
    hub.add_progress("320684", "YWH001", {"stage": "受理", ...})
    hub.routes["echo"] = lambda env: env.evolve(type="echo.reply")
    app = create_app(hub, config)
    ...
    assert [e.type for e in hub.published] == ["application.submitted"]
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from typing import Any

from bdchub.core.envelope import Envelope
from bdchub.core.errors import HubError, RouteError


class FakeHub:
    def __init__(self) -> None:
        self.published: list[Envelope] = []
        self.audits: list[tuple[str, dict[str, Any]]] = []
        self.sync_calls: list[tuple[str, Envelope]] = []
        self.submitted: list[tuple[str, Envelope]] = []
        self.routes: dict[str, Callable[[Envelope], Envelope]] = {}
        self.fail_publish: HubError | None = None  # set to make publish raise
        self._progress: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._nonces: dict[str, float] = {}
        self._lock = threading.Lock()

    # -- HubPort ---------------------------------------------------------
    def publish(self, envelope: Envelope) -> None:
        if self.fail_publish is not None:
            raise self.fail_publish
        with self._lock:
            self.published.append(envelope)

    def run_sync(self, route: str, envelope: Envelope) -> Envelope:
        with self._lock:
            self.sync_calls.append((route, envelope))
        handler = self.routes.get(route)
        if handler is None:
            raise RouteError(f"no route {route}", route=route)
        return handler(envelope)

    def submit(self, route: str, envelope: Envelope) -> None:
        if self.fail_publish is not None:
            raise self.fail_publish
        with self._lock:
            self.submitted.append((route, envelope))

    def progress_by_business_no(self, tenant: str, business_no: str) -> list[dict[str, Any]]:
        return copy.deepcopy(self._progress.get((tenant, business_no), []))

    def progress_by_applicant(self, tenant: str, id_number: str) -> list[dict[str, Any]]:
        found = []
        for (t, _bn), records in self._progress.items():
            if t != tenant:
                continue
            for record in records:
                if id_number in _id_numbers(record):
                    found.append(copy.deepcopy(record))
        return found

    def audit(self, event: str, **fields: Any) -> None:
        with self._lock:
            self.audits.append((event, fields))

    def endpoints(self) -> list[dict[str, Any]]:
        return []

    def remember_nonce(self, digest: str, expires_at: float, now: float) -> bool:
        with self._lock:
            if self._nonces.get(digest, now) > now:
                return False
            self._nonces[digest] = expires_at
            return True

    # -- test helpers ----------------------------------------------------
    def add_progress(self, tenant: str, business_no: str, record: dict[str, Any]) -> None:
        self._progress.setdefault((tenant, business_no), []).append(record)

    def audited(self, event: str) -> list[dict[str, Any]]:
        return [fields for name, fields in self.audits if name == event]


def _id_numbers(value: Any) -> set[str]:
    """Every string held under a key that names an ID number, at any depth."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, str) and key in ("id_number", "zjh", "cert_no"):
                found.add(item)
            else:
                found |= _id_numbers(item)
    elif isinstance(value, list):
        for item in value:
            found |= _id_numbers(item)
    return found
