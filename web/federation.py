"""Envelopes from peer hubs: ``POST /api/v1/hub/envelopes`` (issue #14, federation).

A county hub and the province hub talk with one signed envelope, the whole
message as the sending hub's routes had it (``connectors.hub``)::

    {"id": "0190…", "type": "tax.cleared", "tenant": "320684",
     "business_no": "YWH2024000123", "headers": {…}, "body": {…}}

The sender is a client of ``inbound.clients`` with ``channel: hub``, listing the
tenants it may act for. Checks, in order (each refusal answered and audited as
``inbound.rejected`` by the inbound application, nothing handed over)::

    signature and nonce (401) -> client suspended (403) -> channel hub (403
    not_a_peer_hub) -> JSON (400/415) -> envelope shape (422) -> tenant one the
    client may act for (403 tenant_forbidden: an envelope for another county)
    -> the client may send the type (403) -> characters (422) -> idempotency
    records (a repeat answers the first answer) -> hand-over (503)

The message goes to this hub's routes under the SAME id: a message that
crosses twice (its answer was lost, the sender parked it and sent it again)
is absorbed. The sender puts the id in ``Idempotency-Key``, so a repeat within
``inbound.idempotency.retention`` gets the first acknowledgement again and
nothing is handed over (``web.idempotency``); one that comes later, or under
another key, reaches the routes, whose processed records absorb it. Headers the hub itself puts on
messages (``x-hub-…``: where to resume, how often parked) are dropped: another
hub's bookkeeping must not steer this hub's runs. The answer, 202, is the
acknowledgement the sender keeps (``id``, ``status``, ``hub``, ``received_at``).

``hub.hops_reported`` (a county reporting the hops its routes ran for a case)
is not routed: its hops go into this hub's trace of the case, each route named
``{tenant}/{route}`` so ``hub trace`` shows where they ran, once per report id
(a report sent again answers ``status: duplicate``).
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bdchub.core.envelope import TYPE_PATTERN, Envelope, Hop
from bdchub.core.errors import HubError
from bdchub.core.i18n import _

from .http import Answer, ApiError, Request, json_answer, read_json
from .intake import Intake, unavailable
from .ports import HubPort

#: The channel of an inbound client that is another hub.
PEER_CHANNEL = "hub"
HOPS_REPORTED = "hub.hops_reported"
#: Headers only a hub itself puts on its messages (``routes.headers.HUB_PREFIX``).
HUB_HEADER_PREFIX = "x-hub-"
BUSINESS_NO = re.compile(r"^[A-Za-z0-9_-]{0,64}$")
MAX_HEADERS = 64
MAX_HOPS = 1000
_HOP_TEXT = {"route": 150, "step": 200, "outcome": 32, "detail": 500}


class Federation:
    """The handler of ``POST /api/v1/hub/envelopes`` (see the module's text)."""

    def __init__(self, intake: Intake, hub: HubPort):
        self.intake = intake
        self.hub = hub

    def post_envelope(self, req: Request) -> Answer:
        intake = self.intake
        intake.read_body(req)
        client = intake.authenticate(req)
        if client.channel != PEER_CHANNEL:
            raise ApiError(403, "not_a_peer_hub", _(
                "client {client} is not a peer hub (channel hub): it may not send envelopes",
                client=client.name), reason="not_a_peer_hub")
        envelope = self.envelope(req, read_json(req))
        if envelope.type == HOPS_REPORTED:
            return self._record_hops(req, envelope)
        intake.permit(req, envelope.type)
        intake.check_text(dict(envelope.body))
        try:
            intake.idempotency.claim(req, envelope)
        except HubError:
            raise unavailable("idempotency_unavailable") from None
        intake.hand_over(req, envelope)
        return json_answer(202, self._ack(envelope, "accepted"))

    def envelope(self, req: Request, raw: Mapping[str, Any]) -> Envelope:
        """The envelope the peer sent, checked, with its id and this hub's view of
        who sent it; the tenant one the client may act for."""
        problems: list[dict[str, str]] = []

        def bad(path: str, message: str) -> None:
            problems.append({"path": path, "message": message, "keyword": "type"})

        message_id = raw.get("id")
        if not (isinstance(message_id, str) and _is_uuid(message_id)):
            bad("$.id", _("the message id must be a UUID"))
        type_ = raw.get("type")
        if not (isinstance(type_, str) and TYPE_PATTERN.match(type_)):
            bad("$.type", _("must be a dotted message type, e.g. tax.cleared"))
        tenant = raw.get("tenant")
        if not isinstance(tenant, str) or not tenant:
            bad("$.tenant", _("tenant must be a 6-digit division code"))
        business_no = raw.get("business_no", "")
        if not (isinstance(business_no, str) and BUSINESS_NO.match(business_no)):
            bad("$.business_no", _("'{value}' is not a valid business number",
                                   value=str(business_no)[:40]))
        headers = raw.get("headers") or {}
        if not (isinstance(headers, dict) and len(headers) <= MAX_HEADERS
                and all(isinstance(k, str) and isinstance(v, str) and len(k) <= 200
                        and len(v) <= 2000 for k, v in headers.items())):
            bad("$.headers", _("headers must be at most {n} names with text values",
                               n=MAX_HEADERS))
        body = raw.get("body")
        if not isinstance(body, dict):
            bad("$.body", _("must be a JSON object"))
        if problems:
            raise ApiError(422, "schema_violation", _("the message does not match its schema"),
                           violations=problems, reason="bad_envelope")
        tenant = self.intake.choose_tenant(req, {"tenant": tenant})
        client = req.client
        assert client is not None
        kept = {k: v for k, v in headers.items() if not k.startswith(HUB_HEADER_PREFIX)}
        kept.update({"inbound.endpoint": req.endpoint, "inbound.client": client.name,
                     "inbound.channel": client.channel})
        return Envelope(type=type_, tenant=tenant, body=body, business_no=business_no,
                        source=f"hub:{client.name}", headers=kept, id=message_id)

    def _record_hops(self, req: Request, envelope: Envelope) -> Answer:
        if not envelope.business_no:
            raise ApiError(422, "schema_violation", _("the message does not match its schema"),
                           violations=[{"path": "$.business_no", "keyword": "required",
                                        "message": _("a report of hops names its case")}],
                           reason="bad_envelope")
        hops = reported_hops(envelope)
        try:
            recorded = self.hub.record_hops(envelope, hops)
        except HubError:
            raise unavailable("store_failed") from None
        client = req.client
        self.intake.count(req, "accepted")
        self.intake.audit("federation.hops_reported", {
            "message_id": envelope.id, "tenant": envelope.tenant,
            "business_no": envelope.business_no, "client": client.name if client else "",
            "hops": len(hops), "recorded": recorded})
        return json_answer(202, self._ack(envelope, "recorded" if recorded else "duplicate"))

    def _ack(self, envelope: Envelope, status: str) -> dict[str, Any]:
        at = datetime.fromtimestamp(self.intake.clock(), tz=UTC).astimezone()
        return {"id": envelope.id, "type": envelope.type, "tenant": envelope.tenant,
                "business_no": envelope.business_no, "status": status,
                "hub": self.intake.tenant, "received_at": at.isoformat(timespec="seconds")}


def reported_hops(envelope: Envelope) -> list[Hop]:
    """The hops of a ``hub.hops_reported`` body (``{"hops": [{route, step, started_at,
    duration_ms, outcome, detail}]}``), each route marked with the reporting tenant;
    422 for a report that is not that."""
    found = envelope.body.get("hops")
    if not isinstance(found, list) or not 0 < len(found) <= MAX_HOPS:
        raise _bad_hop("$.body.hops", _("a list of 1 to {n} hops", n=MAX_HOPS))
    hops = []
    for i, item in enumerate(found):
        where = f"$.body.hops[{i}]"
        if not isinstance(item, dict):
            raise _bad_hop(where, _("must be a JSON object"))
        text = {}
        for key, limit in _HOP_TEXT.items():
            value = item.get(key, "ok" if key == "outcome" else "")
            if not isinstance(value, str) or (key in ("route", "step") and not value):
                raise _bad_hop(f"{where}.{key}", _("must be text"))
            text[key] = value[:limit]
        started, took = item.get("started_at"), item.get("duration_ms", 0)
        if not (_number(started) and _number(took)):
            raise _bad_hop(where, _("started_at and duration_ms must be numbers"))
        hops.append(Hop(route=f"{envelope.tenant}/{text['route']}", step=text["step"],
                        started_at=float(started), duration_ms=float(took),
                        outcome=text["outcome"], detail=text["detail"]))
    return hops


def _bad_hop(path: str, message: str) -> ApiError:
    return ApiError(422, "schema_violation", _("the message does not match its schema"),
                    violations=[{"path": path, "message": message, "keyword": "type"}],
                    reason="bad_hops")


def _number(value: Any) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value) and 0 <= value < 4e12)


def _is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


__all__ = ["PEER_CHANNEL", "Federation", "reported_hops"]
