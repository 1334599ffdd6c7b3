"""The audit page's source ``calls``: the outbound calls to departments, read from
the store's trace (issue #13, item 1 "Audit": outbound calls).

Each hop of a calling step (``to``, ``enrich``, ``wire_tap``) names the connectors
and operations it called (``Store.calls``). They are not written to the hash-chained
audit log: a fsync'd record per department call would halve the hub's throughput,
so this source is the trace as the store keeps it, and says so on the page. A hop
is shown as an audit record (``core.audit_query.row``): its id as the number, the
connector as the actor, ``operation/outcome`` as the event, the message as the
object; its detail (an error, which may quote what the department refused) masked.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from bdchub.core.audit_query import Filters, Page

#: Hops read at once by an export, which walks the range in batches by hop id.
BATCH = 500


def record(hop: dict[str, Any], masking: Any = None) -> dict[str, Any]:
    """``hop`` (a row of ``Store.calls``) as the audit page and its exports show records."""
    detail = str(hop.get("detail") or "")
    if masking is not None:
        detail = masking.text(detail)
    return {"seq": hop["id"], "time": hop["started_at"], "actor": hop.get("connector") or "",
            "event": f"{hop.get('operation') or ''}/{hop['outcome']}",
            "object": hop["message_id"],
            "fields": {"connector": hop.get("connector") or "",
                       "operation": hop.get("operation") or "", "outcome": hop["outcome"],
                       "route": hop["route"], "step": hop["step"], "type": hop["type"],
                       "duration_ms": hop["duration_ms"], "message_id": hop["message_id"],
                       "tenant": hop["tenant"], "business_no": hop["business_no"],
                       "detail": detail}}


def _query(filters: Filters) -> dict[str, Any]:
    return {"since": filters.since, "until": filters.until, "business_no": filters.business_no,
            "connector": filters.actor, "action": filters.event}


def query(store: Any, filters: Filters, tenants: Sequence[str] | None, *, limit: int,
          cursor: int | None = None, masking: Any = None) -> Page:
    """One page of calls, newest first, below hop ``cursor``; ``tenants`` None: all."""
    hops = store.calls(**_query(filters), tenants=tenants, before=cursor, limit=limit)
    records = [record(h, masking) for h in hops]
    return Page(records, int(hops[-1]["id"]) if len(hops) >= limit else None)


def oldest_first(store: Any, filters: Filters, tenants: Sequence[str] | None, *,
                 masking: Any = None) -> Iterator[dict[str, Any]]:
    """Every call of the range, oldest first, read BATCH hops at a time."""
    after = None
    while True:
        hops = store.calls(**_query(filters), tenants=tenants, after=after,
                           newest_first=False, limit=BATCH)
        for hop in hops:
            yield record(hop, masking)
        if len(hops) < BATCH:
            return
        after = int(hops[-1]["id"])
