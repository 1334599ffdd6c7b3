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

from bdchub.core.masking import Masker


def applicant_key(tenant: str, id_number: str) -> str:
    secret = os.environ.get("BDCHUB_PII_KEY", "bdc-hub-development-key").encode()
    msg = f"{tenant}:{id_number.strip().upper()}".encode()
    return hmac.new(secret, msg, hashlib.sha256).hexdigest()


def extract(message_type: str, tenant: str, body: Mapping[str, Any],
            masking: Masker) -> dict[str, Any] | None:
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

