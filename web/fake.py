"""In-memory ``HubPort`` for tests: records what the web layer hands over.

    hub = FakeHub()
    hub.add_progress("320684", "YWH001", {"stage": "受理", ...}, client="county_window")
    hub.routes["echo"] = lambda env: env.evolve(type="echo.reply")
    app = create_app(hub, config)
    ...
    assert [e.type for e in hub.published] == ["application.submitted"]
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Sequence
from typing import Any

from bdchub.core.envelope import Envelope, Hop
from bdchub.core.errors import HubError, RouteError


class FakeHub:
    def __init__(self, *, shared: bool = False) -> None:
        self.shared = shared  # as a hub on a store other processes open (shares_store)
        self.published: list[Envelope] = []
        #: hops peer hubs reported, by report id (``record_hops``)
        self.reported_hops: dict[str, tuple[Envelope, list[Hop]]] = {}
        self.audits: list[tuple[str, dict[str, Any]]] = []
        self.sync_calls: list[tuple[str, Envelope]] = []
        self.submitted: list[tuple[str, Envelope]] = []
        self.routes: dict[str, Callable[[Envelope], Envelope]] = {}
        self.fail_publish: HubError | None = None  # set to make publish raise
        self._progress: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._submitters: dict[tuple[str, str], tuple[str, str]] = {}  # (client, channel)
        self._notices: dict[tuple[str, str], list[dict[str, Any]]] = {}
        #: (tenant, business no) -> the last day its correction is taken (set by tests)
        self.deadlines: dict[tuple[str, str], str] = {}
        self._nonces: dict[str, float] = {}
        self._records: Any = None
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

    def progress_by_business_no(self, tenant: str, business_no: str, *,
                                client: str | None = None,
                                channel: str | None = None) -> list[dict[str, Any]]:
        if not self._readable(tenant, business_no, client, channel):
            return []
        return copy.deepcopy(self._progress.get((tenant, business_no), []))

    def progress_by_applicant(self, tenant: str, id_number: str, *, client: str | None = None,
                              channel: str | None = None) -> list[dict[str, Any]]:
        found = []
        for (t, bn), records in self._progress.items():
            if t != tenant or not self._readable(t, bn, client, channel):
                continue
            for record in records:
                if id_number in _id_numbers(record):
                    found.append(copy.deepcopy(record))
        return found

    def notices(self, tenant: str, business_no: str, *, client: str | None = None,
                channel: str | None = None) -> list[dict[str, Any]]:
        if not self._readable(tenant, business_no, client, channel):
            return []
        return [{k: v for k, v in n.items() if k != "content"}
                for n in self._notices.get((tenant, business_no), [])]

    def notice(self, tenant: str, business_no: str, notice_id: str, *,
               client: str | None = None, channel: str | None = None) -> dict[str, Any] | None:
        if not self._readable(tenant, business_no, client, channel):
            return None
        return next((dict(n) for n in self._notices.get((tenant, business_no), [])
                     if n["id"] == notice_id), None)

    def correction_deadline(self, tenant: str, business_no: str) -> str | None:
        return self.deadlines.get((tenant, business_no))

    def audit(self, event: str, **fields: Any) -> None:
        with self._lock:
            self.audits.append((event, fields))

    def endpoints(self) -> list[dict[str, Any]]:
        return []

    def shares_store(self) -> bool:
        return self.shared

    def remember_nonce(self, digest: str, expires_at: float, now: float) -> bool:
        with self._lock:
            if self._nonces.get(digest, now) > now:
                return False
            self._nonces[digest] = expires_at
            return True

    def request_records(self) -> Any:
        """A store of its own in memory: the records' real queries, nothing on disk."""
        with self._lock:
            if self._records is None:
                from bdchub.core.store import Store

                self._records = Store("sqlite://", group_commit=False)
            return self._records

    def record_hops(self, envelope: Envelope, hops: Sequence[Hop]) -> bool:
        with self._lock:
            if envelope.id in self.reported_hops:
                return False
            self.reported_hops[envelope.id] = (envelope, list(hops))
            return True

    # -- test helpers ----------------------------------------------------
    def add_progress(self, tenant: str, business_no: str, record: dict[str, Any], *,
                     client: str = "", channel: str = "") -> None:
        """A record of a case submitted by ``client`` through ``channel`` (the first
        submitter of a case stays its submitter, as in the store)."""
        self._progress.setdefault((tenant, business_no), []).append(record)
        self._submitters.setdefault((tenant, business_no), (client, channel))

    def add_notice(self, tenant: str, business_no: str, notice: dict[str, Any]) -> None:
        """A rendered notice of a case (``content`` base64), as the store keeps it."""
        self._notices.setdefault((tenant, business_no), []).append(notice)

    def _readable(self, tenant: str, business_no: str, client: str | None,
                  channel: str | None) -> bool:
        by, through = self._submitters.get((tenant, business_no), ("", ""))
        return (client is None or by == client) and (channel is None or through == channel)

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
