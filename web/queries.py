"""Queries of the register: what the inbound API adds to a route's endpoint whose
message type is ``query.…`` (guide §二(一)7: a person's own properties, a unit's
status and restrictions, the no-property certificate).

A query reads personal data of people other than the caller's staff, so the
web layer, not each route, holds the rules every query keeps:

- **purpose**: the body names why it asks (``purpose``, text); a query without
  one is refused with 422 before anything is asked of the registration system;
- **who may ask**: the message type is in the client's ``sends`` (403
  ``type_forbidden`` otherwise) and the tenant is one it may act for (403
  ``tenant_forbidden``), as for every message (``web.intake``);
- **masked answer**: the route's answer goes out through the hub's one masking
  block (``masking:``, ``core.masking``): names keep the surname, ID numbers the
  first 6 and last 4;
- **a document is sealed by its digest**: an answer carrying ``document`` (a
  certificate the registration system issued) gets ``document_sha256``, the
  SHA-256 of the masked document's canonical JSON (RFC 8785), so whoever holds
  the document can check it is the one the hub answered;
- **audit**: every answered query is recorded as ``inbound.query``: who asked
  (client, channel), for what (type, purpose), about whom or what (the subject,
  masked), in which tenant, and the answer's status and count. The unmasked ID
  number never reaches the audit log.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import rfc8785

from bdchub.core.envelope import Envelope
from bdchub.core.i18n import _
from bdchub.core.masking import Masker

from .http import ApiError, Request

PREFIX = "query."
#: Body fields that say how to ask, not whom or what about.
_NOT_SUBJECT = frozenset({"purpose", "query_no", "tenant", "channel"})
_PURPOSE_MAX = 200


def is_query(message_type: str) -> bool:
    return message_type.startswith(PREFIX)


def document_sha256(document: Any) -> str:
    """SHA-256 (hex) of ``document`` as canonical JSON (RFC 8785)."""
    return hashlib.sha256(rfc8785.dumps(document)).hexdigest()


class Queries:
    """The query rules of one inbound application (its masker and its audit)."""

    def __init__(self, masker: Masker, audit: Callable[[str, dict[str, Any]], None]):
        self.masker = masker
        self._audit = audit

    @staticmethod
    def require_purpose(body: dict[str, Any]) -> None:
        purpose = body.get("purpose")
        if isinstance(purpose, str) and purpose.strip():
            return
        raise ApiError(422, "schema_violation", _("a query must say its purpose"),
                       violations=[{"path": "$.purpose", "keyword": "required",
                                    "message": _("the purpose of the query is required")}],
                       reason="purpose_missing")

    def answer(self, req: Request, envelope: Envelope, status: int,
               body: dict[str, Any]) -> dict[str, Any]:
        """The route's answer as the client gets it (masked, its document digested),
        once the query is in the audit log."""
        masked = self.masker(body)
        document = masked.get("document")
        if isinstance(document, dict):
            masked["document_sha256"] = document_sha256(document)
        self.audit(req, envelope, status, masked)
        return masked

    def audit(self, req: Request, envelope: Envelope, status: int,
              answer: dict[str, Any]) -> None:
        client = req.client
        asked = envelope.body
        subject = self.masker({k: v for k, v in asked.items() if k not in _NOT_SUBJECT})
        fields: dict[str, Any] = {
            "message_id": envelope.id, "type": envelope.type, "tenant": envelope.tenant,
            "client": client.name if client else "", "channel": client.channel if client else "",
            "endpoint": req.endpoint,
            "purpose": self.masker.text(str(asked.get("purpose") or ""))[:_PURPOSE_MAX],
            "subject": subject, "status": status}
        for key in ("total", "issued", "property_count"):
            if key in answer:
                fields[key] = answer[key]
        if isinstance(answer.get("certificate_no"), str):
            fields["certificate_no"] = answer["certificate_no"]
        if "document_sha256" in answer:
            fields["document_sha256"] = answer["document_sha256"]
        self._audit("inbound.query", fields)
