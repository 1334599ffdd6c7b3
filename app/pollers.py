"""Inbound by polling: for systems that cannot push, or not reliably.

Two kinds of poller (config ``pollers:``, ``kind:``).

``feed`` (the default): a feed of everything new, pulled after a cursor (the
court's PullJudgments). The poller calls one connector operation every
``every`` seconds with the last cursor, publishes each item of the reply as a
message of type ``publish`` and keeps the new cursor in the store (table
``poller_cursors``, beside the hub's own tables), so a restarted hub goes on
where it stopped::

    pollers:
      court_orders:
        connector: court
        operation: PullJudgments
        every: 10
        payload: {MaxItems: 50}
        cursor: {param: Cursor, next: NextCursor, more: HasMore}
        items: Order
        key: OrderId
        business_no: OrderId
        publish: court.order_received

Delivery is at-least-once like everything else: the cursor is saved only
after the items are published (confirmed), and each item's message id is
derived from its type, the tenant and the item's ``key`` (``core.ids.event_id``,
as a callback with ``dedupe_key`` is named), so an item pulled twice (a crash
between publish and saving the cursor, two worker processes polling the same
department) or also called back is absorbed by the routes' idempotency records.

``per_case``: a system that answers "progress of case N" one case at a time.
Every case the hub keeps progress of (a progress row) that is one of
``cases`` is asked about every ``every`` seconds until ``until`` says it has
ended or ``deadline`` seconds have passed since the hub first saw it; the
changes the hub has not heard are published under the ids their callbacks get
(``app.case_query``, shared with the reconciler)::

    pollers:
      legacy_progress:
        kind: per_case
        connector: legacy
        operation: QueryProgress
        every: 300
        payload: {YWH: business_no}
        until: "status == 'completed'"
        deadline: 7776000
        events: HJ
        event_stage: "(ZT=='01' && 'application') || …"
        key: XH
        publish: legacy.stage_changed

Each case's polls keep a phase of their own within ``every`` (a stable hash of
its tenant and business number), so a thousand cases submitted at once are
asked about over the interval, not at once, and keep that spread across
restarts. Which cases are open, and when each is due, is kept in the store
(table ``poller_cases``); a process takes a due case with a conditional update
(a lease, as parked messages are claimed), so with several hub processes on
one store each case is asked about by one of them at a time.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import (
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from bdchub.connectors.base import CallContext
from bdchub.core.envelope import Envelope
from bdchub.core.errors import ConfigError, HubError, StoreError
from bdchub.core.i18n import _
from bdchub.core.ids import derive_id, event_id
from bdchub.core.logs import log_context
from bdchub.core.store import hops, progress
from bdchub.routes.body import truthy

from . import case_query
from .case_query import EXPR as _EXPR
from .case_query import (
    CaseQuery,
    case_data,
    check_expressions,
    check_operation,
    check_query,
    compile_expr,
)

log = logging.getLogger("bdchub.pollers")

DEFAULT_EVERY = 10.0
KINDS = ("feed", "per_case")
#: Per-case defaults: a stage of a registration takes hours to days, so five minutes
#: between two polls of one case hears of it soon enough without loading the system;
#: 90 days outlasts any registration (30 working days by statute, plus corrections).
DEFAULT_CASE_EVERY = 300.0
DEFAULT_CASES = "registration_type != ''"
DEFAULT_UNTIL = "status == 'completed'"
DEFAULT_DEADLINE = 90 * 86400.0

_COMMON: dict[str, Any] = {
    "kind": {"enum": list(KINDS), "default": "feed",
             "description": "feed: a cursor feed of everything new; per_case: each open "
                            "case asked about on its own"},
    "description": {"type": "string"},
    "enabled": {"type": "boolean", "default": True},
}

#: A ``kind: feed`` poller's block; ``SCHEMA`` is the ``pollers:`` section
#: (registered by ``app.parts``).
FEED: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["connector", "operation", "items", "publish"],
    "properties": {
        **_COMMON,
        "connector": {"type": "string", "description": "name under connectors:"},
        "operation": {"type": "string"},
        "every": {"type": "number", "exclusiveMinimum": 0, "default": DEFAULT_EVERY,
                  "description": "seconds between polls when nothing more is waiting"},
        "payload": {"type": "object", "description": "fixed parameters of every call"},
        "cursor": {
            "type": "object", "additionalProperties": False, "required": ["param", "next"],
            "description": "where the cursor goes into the call and comes back in the reply",
            "properties": {"param": {"type": "string"}, "next": _EXPR, "more": _EXPR,
                           "start": {"type": "string"}},
        },
        "items": {**_EXPR, "description": "the list of items in the reply"},
        "key": {**_EXPR, "description": "what identifies an item (message ids derive from it)"},
        "business_no": {**_EXPR, "description": "an item's business number"},
        "publish": {"type": "string", "pattern": r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$",
                    "description": "message type each item is published as"},
    },
}

#: A ``kind: per_case`` poller's block.
PER_CASE: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["kind", *case_query.REQUIRED],
    "properties": {
        **_COMMON,
        "kind": {"const": "per_case"},
        **case_query.PROPERTIES,
        "every": {"type": "number", "exclusiveMinimum": 0, "default": DEFAULT_CASE_EVERY,
                  "description": "seconds between two polls of one case"},
        "cases": {**_EXPR, "default": DEFAULT_CASES,
                  "description": "which cases are polled: JMESPath over the case when the "
                                 "poller first sees it (default: applications)"},
        "until": {**_EXPR, "default": DEFAULT_UNTIL,
                  "description": "the case has ended: JMESPath over the case; it is polled "
                                 "no more"},
        "deadline": {"type": "number", "exclusiveMinimum": 0, "default": DEFAULT_DEADLINE,
                     "description": "seconds after the hub first saw the case; then it is "
                                    "polled no more"},
    },
}

def _kind_is(condition: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": ["kind"], "properties": {"kind": condition}}


#: One poller's block, by its kind; an unknown kind is reported alone, not as the
#: feed's keys the block lacks.
POLLER: dict[str, Any] = {
    "if": _kind_is({"const": "per_case"}), "then": PER_CASE,
    "else": {"if": _kind_is({"not": {"enum": list(KINDS)}}),
             "then": {"properties": {"kind": {"enum": list(KINDS)}}},
             "else": FEED},
}

SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": POLLER,
    "propertyNames": {"pattern": r"^[A-Za-z0-9_.-]+$"},
    "description": "inbound by polling a connector (systems that cannot push)",
}


def check_section(checker: Any, pollers: Any) -> None:
    """Each poller's connector and operation exist and its expressions parse
    (``core.config.Section.check``)."""
    if not isinstance(pollers, Mapping):
        return
    for name, poller in pollers.items():
        if not isinstance(poller, Mapping):
            continue
        path = ("pollers", str(name))
        if poller.get("kind") == "per_case":
            check_query(checker, poller, path)
            check_expressions(checker, poller, ("cases", "until"), path)
        else:
            check_operation(checker, poller, path)
            check_expressions(checker, poller, ("items", "key", "business_no"), path)
            cursor = poller.get("cursor")
            if isinstance(cursor, Mapping):
                check_expressions(checker, cursor, ("next", "more"), (*path, "cursor"))
                _check_cursor_param(checker, poller, cursor, path)


def _check_cursor_param(checker: Any, poller: Mapping[str, Any], cursor: Mapping[str, Any],
                        path: tuple[str, ...]) -> None:
    """The cursor goes into the call as a parameter: one the operation takes."""
    from bdchub.connectors.registry import call_problems, config_folder

    param = cursor.get("param")
    connectors = checker.config.get("connectors")
    if not isinstance(param, str) or not isinstance(poller.get("connector"), str) \
            or not isinstance(connectors, Mapping):
        return
    for problem in call_problems(connectors, poller["connector"], str(poller.get("operation")),
                                 [param], base_dir=config_folder(checker)):
        # The connector and the operation are the poller's own problems, reported once.
        if problem.path == ("payload", param):
            checker.add((*path, "cursor", "param"), problem.message)


_metadata = MetaData()
poller_cursors = Table(
    "poller_cursors", _metadata,
    Column("name", String(200), primary_key=True),
    Column("cursor", String(1000), nullable=False),
    Column("updated_at", Float, nullable=False),
)

#: The cases of the per-case pollers: whether each is still open, when it is due,
#: and which process holds it (``claimed_until``, a lease). Every case a poller has
#: seen has a row, ended or not, so a pass looks only at cases it has not seen.
poller_cases = Table(
    "poller_cases", _metadata,
    Column("poller", String(200), primary_key=True),
    Column("tenant", String(6), primary_key=True),
    Column("business_no", String(64), primary_key=True),
    Column("state", String(16), nullable=False),  # open | ended | expired | ignored
    Column("started_at", Float, nullable=False),  # when the hub first saw the case
    Column("next_at", Float, nullable=False),
    Column("claimed_until", Float, nullable=True),
    Column("polls", Integer, nullable=False, default=0),
    Column("updated_at", Float, nullable=False),
    Index("ix_poller_cases_due", "poller", "state", "next_at"),
)
OPEN, ENDED, EXPIRED, IGNORED = "open", "ended", "expired", "ignored"


class CursorStore:
    """Cursors of the pollers, in the hub's store database (SQLite or PostgreSQL)."""

    def __init__(self, engine: Any):
        self.engine = engine
        try:
            _metadata.create_all(engine)
        except SQLAlchemyError as exc:
            raise StoreError(_("poller cursors cannot be stored: {error}", error=exc)) from exc

    def get(self, name: str) -> str | None:
        try:
            with self.engine.connect() as conn:
                row = conn.execute(select(poller_cursors.c.cursor).where(
                    poller_cursors.c.name == name)).first()
        except SQLAlchemyError as exc:
            raise StoreError(_("poller cursors cannot be read: {error}", error=exc)) from exc
        return row[0] if row else None

    def set(self, name: str, cursor: str, now: float) -> None:
        try:
            with self.engine.begin() as conn:
                changed = conn.execute(update(poller_cursors).where(
                    poller_cursors.c.name == name).values(cursor=cursor, updated_at=now)).rowcount
                if not changed:
                    try:
                        conn.execute(insert(poller_cursors).values(name=name, cursor=cursor,
                                                                   updated_at=now))
                    except IntegrityError:  # another worker inserted it first
                        conn.execute(update(poller_cursors).where(
                            poller_cursors.c.name == name).values(cursor=cursor, updated_at=now))
        except SQLAlchemyError as exc:
            raise StoreError(_("poller cursors cannot be written: {error}", error=exc)) from exc


