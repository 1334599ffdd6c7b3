"""Inbound by polling: for departments that cannot push (the court's PullJudgments).

A poller (config ``pollers:``) calls one connector operation every ``every``
seconds with the last cursor, publishes each item of the reply as a message
of type ``publish`` and keeps the new cursor in the store (table
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
derived from the poller's name and the item's ``key``, so an item pulled
twice (a crash between publish and saving the cursor, two worker processes
polling the same department) is absorbed by the routes' idempotency records.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError
from sqlalchemy import Column, Float, MetaData, String, Table, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from bdchub.connectors.base import CallContext
from bdchub.core.envelope import Envelope
from bdchub.core.errors import ConfigError, HubError, StoreError
from bdchub.core.i18n import _
from bdchub.core.ids import derive_id

log = logging.getLogger("bdchub.pollers")

DEFAULT_EVERY = 10.0

#: One poller's block; ``SCHEMA`` is the ``pollers:`` section (registered by ``app.parts``).
_EXPR = {"type": "string", "minLength": 1, "description": "a JMESPath expression"}
POLLER: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["connector", "operation", "items", "publish"],
    "properties": {
        "description": {"type": "string"},
        "enabled": {"type": "boolean"},
        "connector": {"type": "string", "description": "name under connectors:"},
        "operation": {"type": "string"},
        "every": {"type": "number", "exclusiveMinimum": 0,
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

SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": POLLER,
    "propertyNames": {"pattern": r"^[A-Za-z0-9_.-]+$"},
    "description": "inbound by polling a connector (departments that cannot push)",
}


def check_section(checker: Any, pollers: Any) -> None:
    """Each poller's connector and operation exist (``core.config.Section.check``)."""
    from bdchub.connectors.registry import operation_problem

    if not isinstance(pollers, Mapping):
        return
    connectors = checker.config.get("connectors")
    connectors = connectors if isinstance(connectors, Mapping) else {}
    for name, poller in pollers.items():
        if isinstance(poller, Mapping) and isinstance(poller.get("connector"), str):
            problem = operation_problem(connectors, poller["connector"],
                                        str(poller.get("operation")))
            if problem is not None:
                checker.add(("pollers", name, problem[0]), problem[1])

_metadata = MetaData()
poller_cursors = Table(
    "poller_cursors", _metadata,
    Column("name", String(200), primary_key=True),
    Column("cursor", String(1000), nullable=False),
    Column("updated_at", Float, nullable=False),
)


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


def _expr(text: str | None, where: str) -> Any:
    if not text:
        return None
    try:
        return jmespath.compile(text)
    except JMESPathError as exc:
        raise ConfigError(_("{where}: '{expr}' is not a valid JMESPath expression: {error}",
                            where=where, expr=text, error=exc)) from exc


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
        self.next_expr = _expr(cursor.get("next"), f"{where}.cursor.next")
        self.more_expr = _expr(cursor.get("more"), f"{where}.cursor.more")
        self.items_expr = _expr(spec["items"], f"{where}.items")
        self.key_expr = _expr(spec.get("key"), f"{where}.key")
        self.business_no_expr = _expr(spec.get("business_no"), f"{where}.business_no")
        self.type = str(spec["publish"])
        self.publish = publish
        self.tenant = tenant
        self.cursors = cursors
        self.clock = clock
        self.polls = 0
        self.published = 0
        self.last_error: str | None = None

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
            if key is None:
                key = derive_id(f"poller:{self.name}", repr(sorted(body.items())))
            bno = self.business_no_expr.search(body) if self.business_no_expr else None
            env = Envelope(type=self.type, tenant=self.tenant, body=dict(body),
                           business_no="" if bno is None else str(bno),
                           source=f"poller:{self.name}", headers={"poller": self.name},
                           id=derive_id(f"poller:{self.name}", str(key)))
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
        """Poll until ``stop`` is set; errors are logged and tried again next time."""
        while not stop.is_set():
            try:
                more = self.poll_once()
                self.last_error = None
            except HubError as exc:
                more = False
                self.last_error = str(exc)
                log.warning("poller %s: %s", self.name, exc)
            except Exception as exc:  # noqa: BLE001 - a poller never dies of one bad reply
                more = False
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("poller %s failed", self.name)
            if not more:
                stop.wait(self.every)


class Pollers:
    """Every enabled poller of a config, each in its own daemon thread."""

    def __init__(self, config: Mapping[str, Any], *, connectors: Mapping[str, Any],
                 publish: Callable[[Envelope], None], store_engine: Any,
                 clock: Callable[[], float] = time.time):
        self.items: list[Poller] = []
        specs = {n: s for n, s in (config.get("pollers") or {}).items()
                 if s.get("enabled", True)}
        if not specs:
            self.cursors = None
            return
        self.cursors = CursorStore(store_engine)
        tenant = str(config.get("tenant") or "")
        for name, spec in specs.items():
            connector = connectors.get(spec["connector"])
            if connector is None:
                raise ConfigError(_("pollers.{name}: no connector named '{connector}'",
                                    name=name, connector=spec["connector"]))
            self.items.append(Poller(name, spec, connector=connector, publish=publish,
                                     tenant=tenant, cursors=self.cursors, clock=clock))
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        if not self.items:
            return
        self._stop.clear()
        for poller in self.items:
            thread = threading.Thread(target=poller.run, args=(self._stop,),
                                      name=f"poller-{poller.name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        if not self.items:
            return
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()
