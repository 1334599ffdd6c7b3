"""Deterministic message ids.

A message a route emits (``publish``, ``split``, a continuation, a parked or
replayed copy) gets an id derived from its parent, so that when the parent is
delivered again after a crash the same children come out with the same ids
and their consumers' idempotency records absorb them. The id keeps the
parent's UUIDv7 millisecond prefix, so derived ids still sort by time.
"""

from __future__ import annotations

import hashlib
import json
import uuid


def derive_id(parent: str, *parts: object) -> str:
    """A UUIDv7-shaped id that is a pure function of ``parent`` and ``parts``."""
    digest = hashlib.sha256("\x1f".join((parent, *map(str, parts))).encode()).digest()
    try:
        ms = uuid.UUID(parent).int >> 80
    except ValueError:
        ms = int.from_bytes(digest[:6], "big")
    tail = int.from_bytes(digest[6:16], "big")
    counter = (tail >> 62) & 0xFFF
    rand = tail & ((1 << 62) - 1)
    value = (ms << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62) | rand
    return str(uuid.UUID(int=value))


def event_id(type_: str, tenant: str, key: object) -> str:
    """The id of an event a department reports, whichever way it reaches the hub
    (its callback, the reconciler's query): a pure function of the message type,
    the tenant and what identifies the event at its source (the registration
    system's event sequence ``XH``), so the second arrival of one event is the
    same message and the routes' idempotency records absorb it."""
    canonical = json.dumps(key, ensure_ascii=False, sort_keys=True, separators=(",", ":"),
                           default=str)
    return derive_id("event", type_, tenant, canonical)
