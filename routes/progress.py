"""Progress of applications, as the one-window platforms ask for it.

Every message a route finishes that carries a business number may move the
application's progress: its ``stage`` / ``status`` (progress messages), its
registration type and its first applicant (application messages). The store
keeps only masked names and ID numbers, and a keyed hash of the ID number so
that "my applications" can be looked up by the applicant's ID without the ID
being stored. Answers are masked per BRIEF §4: surname kept (张*), ID numbers
first 6 and last 4.

The hashing key comes from ``BDCHUB_PII_KEY``; set it in production (the
default only keeps look-ups working in development).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from typing import Any

from bdchub.core.masking import Masker, mask_middle, mask_name


class Masking:
    """Masking rules, from the config's ``masking:`` block."""

    def __init__(self, block: Mapping[str, Any] | None = None):
        block = block or {}
        self.name_keep = int(block.get("name_keep_first", 1))
        self.id_head = int(block.get("id_keep_first", 6))
        self.id_tail = int(block.get("id_keep_last", 4))
        self._in_text = Masker(id_keep=(self.id_head, self.id_tail),
                               phone_keep=(int(block.get("phone_keep_first", 3)),
                                           int(block.get("phone_keep_last", 4)))).text

    def name(self, value: str) -> str:
        value = (value or "").strip()
        if self.name_keep == 1:
            return mask_name(value)
        return mask_middle(value, self.name_keep, 0) if value else value

    def id_number(self, value: str) -> str:
        return mask_middle((value or "").strip(), self.id_head, self.id_tail)

    def text(self, value: str) -> str:
        """ID and mobile numbers inside free text (an error, a step's detail) masked."""
        return self._in_text(value or "")


def applicant_key(tenant: str, id_number: str) -> str:
    secret = os.environ.get("BDCHUB_PII_KEY", "bdc-hub-development-key").encode()
    msg = f"{tenant}:{id_number.strip().upper()}".encode()
    return hmac.new(secret, msg, hashlib.sha256).hexdigest()


def extract(message_type: str, tenant: str, body: Mapping[str, Any],
            masking: Masking) -> dict[str, Any] | None:
    """The progress columns a message sets, or None if it says nothing about progress."""
    values: dict[str, Any] = {}
    stage = body.get("stage")
    if isinstance(stage, str):
        values["stage"] = stage[:32]
    status = body.get("status")
    if isinstance(status, str):
        values["status"] = status[:32]
    reg = body.get("registration_type")
    if isinstance(reg, str):
        values["registration_type"] = reg[:8]
    applicants = body.get("applicants")
    first = applicants[0] if isinstance(applicants, list) and applicants else None
    if isinstance(first, Mapping):
        name, id_number = first.get("name"), first.get("id_number")
        if isinstance(name, str):
            values["applicant_name"] = masking.name(name)[:100]
        if isinstance(id_number, str) and id_number.strip():
            values["applicant_id"] = masking.id_number(id_number)[:64]
            values["applicant_key"] = applicant_key(tenant, id_number)
    if not values:
        return None
    values["last_type"] = message_type[:200]
    return values


def answer(row: Mapping[str, Any], history: list[Mapping[str, Any]]) -> dict[str, Any]:
    """A progress row and its hops as the one-window platforms are answered (masked)."""
    return {
        "tenant": row["tenant"],
        "business_no": row["business_no"],
        "stage": row["stage"],
        "status": row["status"],
        "registration_type": row["registration_type"],
        "applicant": {"name": row["applicant_name"], "id_number": row["applicant_id"]},
        "updated_at": row["updated_at"],
        "history": _per_message(history),
    }


def _per_message(hops: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One entry per (message, route): when it started and how it ended."""
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for h in hops:
        key = (h["message_id"], h["route"])
        entry = seen.get(key)
        if entry is None:
            seen[key] = {"at": h["started_at"], "type": h["type"], "route": h["route"],
                         "outcome": h["outcome"]}
        else:
            entry["outcome"] = h["outcome"]
    return sorted(seen.values(), key=lambda e: e["at"])


NAME_FIELDS = frozenset(("name", "qlrmc", "xm", "applicant_name", "agent_name", "contact_name",
                         "name_man", "name_woman", "dlrmc", "sqrmc", "ywrmc"))
ID_FIELDS = frozenset(("id_number", "zjh", "cert_num_man", "cert_num_woman", "id_no", "idcard",
                       "sfzh", "dlrzjh"))
PHONE_FIELDS = frozenset(("phone", "mobile", "telephone", "tel", "lxdh", "sjhm", "contact_phone"))


def mask_body(value: Any, masking: Masking, key: str = "") -> Any:
    """A copy of ``value`` with names, ID numbers and phone numbers masked, by field name."""
    if isinstance(value, Mapping):
        return {k: mask_body(v, masking, str(k).lower()) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_body(v, masking, key) for v in value]
    if isinstance(value, str):
        if key in NAME_FIELDS:
            return masking.name(value)
        if key in ID_FIELDS:
            return masking.id_number(value)
        if key in PHONE_FIELDS:
            n = len(value)
            return value[:3] + "*" * max(0, n - 7) + value[-4:] if n > 7 else "*" * n
    return value
