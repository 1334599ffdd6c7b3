"""Leases: one holder at a time for a named singleton, among the processes that
share one store (PostgreSQL, or one SQLite file on one machine).

The pollers, the reconciler and the bridge watches must run in one process of a
deployment (``app.singletons``). Each runs under a lease, a row of ``leases``::

    name        holder                       expires_at (epoch s)  taken_at
    pollers     hub-1:4711:9f3a1c2e          1718000008.5          1718000000.5

``Leases.take(name, holder, ttl)`` is one conditional upsert: the row is written
(``expires_at`` = now + ttl) only where there is none, where ``holder`` already has
it (a renewal), or where it has expired. Two contenders can never both succeed:
PostgreSQL re-checks the condition on the row a concurrent transaction just
committed, and SQLite has one writer at a time. ``release`` deletes the row only
for its holder.

Why a lease table rather than a PostgreSQL advisory lock: it works the same on
the embedded SQLite store, ``hub status`` can read who holds what and until
when, and it needs no connection held open for the life of the lock (an
advisory lock dies with its session, but a half-open TCP session to a
partitioned worker keeps it for as long as the keepalive takes).

Time: "now" is the database's clock (``clock=None``), so workers on different
hosts compare one clock whatever theirs say; tests pass a clock of their own.

Fencing by expiry (``LeaseKeeper``): the holder renews every ttl/3 and counts its
lease valid until ttl after it *sent* the renewal that succeeded, on its own
monotonic clock, which is never later than the expiry the store wrote. When it
cannot renew (the store is down, slow or unreachable) it stops its singleton
``margin`` before that, so the singleton has stopped before another process can
take the lease. What that does not cover: a call the singleton had already sent
(a poll in flight) finishes after it was told to stop, and a process paused
longer than the margin (a stopped VM, a swap storm) wakes up believing it still
holds. Both are absorbed downstream: items are published under ids derived from
their keys, so a second publish of one is a duplicate the routes drop.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from sqlalchemy import Column, Float, MetaData, String, Table, delete, literal_column, select
from sqlalchemy.exc import SQLAlchemyError

from .errors import StoreError
from .i18n import _

log = logging.getLogger("bdchub.leases")

#: Seconds a lease lasts unless renewed. With ``RETRY`` it bounds the take-over:
#: a holder killed just after renewing is replaced within ``DEFAULT_TTL + RETRY``
#: seconds (9 s: the province issue asks for 10).
DEFAULT_TTL = 8.0
#: Seconds between two attempts of a process that does not hold the lease.
RETRY = 1.0

# Beside the hub's own tables (as the pollers' cursors are): leases are the running
# processes' coordination, not data a store migration carries over.
_metadata = MetaData()
leases = Table(
    "leases", _metadata,
    Column("name", String(200), primary_key=True),
    Column("holder", String(200), nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("taken_at", Float, nullable=False),
)

#: The database's clock as epoch seconds, per dialect.
_DB_NOW = {
    "sqlite": "((julianday('now') - 2440587.5) * 86400.0)",
    "postgresql": "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)",
}


def holder_id() -> str:
    """``host:pid:random``: one process's name as a holder, new at each start (a pid
    reused after a crash is not the holder that crashed)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class Leases:
    """The ``leases`` table of the store whose engine is ``engine``."""

    def __init__(self, engine: Any, *, clock: Callable[[], float] | None = None):
        self.engine = engine
        self.clock = clock
        dialect = engine.dialect.name
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        self._insert = dialect_insert
        self._db_now = _DB_NOW.get(dialect, _DB_NOW["sqlite"])
        try:
            _metadata.create_all(engine)
        except SQLAlchemyError as exc:
            raise StoreError(_("leases cannot be stored: {error}", error=exc)) from exc

    def _now(self) -> Any:
        if self.clock is not None:
            return float(self.clock())
        return literal_column(self._db_now)

    def take(self, name: str, holder: str, ttl: float = DEFAULT_TTL) -> bool:
        """Take or renew the lease ``name`` for ``holder`` for ``ttl`` seconds; False
        while another holder's lease has not expired. Raises ``StoreError``."""
        now = self._now()
        stmt = self._insert(leases).values(name=name, holder=holder, expires_at=now + ttl,
                                           taken_at=now)
        mine = leases.c.holder == stmt.excluded.holder
        stmt = stmt.on_conflict_do_update(
            index_elements=[leases.c.name],
            set_={"holder": stmt.excluded.holder, "expires_at": stmt.excluded.expires_at,
                  # A renewal keeps the time it was taken; a take-over starts anew.
                  "taken_at": _case(mine & (leases.c.expires_at > now), leases.c.taken_at,
                                    stmt.excluded.taken_at)},
            where=mine | (leases.c.expires_at <= now))
        try:
            with self.engine.connect() as conn:
                conn = conn.execution_options(bdchub_write=True)  # SQLite: BEGIN IMMEDIATE
                with conn.begin():
                    conn.execute(stmt)
                    # Read back in the same transaction: whether the upsert wrote is
                    # told the same way on both databases, whatever rowcount says.
                    row = conn.execute(select(leases.c.holder).where(leases.c.name == name)).first()
        except SQLAlchemyError as exc:
            raise StoreError(_("lease {name} cannot be taken: {error}", name=name,
                               error=exc)) from exc
        return row is not None and row[0] == holder

    def release(self, name: str, holder: str) -> bool:
        """Give the lease up now if ``holder`` has it, so another process need not wait
        for it to expire; False when it was not this holder's."""
        try:
            with self.engine.connect() as conn:
                conn = conn.execution_options(bdchub_write=True)
                with conn.begin():
                    gone = conn.execute(delete(leases).where(
                        leases.c.name == name, leases.c.holder == holder)).rowcount
        except SQLAlchemyError as exc:
            raise StoreError(_("lease {name} cannot be released: {error}", name=name,
                               error=exc)) from exc
        return bool(gone)

    def held(self) -> list[dict[str, Any]]:
        """Every lease row by name, with ``expires_in`` (seconds, by the same clock as
        ``take``; negative once expired) and the ``host`` and ``pid`` of its holder."""
        now = self._now()
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(select(leases, (leases.c.expires_at - now).label("expires_in"))
                                    .order_by(leases.c.name)).mappings().all()
        except SQLAlchemyError as exc:
            raise StoreError(_("leases cannot be read: {error}", error=exc)) from exc
        found = []
        for row in rows:
            host, _sep, rest = str(row["holder"]).partition(":")
            pid = rest.partition(":")[0]
            found.append({**row, "host": host, "pid": int(pid) if pid.isdigit() else None,
                          "held": float(row["expires_in"]) > 0})
        return found


