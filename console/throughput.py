"""Throughput and error rate of the hub's routes for the overview's charts.

Read from the store's ``processed`` table: every asynchronous route writes one row
per message it finishes (``Store.finish``), with the outcome and the time, in the
transaction that stores the outcome itself. So the figures are the same whichever
process handled the message, and a restart loses none of them (the process
reports, which live in memory and go with their process, would). ``processed_at``
is indexed, and the count is one GROUP BY over the window's slots in the
database: the answer is at most ``WINDOWS[window][1]`` rows however busy the hub
was, and the rows read are the window's alone.

A message counts once per route that finished it; it failed when it was parked,
dead-lettered or sent to a fallback route. Request/reply routes (answered within
the inbound request) record no ``processed`` row and are not counted here: their
caller has the answer, and the inbound metrics and the audit log count those requests.
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import Integer, case, cast, func, literal_column, select

from bdchub.core.store import Store, processed

#: window -> (seconds of a slot, slots): the last hour per minute, the last day per
#: quarter hour.
WINDOWS: dict[str, tuple[float, int]] = {"hour": (60.0, 60), "day": (900.0, 96)}
#: Outcomes (``routes.engine``) of a message that failed at a step.
FAILED = ("parked", "dead_letter", "fallback", "error")


def window_bounds(window: str, now: float) -> tuple[float, float, float, int]:
    """(since, until, slot seconds, slots) of ``window`` ending with the slot ``now``
    is in: slots start on whole minutes (quarter hours), as a clock shows them."""
    width, slots = WINDOWS[window]
    until = (math.floor(now / width) + 1) * width
    return until - width * slots, until, width, slots


def throughput(store: Store, window: str, now: float, route: str | None = None
               ) -> dict[str, Any]:
    """Messages handled and failed per slot of ``window`` (every slot, empty ones
    with 0), for the whole hub or one ``route``."""
    since, until, width, slots = window_bounds(window, now)
    counts = {slot: (handled, failed) for slot, handled, failed in
              _counted(store, since, until, width, route) if 0 <= slot < slots}
    points = [{"at": since + i * width, "handled": counts.get(i, (0, 0))[0],
               "failed": counts.get(i, (0, 0))[1]} for i in range(slots)]
    return {"window": window, "since": since, "until": until, "slot_seconds": width,
            "route": route, "points": points,
            "handled": sum(p["handled"] for p in points),
            "failed": sum(p["failed"] for p in points)}


def query(store: Store, since: float, until: float, width: float,
          route: str | None = None) -> Any:
    """The GROUP BY of ``throughput``: (slot, handled, failed) rows."""
    offset = (processed.c.processed_at - since) / width
    # FLOOR is not in every SQLite build; the offset is never negative, so a cast
    # (which truncates on SQLite, but rounds on PostgreSQL) does there.
    slot = (func.floor(offset) if store.dialect == "postgresql"
            else cast(offset, Integer)).label("slot")
    failed = func.sum(case((processed.c.outcome.in_(FAILED), 1), else_=0))
    q = (select(slot, func.count().label("handled"), failed.label("failed"))
         .where(processed.c.processed_at >= since, processed.c.processed_at < until))
    if route:
        q = q.where(processed.c.route == route)
    # By the slot's name: the expression twice would be two sets of parameters,
    # which PostgreSQL does not take for the same expression.
    return q.group_by(literal_column("slot"))


def _counted(store: Store, since: float, until: float, width: float,
             route: str | None) -> list[tuple[int, int, int]]:
    with store.engine.connect() as conn:
        rows = conn.execute(query(store, since, until, width, route)).all()
    return [(int(slot), int(handled), int(failed or 0)) for slot, handled, failed in rows]
