"""Progress of applications, as the one-window platforms ask for it.

Every message a route finishes that carries a business number may move the
application's progress: its ``stage`` / ``status`` (progress messages), its
registration type and its first applicant (application messages). The store
keeps only the masked name, the ID number reduced to what a person needs to
recognise their case (``masking.stored``: the last 4 characters by default),
and a keyed hash of the ID number so that "my applications" can be looked up
by the applicant's ID without the ID being stored.

The hash is HMAC-SHA256 under the lookup key, derived from the hub's data key
(``core.sealing``: ``LOOKUP_INFO``), never from a value in the code: a copied
store, which holds neither key, gives no way to test a guessed ID number
against it. Every process of a hub shares the data key, so each finds what the
others wrote. Rows written before this key existed were hashed under
``BDCHUB_PII_KEY``; they are found by that old key only while it is still
given (``ApplicantKeys.candidates``), and the next message of the case re-keys its
row.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from typing import Any

from bdchub.core.masking import Masker
from bdchub.core.sealing import LOOKUP_INFO, Sealer, process_sealer

LEGACY_KEY_ENV = "BDCHUB_PII_KEY"

class ApplicantKeys:
    """Keyed hashes of ID numbers for progress look-ups."""

    def __init__(self, key: bytes, legacy: bytes | None = None):
        self._key = key
        self._legacy = legacy

    @classmethod
    def from_sealer(cls, sealer: Sealer | None) -> ApplicantKeys:
        """Keys derived from the store's data key; a store without one (in memory,
        nothing of it outlives the process) derives them from this process's key."""
        legacy = os.environ.get(LEGACY_KEY_ENV)
        return cls((sealer or process_sealer()).derive(LOOKUP_INFO),
                   legacy.encode() if legacy else None)

    def key(self, tenant: str, id_number: str) -> str:
        """What a progress row stores for this applicant."""
        return _hmac(self._key, tenant, id_number)

    def candidates(self, tenant: str, id_number: str) -> list[str]:
        """Every stored value that may belong to this applicant (the current key
        first, then the legacy one while it is given)."""
        found = [self.key(tenant, id_number)]
        if self._legacy:
            found.append(_hmac(self._legacy, tenant, id_number))
        return found


def _hmac(key: bytes, tenant: str, id_number: str) -> str:
    msg = f"{tenant}:{id_number.strip().upper()}".encode()
    return hmac.new(key, msg, hashlib.sha256).hexdigest()


def extract(message_type: str, tenant: str, body: Mapping[str, Any],
            masking: Masker, keys: ApplicantKeys) -> dict[str, Any] | None:
    """The progress columns a message sets, or None if it says nothing about progress."""
    values: dict[str, Any] = {}
    stage = body.get("stage")
    if isinstance(stage, str):
        values["stage"] = stage[:32]
        # The source's sequence of this change (the registration system's XH): the
        # store keeps the stage of the highest, whatever order changes arrive in.
        sequence = body.get("sequence")
        if isinstance(sequence, int | str) and str(sequence).strip().isdigit():
            values["stage_seq"] = int(str(sequence).strip())
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
            values["applicant_id"] = masking.stored_id(id_number)[:64]
            values["applicant_key"] = keys.key(tenant, id_number)
    if not values:
        return None
    values["last_type"] = message_type[:200]
    return values


#: The message that opens a case. The inbound client it came from (``web.intake``'s
#: headers, which the messages routes make of it keep, as a bank batch's items do)
#: is the case's submitter: clients that may read only their own or their channel's
#: cases are answered by it (the store keeps the first one).
OPENS_CASE = "application.submitted"


def submitter(message_type: str, headers: Mapping[str, str]) -> dict[str, str] | None:
    """The submitter columns a message sets, or None if it opens no case."""
    client = headers.get("inbound.client") if message_type == OPENS_CASE else None
    if not client:
        return None
    return {"submitted_by": client[:200],
            "submitted_channel": (headers.get("inbound.channel") or "")[:32]}


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

