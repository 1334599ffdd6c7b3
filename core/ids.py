"""Deterministic message ids.

A message a route emits (``publish``, ``split``, a continuation, a parked or
replayed copy) gets an id derived from its parent, so that when the parent is
delivered again after a crash the same children come out with the same ids
and their consumers' idempotency records absorb them. The id keeps the
parent's UUIDv7 millisecond prefix, so derived ids still sort by time.
"""

from __future__ import annotations

import hashlib
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
