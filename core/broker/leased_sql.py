"""kombu's SQLAlchemy transport, fixed for durability: the embedded broker.

The stock transport hides a row when it is delivered and shows it again only
if the channel closes cleanly, so a ``kill -9`` of the hub loses every
unacknowledged message for good; and acknowledged rows are never deleted, so
the table only grows. ``LeasedSqlaTransport`` treats a delivery as a lease
instead: the row stays, invisible, for ``visibility_timeout`` seconds, renewed
by the consumer while the message is in flight (``renew_leases``); a sweep
(``recover_expired``) makes the rows of a dead consumer visible again once
their lease has run out. An ack deletes the row; a reject deletes it or makes
it visible again.

Imported only when a SQL broker is opened, so that importing the broker
package does not import SQLAlchemy's ORM.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import threading
import warnings
from json import dumps, loads
from queue import Empty

# kombu's models use a loader strategy SQLAlchemy 2.1 deprecates; nothing to do here.
warnings.filterwarnings("ignore", message=".*``noload`` loader strategy",
                        category=DeprecationWarning)

from kombu.transport import sqlalchemy as ksqla  # noqa: E402 - after the filter above
from kombu.utils.encoding import bytes_to_str  # noqa: E402
from sqlalchemy import create_engine, delete, event, insert, or_, select, text, update  # noqa: E402
from sqlalchemy.orm import sessionmaker  # noqa: E402

__all__ = ["LeasedSqlaTransport"]

# One SQLite writer at a time: queueing this process's threads on a lock is far
# cheaper than letting them meet SQLite's busy handler, which sleeps in ms steps.
_sqlite_lock = threading.RLock()


def _locked(fn):
    def wrapper(self, *args, **kwargs):
        if self.connection.client.hostname.startswith("sqlite"):
            with _sqlite_lock:
                return fn(self, *args, **kwargs)
        return fn(self, *args, **kwargs)
    return wrapper


class LeasedChannel(ksqla.Channel):
    """A channel whose deliveries are leases on their rows (see the module docstring)."""

    # One engine (and connection pool) per database for the whole process, not per channel.
    _engines: dict = {}
    #: Rows of the messages published inside ``one_transaction``, not inserted yet.
    _rows: list[dict] | None = None

    @_locked
    def _size(self, queue):
        return super()._size(queue)

    def _engine_from_config(self):
        hostname = self.connection.client.hostname
        if hostname.startswith("sqlite"):
            # Every channel's session keeps its connection (one channel per consumed
            # queue): a bounded pool runs dry once the routes outnumber it, and every
            # publish then waits 30 s for a connection. SQLite connections are cheap.
            engine = create_engine(hostname, connect_args={"timeout": 60,
                                                           "check_same_thread": False},
                                   max_overflow=-1)

            @event.listens_for(engine, "connect")
            def _pragmas(dbapi_conn, _record):
                cur = dbapi_conn.cursor()
                # WAL: publishers do not wait for pollers; NORMAL is durable
                # against a killed process (only an OS crash may lose the tail).
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.execute("PRAGMA busy_timeout=60000")
                cur.close()
            return engine
        return create_engine(hostname, pool_pre_ping=True)

    def _open(self):
        conninfo = self.connection.client
        key = conninfo.hostname
        if key not in self._engines:
            with ksqla._MUTEX:
                if key not in self._engines:
                    engine = self._engine_from_config()
                    ksqla.metadata.create_all(engine)
                    self._engines[key] = engine, sessionmaker(bind=engine)
        return self._engines[key]

    def close(self):
        # kombu's channel never closes its ORM session, whose open read keeps a
        # pooled connection checked out after the channel is gone.
        try:
            super().close()
        finally:
            session, self._session = self._session, None
            if session is not None:
                session.close()

    @property
    def _table(self):
        return self.message_cls.__table__

    def _queue_id(self, queue):
        ids = self.__dict__.setdefault("_bdchub_qids", {})
        qid = ids.get(queue)
        if qid is None:
            qid = ids[queue] = self._get_or_create(queue).id
            self.session.commit()
        return qid

    @_locked
    def _put(self, queue, payload, **kwargs):
        # Core instead of the ORM: a publish is one INSERT and a commit.
        row = {"payload": dumps(payload), "queue_id": self._queue_id(queue),
               "visible": True, "version": 1}
        if self._rows is not None:
            self._rows.append(row)
            return
        self._execute(insert(self._table).values(**row))

    @contextlib.contextmanager
    def one_transaction(self):
        """The messages published inside go into the table together, in one
        transaction, when the block ends; none of them if it raises. kombu's
        transport commits each message on its own; a batch of requests'
        publishes (``core.broker.grouped``) then paid one commit each."""
        self._rows = rows = []
        try:
            yield
        finally:
            self._rows = None
        if rows:
            self._execute(insert(self._table), rows)

    @_locked
    def _get(self, queue):
        qid = self._queue_id(queue)
        t = self._table
        sqlite = self.session.bind.name == "sqlite"
        if sqlite:
            self.session.execute(text("BEGIN IMMEDIATE TRANSACTION"))
        try:
            query = (select(t.c.id, t.c.payload)
                     .where(t.c.queue_id == qid, t.c.visible == True)  # noqa: E712
                     .order_by(t.c.timestamp, t.c.id).limit(1))
            if not sqlite:
                query = query.with_for_update(skip_locked=True)
            row = self.session.execute(query).first()
            if row is None:
                raise Empty()
            # The lease starts now.
            self.session.execute(update(t).where(t.c.id == row.id).values(
                visible=False, timestamp=_dt.datetime.now(), version=t.c.version + 1))
            payload = loads(bytes_to_str(row.payload))
            props = payload.setdefault("properties", {})
            props.setdefault("delivery_info", {})["bdchub_row"] = row.id
            return payload
        finally:
            self.session.commit()

    def _row(self, delivery_tag):
        try:
            return self.qos.get(delivery_tag).delivery_info.get("bdchub_row")
        except KeyError:
            return None

    @_locked
    def _execute(self, statement, rows: list[dict] | None = None) -> None:
        try:
            self.session.execute(statement, rows)
            self.session.commit()
        except Exception:
            self.session.rollback()
            raise

    def basic_ack(self, delivery_tag, multiple=False):
        row = self._row(delivery_tag)
        if row is not None:
            self._execute(delete(self._table).where(self._table.c.id == row))
        self.qos.ack(delivery_tag)

    def basic_reject(self, delivery_tag, requeue=False):
        row = self._row(delivery_tag)
        if row is not None:
            if requeue:
                self._execute(update(self._table).where(self._table.c.id == row)
                              .values(visible=True))
            else:
                self._execute(delete(self._table).where(self._table.c.id == row))
        self.qos.ack(delivery_tag)  # forget it locally; the row says what happens next

    def _restore(self, message):
        row = message.delivery_info.get("bdchub_row")
        if row is None:
            return super()._restore(message)
        self._execute(update(self._table).where(self._table.c.id == row)
                      .values(visible=True))
        return None

    def renew_leases(self) -> None:
        """Restart the lease of every message this channel holds unsettled."""
        rows = [m.delivery_info.get("bdchub_row") for tag, m in list(self.qos._delivered.items())
                if tag not in self.qos._dirty]
        rows = [r for r in rows if r is not None]
        if rows:
            self._execute(update(self._table).where(self._table.c.id.in_(rows))
                          .values(timestamp=_dt.datetime.now()))

    def recover_expired(self, lease: float) -> None:
        """Make visible again the rows whose lease of ``lease`` seconds has run out."""
        cutoff = _dt.datetime.now() - _dt.timedelta(seconds=lease)
        t = self._table
        self._execute(update(t).where(t.c.visible == False)  # noqa: E712
                      .where(or_(t.c.timestamp < cutoff, t.c.timestamp.is_(None)))
                      .values(visible=True))


_users: dict[str, int] = {}


def hold_engine(hostname: str) -> None:
    """Count one more broker using the database at ``hostname``."""
    with ksqla._MUTEX:
        _users[hostname] = _users.get(hostname, 0) + 1


def release_engine(hostname: str) -> None:
    """One broker fewer on ``hostname``; the last one closes the shared engine.

    The engines are shared across the process (``LeasedChannel._engines``), so
    without this every database a process ever opened kept its pooled
    connections open for good: a test session, or a tool opening many data
    folders, ran out of file descriptors.
    """
    with ksqla._MUTEX:
        left = _users.get(hostname, 0) - 1
        if left > 0:
            _users[hostname] = left
            return
        _users.pop(hostname, None)
        entry = LeasedChannel._engines.pop(hostname, None)
    if entry is not None:
        entry[0].dispose()


class LeasedSqlaTransport(ksqla.Transport):
    """kombu's SQLAlchemy transport with ``LeasedChannel``: pass it as a
    ``kombu.Connection``'s ``transport``."""

    Channel = LeasedChannel

