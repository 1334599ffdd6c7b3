"""What the web layer needs from the hub, as one small Protocol.

The route engine's runtime (``routes.runtime.Hub``) implements ``HubPort``;
``web.fake.FakeHub`` is the in-memory sibling for tests. Nothing in ``web``
imports the engine, and nothing in ``web`` asks the hub for more than this.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from bdchub.core.envelope import Envelope, Hop


@runtime_checkable
class HubPort(Protocol):
    def publish(self, envelope: Envelope) -> None:
        """Durable hand-off to the broker. Returns only once the message is safe;
        raises ``core.errors.HubError`` when it is not (nothing was accepted)."""
        ...

    def run_sync(self, route: str, envelope: Envelope) -> Envelope:
        """Run a request/reply route (``inbound.endpoints``) and return its reply."""
        ...

    def submit(self, route: str, envelope: Envelope) -> None:
        """Durably queue ``envelope`` for one route (endpoint routes without ``reply``)."""
        ...

    def progress_by_business_no(self, tenant: str, business_no: str, *,
                                client: str | None = None, channel: str | None = None
                                ) -> list[dict[str, Any]] | dict[str, Any] | None:
        """Progress of one business: one answer, a list of records, or None / [] when unknown.
        With ``client`` (``channel``) only a case that client (a client of that channel)
        submitted is answered."""
        ...

    def progress_by_applicant(self, tenant: str, id_number: str, *,
                              client: str | None = None,
                              channel: str | None = None) -> list[dict[str, Any]]:
        """Progress records of every business where ``id_number`` is an applicant
        (with ``client`` / ``channel``: of those it submitted, as above)."""
        ...

    def notices(self, tenant: str, business_no: str, *, client: str | None = None,
                channel: str | None = None) -> list[dict[str, Any]]:
        """The electronic notices of a case (id, kind, name, media_type, sha256, size,
        created_at; no file), narrowed by ``client`` / ``channel`` as progress is."""
        ...

    def notice(self, tenant: str, business_no: str, notice_id: str, *,
               client: str | None = None, channel: str | None = None) -> dict[str, Any] | None:
        """One notice with its file (``content``, base64), or None, narrowed as above."""
        ...

    def correction_deadline(self, tenant: str, business_no: str) -> str | None:
        """The last day (YYYY-MM-DD) the case's correction is taken, as its latest
        correction notice stated it, or None when none stated one."""
        ...

    def audit(self, event: str, **fields: Any) -> None:
        """Append one audit record. Callers pass no PII unmasked."""
        ...

    def endpoints(self) -> list[dict[str, Any]]:
        """Inbound endpoints declared by routes (``from: {endpoint: …}``), served
        besides those of ``inbound.endpoints``: ``route``, ``path``, ``method`` …"""
        ...

    def shares_store(self) -> bool:
        """Whether another process or hub may open this hub's store (anything but an
        in-memory store): what the web layer must remember across requests, such as
        nonces, then lives there (``remember_nonce``)."""
        ...

    def remember_nonce(self, digest: str, expires_at: float, now: float) -> bool:
        """Record a signed request's nonce (``digest``) until ``expires_at`` where
        every process serving this hub sees it. False when it is recorded and
        unexpired already: a replay, whichever process saw it first."""
        ...

    def request_records(self) -> Any:
        """Where inbound writes are kept by idempotency key (``web.idempotency.
        RecordStore``: claim, settle, release): the store every process serving this
        hub shares, so a repeat is recognised whichever process it reaches."""
        ...

    def record_hops(self, envelope: Envelope, hops: Sequence[Hop]) -> bool:
        """Keep ``hops`` a peer hub reported (``web.federation``) in this hub's trace of
        the case of ``envelope`` (its tenant and business number), once per envelope
        id: False when that report was kept already."""
        ...