def _case(condition: Any, then: Any, otherwise: Any) -> Any:
    from sqlalchemy import case

    return case((condition, then), else_=otherwise)


class LeaseKeeper:
    """Keeps the lease ``name`` for this process while ``stop`` is not called: takes
    it when free, renews it every ttl/3, calls ``on_take()`` when it gets it and
    ``on_lose(reason)`` when it loses it or can no longer tell (see the module
    docstring: fencing by expiry). ``on_lose`` must return only once the singleton
    has stopped (within ``margin``: ttl/4).

    The store is asked from a thread of its own, so a call that hangs (a store cut
    off mid-query) cannot hold the keeper past its fence. ``step()`` is one round;
    ``start()`` runs the first round in the caller's thread, so a single process
    starts its singletons before ``start()`` returns, as it did without leases, and
    an ``on_take`` that raises there raises from ``start()``."""

    def __init__(self, leases_: Leases, name: str, *, on_take: Callable[[], None],
                 on_lose: Callable[[str], None], holder: str | None = None,
                 ttl: float = DEFAULT_TTL, retry: float = RETRY,
                 clock: Callable[[], float] = time.monotonic):
        self.leases = leases_
        self.name = name
        self.holder = holder or holder_id()
        self.ttl = ttl
        self.retry = min(retry, ttl / 3)
        self.margin = ttl / 4
        self.clock = clock
        self.on_take = on_take
        self.on_lose = on_lose
        self.holding = False
        #: Until when (``clock``) this process may act as the holder.
        self.valid_until = 0.0
        self._asked_at = 0.0
        self._pending: Future[bool] | None = None
        self._calls: ThreadPoolExecutor | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    # -- one round
    def step(self, *, raise_on_take: bool = False) -> float:
        """Ask the store once (or wait for the answer to the last question, up to the
        fence); act on the answer; return the seconds until the next round."""
        now = self.clock()
        if self._pending is None:
            if self._calls is None:
                self._calls = ThreadPoolExecutor(1, thread_name_prefix=f"lease-{self.name}")
            self._asked_at = now
            self._pending = self._calls.submit(self.leases.take, self.name, self.holder,
                                               self.ttl)
        until = self.valid_until - self.margin if self.holding else now + self.retry
        try:
            took = self._pending.result(timeout=max(0.0, until - now))
        except FutureTimeout:  # the store has not answered: keep waiting, up to the fence
            self._fence(_("the store did not answer"))
            return self._wait()
        except Exception as exc:  # noqa: BLE001 - a store failure; the next round asks again
            self._pending = None
            if not self._failing:
                log.warning("%s", _("lease {name}: the store cannot be asked: {error}",
                                    name=self.name, error=exc))
                self._failing = True
            self._fence(str(exc))
            return self._wait()
        self._pending, self._failing = None, False
        if took:
            self.valid_until = self._asked_at + self.ttl
            if not self.holding:
                self._taken(raise_on_take)
        elif self.holding:  # expired while unanswered and another took it
            self._lost(_("another process holds it"))
        return self._wait()

    def _wait(self) -> float:
        if not self.holding:
            return self.retry
        next_renewal = self._asked_at + self.ttl / 3
        return max(0.0, min(next_renewal, self.valid_until - self.margin) - self.clock())

    def _fence(self, reason: str) -> None:
        if self.holding and self.clock() >= self.valid_until - self.margin:
            self._lost(_("not renewed in time ({reason})", reason=reason))

    def _taken(self, raise_on_take: bool) -> None:
        self.holding = True
        try:
            self.on_take()
        except Exception:
            # Give it back at once, so another process may try where this one cannot.
            self.holding = False
            self._release()
            if raise_on_take:
                raise
            log.exception("lease %s: the singleton did not start; the lease is given back",
                          self.name)

    def _lost(self, reason: str) -> None:
        self.holding = False
        self.on_lose(reason)

    def _release(self) -> None:
        try:
            self.leases.release(self.name, self.holder)
        except Exception as exc:  # noqa: BLE001 - it expires on its own
            log.warning("%s", _("lease {name} not released ({error}); it expires in {ttl} s",
                                name=self.name, error=exc, ttl=f"{self.ttl:g}"))

    # -- lifecycle
    def start(self) -> None:
        self._stop.clear()
        wait = self.step(raise_on_take=True)
        self._thread = threading.Thread(target=self._run, args=(wait,),
                                        name=f"lease-{self.name}", daemon=True)
        self._thread.start()

    def _run(self, wait: float) -> None:
        while not self._stop.wait(wait):
            try:
                wait = self.step()
            except Exception:  # noqa: BLE001 - the keeper must outlive any one failure
                log.exception("lease %s: round failed", self.name)
                wait = self.retry

    def stop(self, timeout: float = 10.0) -> None:
        """Stop keeping: the singleton is stopped first (``on_lose``), then the lease is
        released, so another process takes over at its next attempt."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self.holding:
            self._lost(_("this process stops"))
            self._release()
        self._shutdown()

    def kill(self) -> None:
        """Stop at once and wait for nothing: the lease is left to expire (the caller
        kills the singleton; its threads may still be ending). Never raises."""
        self._stop.set()
        self.holding = False
        self._shutdown()

    def _shutdown(self) -> None:
        calls, self._calls, self._pending = self._calls, None, None
        if calls is not None:
            with contextlib.suppress(Exception):
                calls.shutdown(wait=False)
