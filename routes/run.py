"""The state of one route run over one message, and what comes out of it.

A run starts from the message it received and collects, as its steps go, the
new body, the hops (one per step, with timings), the messages to emit, the
verification records, and what becomes of the message (parked, dead letter,
waiting). Nothing is published or stored while it runs: the engine does both
when the run is over (``Engine.handle``), so a crash mid-run leaves nothing
half-done.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bdchub.core.envelope import Envelope, Hop
from bdchub.core.ids import derive_id
from bdchub.core.masking import Masker

from .headers import (
    H_CORRELATION,
    H_ORIGIN,
    H_OUTCOME,
    H_PARENT,
    H_RESUME,
    H_RESUME_MODE,
    H_ROUTE,
    HUB_PREFIX,
)
from .progress import ApplicantKeys, extract, submitter

if TYPE_CHECKING:
    from .compiler import Route
    from .steps.base import Step


@dataclass
class Outgoing:
    envelope: Envelope
    queue: str | None = None  # None: by type on the topic exchange


def now_iso(ts: float) -> str:
    """``_now`` of expressions: ``ts`` as the hub's local time, ISO 8601 to the second
    with its offset (``2026-03-01T10:00:00+08:00``), the form the registration
    systems' own times take, so text comparisons with them order as time does.
    A JMESPath ``now()`` would need its options passed to every ``search`` of every
    step kind, connector and poller; a variable reaches them all as data does."""
    return datetime.fromtimestamp(ts, tz=UTC).astimezone().isoformat(timespec="seconds")


# Outcomes of a run that did not get through its steps: the body it stopped
# with says nothing about the application.
FAILED = frozenset(("parked", "dead_letter", "fallback", "error"))


class Run:
    """The state of one route run over one message."""

    def __init__(self, route: Route, received: Envelope, clock: Callable[[], float]):
        self.route = route
        self.received = received
        headers = dict(received.headers)
        self.origin = headers.get(H_ORIGIN) or received.id
        self.type = received.type
        self.tenant = received.tenant
        self.business_no = received.business_no
        self.source = received.source
        self.headers = headers
        self.body: dict[str, Any] = dict(received.body)
        self.hops: list[Hop] = []
        self.out: list[Outgoing] = []
        self.records: list[dict[str, Any]] = []
        self.correlation: dict[str, Any] | None = None
        self.parked: dict[str, Any] | None = None
        self.dead_letter: dict[str, Any] | None = None
        self.progress_extra: dict[str, Any] | None = None
        # Why a step found the message not credible (``require_stage``): then it moves
        # nothing of the case's progress, whatever it claims.
        self.discredited = ""
        # (tenant, business number) keys the message had before a ``set`` re-keyed it.
        self.former: list[tuple[str, str]] = []
        self.outcome = "completed"
        self.error: BaseException | None = None
        self.failed_step: Step | None = None
        self.clock = clock
        # Which iteration of an ``each`` the steps run in ("@1", "@0@2"; "" outside a
        # loop): part of idempotency keys and message ids, so iterations differ.
        self.scope = ""

    def rekey(self, tenant: str, business_no: str) -> None:
        key = (self.tenant, self.business_no)
        if (tenant, business_no) != key and key not in self.former:
            self.former.append(key)
        self.tenant, self.business_no = tenant, business_no

    def progress(self, masking: Masker, keys: ApplicantKeys) -> dict[str, Any] | None:
        """What this run says about the application's progress: the message it
        received, then the body it ends with (a route may set stage / status)."""
        if not self.business_no or self.discredited:
            return None
        progress = extract(self.type, self.tenant, self.received.body, masking, keys)
        if self.outcome not in FAILED and self.body != self.received.body:
            ended = extract(self.type, self.tenant, self.body, masking, keys)
            if ended:
                progress = {**(progress or {}), **ended}
        if self.progress_extra:
            progress = {**(progress or {}), **self.progress_extra}
        opened = submitter(self.type, self.received.headers)
        if opened:
            progress = {**(progress or {}), **opened}
        return progress

    def data(self) -> dict[str, Any]:
        """What every expression of the route sees: the body and the message's own
        fields, and ``_now`` from the run's clock (a test's fake clock included)."""
        return {**self.body, "_type": self.type, "_tenant": self.tenant,
                "_business_no": self.business_no, "_id": self.received.id,
                "_source": self.source, "_headers": self.headers,
                "_now": now_iso(self.clock())}

    def key(self, step: Step, suffix: str = "") -> str:
        return f"{self.origin}:{self.route.name}:{step.id}{self.scope}{suffix}"

    def business_headers(self) -> dict[str, str]:
        return {k: v for k, v in self.headers.items() if not k.startswith(HUB_PREFIX)}

    def emit(self, type_: str, body: Mapping[str, Any], step: Step, n: int = 0,
             queue: str | None = None, headers: Mapping[str, str] | None = None,
             business_no: str | None = None) -> Envelope:
        env = Envelope(type=type_, tenant=self.tenant, body=body,
                       business_no=self.business_no if business_no is None else business_no,
                       source=f"route:{self.route.name}",
                       headers={**self.business_headers(), H_PARENT: self.received.id,
                                H_ROUTE: self.route.name, **(headers or {})},
                       id=derive_id(self.origin, self.route.name, step.id + self.scope, n),
                       trace=(*self.received.trace, *self.hops))
        self.out.append(Outgoing(env, queue))
        return env

    def state(self, *, id: str, headers: Mapping[str, str]) -> Envelope:  # noqa: A002
        """The message as it is now (for parking, continuations and fallbacks)."""
        keep = {k: v for k, v in self.headers.items()
                if k not in (H_RESUME, H_RESUME_MODE, H_CORRELATION)}
        return Envelope(type=self.type, tenant=self.tenant, body=self.body,
                        business_no=self.business_no, source=self.source,
                        headers={**keep, H_ORIGIN: self.origin, **headers}, id=id,
                        created_at=self.received.created_at, attempt=self.received.attempt,
                        trace=(*self.received.trace, *self.hops))

    def result(self) -> Envelope:
        return Envelope(type=self.type, tenant=self.tenant, body=self.body,
                        business_no=self.business_no, source=self.source,
                        headers={**self.headers, H_OUTCOME: self.outcome}, id=self.received.id,
                        created_at=self.received.created_at, attempt=self.received.attempt,
                        trace=(*self.received.trace, *self.hops))