class CaseSchedule:
    """The ``poller_cases`` table: which cases each per-case poller follows, when
    each is due, and the leases that keep two processes off one case."""

    def __init__(self, engine: Any):
        self.engine = engine
        try:
            _metadata.create_all(engine)
        except SQLAlchemyError as exc:
            raise StoreError(_("store failure: {error}", error=exc)) from exc
        if engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        # Two processes seeing a new case at once: the first row stays.
        self._add = dialect_insert(poller_cases).on_conflict_do_nothing()

    def _run(self, stmt: Any, rows: Any = None, *, write: bool = False) -> Any:
        try:
            if write:
                with self.engine.begin() as conn:
                    return conn.execute(stmt, rows) if rows is not None else conn.execute(stmt)
            with self.engine.connect() as conn:
                return conn.execute(stmt).mappings().all()
        except SQLAlchemyError as exc:
            raise StoreError(_("store failure: {error}", error=exc)) from exc

    def unseen(self, poller: str, since: float, limit: int) -> list[dict[str, Any]]:
        """Progress rows changed since ``since`` that ``poller`` has no row of, oldest
        change first, with the time of the case's first hop (``first_seen``)."""
        first = (select(func.min(hops.c.started_at))
                 .where(hops.c.tenant == progress.c.tenant,
                        hops.c.business_no == progress.c.business_no)
                 .correlate(progress).scalar_subquery())
        seen = and_(poller_cases.c.poller == poller, poller_cases.c.tenant == progress.c.tenant,
                    poller_cases.c.business_no == progress.c.business_no)
        q = (select(progress, first.label("first_seen"))
             .select_from(progress.outerjoin(poller_cases, seen))
             .where(poller_cases.c.poller.is_(None), progress.c.updated_at >= since)
             .order_by(progress.c.updated_at).limit(limit))
        return [dict(r) for r in self._run(q)]

    def add(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            self._run(self._add, rows, write=True)

    def due(self, poller: str, now: float, limit: int) -> list[dict[str, Any]]:
        """``poller``'s open cases due by ``now`` and held by no process, with their
        progress, the longest due first."""
        q = (select(poller_cases, progress.c.stage, progress.c.status,
                    progress.c.registration_type)
             .join(progress, and_(progress.c.tenant == poller_cases.c.tenant,
                                  progress.c.business_no == poller_cases.c.business_no))
             .where(poller_cases.c.poller == poller, poller_cases.c.state == OPEN,
                    poller_cases.c.next_at <= now,
                    or_(poller_cases.c.claimed_until.is_(None),
                        poller_cases.c.claimed_until < now))
             .order_by(poller_cases.c.next_at).limit(limit))
        return [dict(r) for r in self._run(q)]

    def claim(self, poller: str, tenant: str, business_no: str, now: float,
              lease: float) -> float | None:
        """Hold the case until ``now + lease`` if it is due and nobody holds it: the
        lease's end (what ``settle`` is given back), or None when another has it or
        has already polled it."""
        until = now + lease
        done = self._run(update(poller_cases).where(
            poller_cases.c.poller == poller, poller_cases.c.tenant == tenant,
            poller_cases.c.business_no == business_no, poller_cases.c.state == OPEN,
            poller_cases.c.next_at <= now,
            or_(poller_cases.c.claimed_until.is_(None), poller_cases.c.claimed_until < now))
            .values(claimed_until=until), write=True)
        return until if done.rowcount == 1 else None

    def settle(self, poller: str, tenant: str, business_no: str, lease: float, *, state: str,
               next_at: float, polled: bool, now: float) -> None:
        """Let go of a case this process holds (``lease`` from ``claim``), due again at
        ``next_at`` unless ``state`` ended it."""
        values: dict[str, Any] = {"state": state, "next_at": next_at, "claimed_until": None,
                                  "updated_at": now}
        if polled:
            values["polls"] = poller_cases.c.polls + 1
        self._run(update(poller_cases).where(
            poller_cases.c.poller == poller, poller_cases.c.tenant == tenant,
            poller_cases.c.business_no == business_no,
            poller_cases.c.claimed_until == lease).values(**values), write=True)

    def states(self, poller: str) -> dict[tuple[str, str], str]:
        """Each case ``poller`` has seen, and its state."""
        rows = self._run(select(poller_cases.c.tenant, poller_cases.c.business_no,
                                poller_cases.c.state).where(poller_cases.c.poller == poller))
        return {(r["tenant"], r["business_no"]): r["state"] for r in rows}


class Failing:
    """Whether a poller is failing: one WARNING when it starts to (not once a poll
    while the department stays away: the breaker's warnings say the rest), one
    INFO when it works again, and DEBUG lines between."""

    def __init__(self) -> None:
        self.since: float | None = None

    def failed(self, poller: str, exc: BaseException, business_no: str = "") -> None:
        error = str(exc) if isinstance(exc, HubError) else f"{type(exc).__name__}: {exc}"
        if self.since is not None:
            log.debug("poller %s still failing: %s", poller, error)
            return
        self.since = time.time()
        with log_context(business_no=business_no):
            log.warning(_("poller {name} failed: {error}; it tries again at its next poll",
                          name=poller, error=error),
                        extra={"event": "poller.failed", "poller": poller},
                        exc_info=not isinstance(exc, HubError))

    def ok(self, poller: str) -> None:
        if self.since is None:
            return
        log.info(_("poller {name} works again after {seconds:.0f} s", name=poller,
                   seconds=time.time() - self.since),
                 extra={"event": "poller.recovered", "poller": poller})
        self.since = None


class Poller:
    """One ``pollers:`` entry. ``poll_once`` is one call; ``run`` loops until stopped."""

    def __init__(self, name: str, spec: Mapping[str, Any], *, connector: Any,
                 publish: Callable[[Envelope], None], tenant: str, cursors: CursorStore,
                 clock: Callable[[], float] = time.time):
        where = f"pollers.{name}"
        self.name = name
        self.connector = connector
        self.operation = str(spec["operation"])
        self.payload = dict(spec.get("payload") or {})
        self.every = float(spec.get("every") or DEFAULT_EVERY)
        cursor = spec.get("cursor") or {}
        self.cursor_param = cursor.get("param")
        self.cursor_start = cursor.get("start")
        self.next_expr = compile_expr(cursor.get("next"), f"{where}.cursor.next")
        self.more_expr = compile_expr(cursor.get("more"), f"{where}.cursor.more")
        self.items_expr = compile_expr(spec["items"], f"{where}.items")
        self.key_expr = compile_expr(spec.get("key"), f"{where}.key")
        self.business_no_expr = compile_expr(spec.get("business_no"), f"{where}.business_no")
        self.type = str(spec["publish"])
        self.publish = publish
        self.tenant = tenant
        self.cursors = cursors
        self.clock = clock
        self.polls = 0
        self.published = 0
        self.last_error: str | None = None
        self.failing = Failing()

    def poll_once(self) -> bool:
        """Call once, publish what came, save the cursor. True when more is waiting."""
        cursor = self.cursors.get(self.name) if self.cursor_param else None
        payload = dict(self.payload)
        if self.cursor_param and (cursor or self.cursor_start):
            payload[self.cursor_param] = cursor or self.cursor_start
        context = CallContext(message_id=derive_id(f"poller:{self.name}", cursor or ""),
                              tenant=self.tenant,
                              idempotency_key=f"poller:{self.name}:{cursor or ''}")
        reply = self.connector.call(self.operation, payload, context)
        items = self.items_expr.search(reply) if reply is not None else None
        if items is None:
            items = []
        elif not isinstance(items, list):
            items = [items]
        for item in items:
            body = item if isinstance(item, Mapping) else {"value": item}
            key = self.key_expr.search(body) if self.key_expr else None
            # An item with its key is named as the event it is, the id its callback
            # or a per-case poll gets too (core.ids.event_id); one without, by itself.
            if key is None:
                message_id = derive_id(f"poller:{self.name}", repr(sorted(body.items())))
            else:
                message_id = event_id(self.type, self.tenant, key)
            bno = self.business_no_expr.search(body) if self.business_no_expr else None
            env = Envelope(type=self.type, tenant=self.tenant, body=dict(body),
                           business_no="" if bno is None else str(bno),
                           source=f"poller:{self.name}", headers={"poller": self.name},
                           id=message_id)
            self.publish(env)
            self.published += 1
        self.polls += 1
        if self.next_expr is not None:
            new = self.next_expr.search(reply) if reply is not None else None
            if new is not None and str(new) != (cursor or ""):
                self.cursors.set(self.name, str(new), self.clock())
        more = bool(self.more_expr.search(reply)) if (self.more_expr and reply is not None) else False
        return more and bool(items)

    def run(self, stop: threading.Event) -> None:
        """Poll until ``stop`` is set; errors are tried again next time, and logged
        once a failure (``failing``), not once a poll."""
        while not stop.is_set():
            try:
                more = self.poll_once()
                self.failing.ok(self.name)
                self.last_error = None
            except Exception as exc:  # noqa: BLE001 - a poller never dies of one bad reply
                more = False
                self.last_error = str(exc) if isinstance(exc, HubError) \
                    else f"{type(exc).__name__}: {exc}"
                self.failing.failed(self.name, exc)
            if not more:
                stop.wait(self.every)


#: Seconds a process holds a case it asks about: longer than any call with its
#: retries, so no other process asks meanwhile; a process that dies mid-call leaves
#: the case to another after this.
LEASE = 600.0
#: Cases asked about per pass; a full pass is followed at once by the next.
BATCH = 100
#: Progress rows looked at per pass for cases not seen yet.
SCAN_BATCH = 500
#: A change committed a little after a later one (the store's group commit, another
#: process's clock) is still found: each pass looks this far behind the last change.
SCAN_BACK = 600.0
#: Seconds between passes at most: cases fall due spread over ``every``.
TICK = 1.0


def _phase(tenant: str, business_no: str) -> float:
    """A case's stable place in [0, 1): where in each interval it is polled."""
    digest = hashlib.sha256(f"{tenant}\x1f{business_no}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


class CasePoller:
    """One ``kind: per_case`` poller. ``run_once`` is one pass; ``run`` loops until
    stopped."""

    def __init__(self, name: str, spec: Mapping[str, Any], *, connectors: Mapping[str, Any],
                 publish: Callable[[Envelope], None], schedule: CaseSchedule,
                 clock: Callable[[], float] = time.time):
        where = f"pollers.{name}"
        self.name = name
        self.query = CaseQuery(spec, connectors=connectors, where=where)
        self.every = float(spec.get("every") or DEFAULT_CASE_EVERY)
        self.cases = compile_expr(spec.get("cases") or DEFAULT_CASES, f"{where}.cases")
        self.until = compile_expr(spec.get("until") or DEFAULT_UNTIL, f"{where}.until")
        self.deadline = float(spec.get("deadline") or DEFAULT_DEADLINE)
        self.publish = publish
        self.schedule = schedule
        self.clock = clock
        self.source = f"poller:{name}"
        # Progress rows changed before this (less SCAN_BACK) have all been seen; a
        # restarted poller looks at every row once.
        self._since = 0.0
        self.polls = 0
        self.published = 0
        self.failed = 0
        self.last_error: str | None = None
        self.failing = Failing()

    def due_at(self, tenant: str, business_no: str, after: float) -> float:
        """The case's first poll time after ``after``: its own phase in each interval."""
        phase = _phase(tenant, business_no) * self.every
        return phase + self.every * (math.floor((after - phase) / self.every) + 1)

    def _ended(self, data: Mapping[str, Any], started_at: float, now: float) -> str | None:
        if truthy(self.until.search(data)):
            return ENDED
        if now >= started_at + self.deadline:
            return EXPIRED
        return None

    def run_once(self) -> int:
        """See new cases, ask about those due; the number of cases asked about."""
        now = self.clock()
        self._see(now)
        asked = 0
        for row in self.schedule.due(self.name, now, BATCH):
            lease = self.schedule.claim(self.name, row["tenant"], row["business_no"], now, LEASE)
            if lease is not None:  # else another process has it, or has just asked
                self._poll(row, now, lease)
                asked += 1
        return asked

    def _see(self, now: float) -> None:
        rows = self.schedule.unseen(self.name, self._since - SCAN_BACK, SCAN_BATCH)
        new = []
        for row in rows:
            started = float(row["first_seen"] if row["first_seen"] is not None else now)
            data = case_data(row, now)
            # Decided once: a case's first message says what it is (an application
            # has its registration type from the start).
            state = (self._ended(data, started, now) if truthy(self.cases.search(data))
                     else IGNORED) or OPEN
            new.append({"poller": self.name, "tenant": row["tenant"],
                        "business_no": row["business_no"], "state": state,
                        "started_at": started,
                        "next_at": self.due_at(row["tenant"], row["business_no"], now),
                        "claimed_until": None, "polls": 0, "updated_at": now})
        self.schedule.add(new)
        if rows:
            self._since = max(self._since, max(float(r["updated_at"]) for r in rows))

    def _poll(self, row: Mapping[str, Any], now: float, lease: float) -> None:
        tenant, business_no = row["tenant"], row["business_no"]
        data = case_data(row, now)
        ended = self._ended(data, float(row["started_at"]), now)
        if ended is not None:
            if ended == EXPIRED:
                log.warning(_("case {business_no} (tenant {tenant}) has not ended {days} days "
                              "after the hub first saw it: poller {poller} asks about it no "
                              "more", business_no=business_no, tenant=tenant,
                              days=round(self.deadline / 86400, 1), poller=self.name))
            self.schedule.settle(self.name, tenant, business_no, lease, state=ended,
                                 next_at=float(row["next_at"]), polled=False, now=now)
            return
        try:
            answer = self.query.ask(data, self.source)
            for env in self.query.envelopes(tenant, business_no,
                                            self.query.missed(answer, data["stage"]),
                                            source=self.source, headers={"poller": self.name}):
                self.publish(env)
                self.published += 1
            self.last_error = None
            self.failing.ok(self.name)
        except Exception as exc:  # noqa: BLE001 - one case's failure leaves the others
            # Asked again at its next time; what was published then has the same ids.
            self.failed += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            self.failing.failed(self.name, exc, business_no=business_no)
        self.polls += 1
        self.schedule.settle(self.name, tenant, business_no, lease, state=OPEN,
                             next_at=self.due_at(tenant, business_no, now), polled=True, now=now)

    def run(self, stop: threading.Event) -> None:
        """Passes until ``stop`` is set; a failed pass is logged once a failure
        (``failing``) and the next one tries."""
        while not stop.is_set():
            try:
                busy = self.run_once() >= BATCH
            except Exception as exc:  # noqa: BLE001 - a poller never dies of one bad pass
                busy = False
                self.failing.failed(self.name, exc)
            if not busy:
                stop.wait(min(self.every, TICK))


class Pollers:
    """Every enabled poller of a config, each in its own daemon thread."""

    def __init__(self, config: Mapping[str, Any], *, connectors: Mapping[str, Any],
                 publish: Callable[[Envelope], None], store_engine: Any,
                 clock: Callable[[], float] = time.time):
        self.items: list[Poller | CasePoller] = []
        specs = {n: s for n, s in (config.get("pollers") or {}).items()
                 if s.get("enabled", True)}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        if not specs:
            self.cursors = None
            return
        self.cursors = CursorStore(store_engine)
        schedule = None
        tenant = str(config.get("tenant") or "")
        for name, spec in specs.items():
            if spec.get("kind") == "per_case":
                schedule = schedule or CaseSchedule(store_engine)
                self.items.append(CasePoller(name, spec, connectors=connectors, publish=publish,
                                             schedule=schedule, clock=clock))
                continue
            connector = connectors.get(spec["connector"])
            if connector is None:
                where = "pollers." + name
                raise ConfigError(_("{where}: no connector named '{name}'", where=where,
                                    name=spec["connector"]))
            self.items.append(Poller(name, spec, connector=connector, publish=publish,
                                     tenant=tenant, cursors=self.cursors, clock=clock))

    def start(self) -> None:
        if not self.items:
            return
        self._stop.clear()
        for poller in self.items:
            thread = threading.Thread(target=poller.run, args=(self._stop,),
                                      name=f"poller-{poller.name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stopped(self) -> list[str]:
        """The pollers whose thread has ended while the others run (a poller never
        ends on its own: one that did is a fault readiness reports)."""
        if self._stop.is_set():
            return []
        return [t.name.removeprefix("poller-") for t in self._threads if not t.is_alive()]

    def stop(self, timeout: float = 10.0) -> None:
        if not self.items:
            return
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()
