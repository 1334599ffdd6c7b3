"""Readiness of a running hub's parts, as ``/readyz`` reports it.

Each part that can stop answering (the store, the broker, the route workers,
the pollers) is asked by a probe: a function that returns nothing when the
part answers and raises, or returns the reason, when it does not. ``probe``
runs one and says what came of it as a ``Part``; the parts' owners assemble
theirs (``routes.runtime.Hub.readiness``, ``app.service.HubService.readiness``)
and ``web.health`` answers with them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("bdchub.health")


@dataclass(frozen=True)
class Part:
    """One part of the hub and whether it answers; ``error`` says why not."""

    name: str
    ok: bool
    error: str = ""


def probe(name: str, check: Callable[[], str | None]) -> Part:
    """Run ``check``: it answers when it returns None, and not when it returns a
    reason or raises."""
    try:
        reason = check()
    except Exception as exc:  # noqa: BLE001 - any failure of a probe is the part's
        return Part(name, False, f"{type(exc).__name__}: {exc}"[:500])
    return Part(name, reason is None, reason or "")


def sqlite_path(url: str) -> str | None:
    """The file of a ``sqlite:///…`` (or ``sqla+sqlite:///…``) URL; None for another
    database or one in memory."""
    for scheme in ("sqla+sqlite:///", "sqlite:///"):
        if url.startswith(scheme):
            path = url[len(scheme):].split("?", 1)[0]
            return path if path and path != ":memory:" else None
    return None


def ping_sqlite(path: str, timeout: float = 2.0) -> None:
    """Raise unless the SQLite database at ``path`` opens and answers now. A fresh
    connection, never one of a pool: a pooled one keeps answering from a file that
    was removed or replaced under it. Opened read-write without creating, so a
    missing file stays missing."""
    import sqlite3

    conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=timeout,
                           check_same_thread=False)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    finally:
        conn.close()
