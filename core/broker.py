"""The message backbone: one small broker interface, three implementations.

Like dramatiq's brokers, the hub only needs a handful of operations:

- ``declare_queue(name, patterns)``: a durable queue bound to the topic
  exchange by message-type patterns (``*`` one word, ``#`` any words) and to
  the direct exchange by its own name (for continuations, replays, parked
  messages and fallbacks, which go to one route only);
- ``publish(body, routing_key, queue=None)``: returns only once the broker has
  the message (publisher confirms on RabbitMQ, a committed insert on SQL);
  retries through broker restarts for ``publish_timeout`` seconds, then raises
  ``RecoverableError``. Safe to call from any thread;
- ``consume(handlers, prefetch)``: deliver messages of each queue to its
  handler on a background thread, at most ``prefetch`` unacknowledged at once;
  a handler gets a ``Delivery`` and calls ``ack()`` or ``reject()`` later,
  from any thread;
- ``stop()`` (graceful: no new deliveries, wait for acks), ``close()`` and
  ``kill()`` (abrupt, never raises).

``broker_from_url`` chooses by scheme:

- ``amqp://`` / ``amqps://``: RabbitMQ through kombu, durable (or quorum)
  queues, persistent messages, publisher confirms;
- ``sqla+sqlite:///path``, ``sqlite:///path`` (embedded default) and
  ``sqla+postgresql://``: kombu's SQLAlchemy transport, with one fix that
  durability needs. The stock transport hides a row when it is delivered and
  never shows it again unless the channel closes cleanly, so a ``kill -9``
  loses every unacknowledged message, and acknowledged rows are never deleted.
  ``LeasedSqlaTransport`` deletes a row on ack and treats delivery as a lease
  (``visibility_timeout`` seconds, renewed while the message is in flight):
  rows of a dead consumer become visible again when their lease runs out;
- ``memory://``: in-process queues for unit tests, with ``deliver_one()`` to
  drive delivery from the test's own thread.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import queue as _queue
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from .errors import HubError, RecoverableError, StoreError
from .i18n import _
from .sealing import Sealer

#: Sealed message bodies: ``core.sealing`` text under this name and content type.
SEALED_COLUMN = "broker.message"
SEALED_CONTENT_TYPE = "application/x-bdchub-sealed"

log = logging.getLogger("bdchub.broker")

#: The ``broker:`` section of config.yaml (registered by ``core.config``).
SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["url"],
    "properties": {
        "url": {"type": "string", "minLength": 1,
                "description": "amqp://… (RabbitMQ) or sqla+sqlite:///… (embedded)"},
        "prefetch": {"type": "integer", "minimum": 1, "maximum": 10000},
        "queue_type": {"enum": ["classic", "quorum"]},
        "exchange": {"type": "string", "minLength": 1},
        "prefix": {"type": "string", "pattern": r"^[A-Za-z0-9_.-]+$",
                   "description": "prefix of queue and exchange names (default bdchub)"},
        "visibility_timeout": {"type": "number", "exclusiveMinimum": 0,
                               "description": "seconds an unacknowledged message of the "
                                              "embedded broker stays leased"},
    },
}

__all__ = ["Broker", "Delivery", "InMemoryBroker", "KombuBroker", "broker_from_url",
           "topic_matches"]


# -- topic patterns ---------------------------------------------------------

@lru_cache(maxsize=4096)
def topic_matches(pattern: str, key: str) -> bool:
    """AMQP topic semantics: ``*`` is exactly one word, ``#`` zero or more."""
    return _match(tuple(pattern.split(".")), tuple(key.split(".")))


def _match(pat: tuple[str, ...], words: tuple[str, ...]) -> bool:
    if not pat:
        return not words
    head, rest = pat[0], pat[1:]
    if head == "#":
        return any(_match(rest, words[i:]) for i in range(len(words) + 1))
    if not words:
        return False
    return (head == "*" or head == words[0]) and _match(rest, words[1:])


# -- the interface ----------------------------------------------------------

class Delivery:
    """One received message. ``ack``/``reject`` may be called from any thread,
    once; later calls are ignored."""

    __slots__ = ("body", "queue", "redelivered", "_settle", "_done", "_lock")

    def __init__(self, body: bytes, queue: str, redelivered: bool,
                 settle: Callable[[str], None]):
        self.body = body
        self.queue = queue
        self.redelivered = redelivered
        self._settle = settle
        self._done = False
        self._lock = threading.Lock()

    def _once(self, op: str) -> None:
        with self._lock:
            if self._done:
                return
            self._done = True
        self._settle(op)

    def ack(self) -> None:
        self._once("ack")

    def reject(self, requeue: bool = True) -> None:
        self._once("requeue" if requeue else "drop")

    @property
    def settled(self) -> bool:
        return self._done


Handler = Callable[[Delivery], None]


class Broker:
    """Interface of a message broker; see the module docstring."""

    url: str = ""

    def declare_queue(self, name: str, patterns: Sequence[str]) -> None:
        raise NotImplementedError

    def publish(self, body: bytes, routing_key: str, *, queue: str | None = None,
                message_id: str = "") -> None:
        raise NotImplementedError

    def consume(self, handlers: Mapping[str, Handler], prefetch: Mapping[str, int]) -> None:
        raise NotImplementedError

    def stop(self, timeout: float = 30.0) -> None:
        """Stop taking new deliveries; wait up to ``timeout`` for outstanding acks."""

    def close(self) -> None:
        """Release connections. Idempotent; never raises."""

    def kill(self) -> None:
        """Drop everything now, acknowledging nothing more. Never raises."""
        with contextlib.suppress(Exception):
            self.close()

    def queue_size(self, name: str) -> int | None:
        """Messages ready in ``name`` (not counting unacknowledged), if known."""
        return None

    @property
    def in_flight(self) -> int:
        return 0


def broker_from_url(url: str, **options: Any) -> Broker:
    """The broker for ``url`` (see the module docstring for the schemes)."""
    if url.startswith("memory://"):
        return InMemoryBroker(url)
    if url.startswith(("amqp://", "amqps://", "pyamqp://", "sqla+", "sqlalchemy+", "sqlite:")):
        return KombuBroker(url, **options)
    raise HubError(_("unsupported broker URL '{url}': use amqp://… (RabbitMQ) or "
                     "sqla+sqlite:///… (embedded)", url=url))


# -- in memory (unit tests) -------------------------------------------------

class InMemoryBroker(Broker):
    """Queues in this process. ``deliver_one()`` hands one message to its handler
    in the caller's thread; ``consume`` alone does nothing until ``start_thread()``."""

    def __init__(self, url: str = "memory://"):
        self.url = url
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._queues: dict[str, deque[tuple[bytes, bool]]] = {}
        self._patterns: dict[str, tuple[str, ...]] = {}
        self._handlers: dict[str, Handler] = {}
        self._prefetch: dict[str, int] = {}
        self._unacked: dict[str, int] = {}
        self._thread: threading.Thread | None = None
        self._running = False
        self.published = 0

    def declare_queue(self, name: str, patterns: Sequence[str]) -> None:
        with self._lock:
            self._queues.setdefault(name, deque())
            self._unacked.setdefault(name, 0)
            self._patterns[name] = tuple(patterns)

    def publish(self, body: bytes, routing_key: str, *, queue: str | None = None,
                message_id: str = "") -> None:
        with self._cond:
            if queue is not None:
                targets = [queue] if queue in self._queues else []
            else:
                targets = [q for q, pats in self._patterns.items()
                           if any(topic_matches(p, routing_key) for p in pats)]
            for q in targets:
                self._queues[q].append((body, False))
            self.published += 1
            self._cond.notify_all()

    def consume(self, handlers: Mapping[str, Handler], prefetch: Mapping[str, int]) -> None:
        with self._lock:
            self._handlers.update(handlers)
            self._prefetch.update(prefetch)

    def _take(self) -> Delivery | None:
        with self._lock:
            for name in self._handlers:
                q = self._queues.get(name)
                limit = self._prefetch.get(name) or 0
                if q and (not limit or self._unacked[name] < limit):
                    body, redelivered = q.popleft()
                    self._unacked[name] += 1
                    return Delivery(body, name, redelivered, self._settler(name, body))
        return None

    def _settler(self, name: str, body: bytes) -> Callable[[str], None]:
        def settle(op: str) -> None:
            with self._cond:
                self._unacked[name] -= 1
                if op == "requeue":
                    self._queues[name].appendleft((body, True))
                self._cond.notify_all()
        return settle

    def deliver_one(self) -> bool:
        """Hand one ready message to its handler, here. False when none is ready."""
        delivery = self._take()
        if delivery is None:
            return False
        self._handlers[delivery.queue](delivery)
        return True

    def start_thread(self) -> None:
        """Deliver from a background thread (handlers must not block it for long)."""
        if self._thread is not None:
            return
        self._running = True
        self._thread = threading.Thread(target=self._loop, name="memory-broker", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while self._running:
            delivery = self._take()
            if delivery is None:
                with self._cond:
                    self._cond.wait(0.05)
                continue
            try:
                self._handlers[delivery.queue](delivery)
            except Exception:  # a handler bug must not stop delivery
                log.exception("handler failed")
                delivery.reject(requeue=True)

    def stop(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        self._running = False
        if self._thread is not None:
            self._thread.join(max(0.0, deadline - time.monotonic()))
            self._thread = None
        with self._cond:
            while self.in_flight and time.monotonic() < deadline:
                self._cond.wait(0.05)

    def close(self) -> None:
        self._running = False

    def queue_size(self, name: str) -> int | None:
        with self._lock:
            q = self._queues.get(name)
            return len(q) if q is not None else None

    def peek(self, name: str) -> list[bytes]:
        """The ready messages of ``name``, oldest first, left in the queue (tests)."""
        with self._lock:
            return [body for body, _r in self._queues.get(name, ())]

    @property
    def in_flight(self) -> int:
        with self._lock:
            return sum(self._unacked.values())

    def pending(self) -> int:
        """Ready plus unacknowledged messages across every queue."""
        with self._lock:
            return sum(len(q) for q in self._queues.values()) + sum(self._unacked.values())


# -- kombu's SQLAlchemy transport with leases -------------------------------

def _leased_sqla_transport() -> type:
    """Built on first use so that importing this module does not import SQLAlchemy's ORM."""
    import warnings
    from json import dumps, loads
    from queue import Empty

    # kombu's models use a loader strategy SQLAlchemy 2.1 deprecates; nothing to do here.
    warnings.filterwarnings("ignore", message=".*``noload`` loader strategy",
                            category=DeprecationWarning)

    from kombu.transport import sqlalchemy as ksqla
    from kombu.utils.encoding import bytes_to_str
    from sqlalchemy import create_engine, delete, event, insert, or_, select, text, update
    from sqlalchemy.orm import sessionmaker

    # One SQLite writer at a time: queueing this process's threads on a lock is far
    # cheaper than letting them meet SQLite's busy handler, which sleeps in ms steps.
    sqlite_lock = threading.RLock()

    def locked(fn):  # noqa: ANN001, ANN202
        def wrapper(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
            if self.connection.client.hostname.startswith("sqlite"):
                with sqlite_lock:
                    return fn(self, *args, **kwargs)
            return fn(self, *args, **kwargs)
        return wrapper

    class LeasedChannel(ksqla.Channel):
        _engines: dict = {}

        @locked
        def _size(self, queue):  # noqa: ANN001, ANN202
            return super()._size(queue)

        def _engine_from_config(self):  # noqa: ANN202 - kombu's signature
            hostname = self.connection.client.hostname
            if hostname.startswith("sqlite"):
                engine = create_engine(hostname, connect_args={"timeout": 60,
                                                               "check_same_thread": False})

                @event.listens_for(engine, "connect")
                def _pragmas(dbapi_conn, _record):  # noqa: ANN001
                    cur = dbapi_conn.cursor()
                    # WAL: publishers do not wait for pollers; NORMAL is durable
                    # against a killed process (only an OS crash may lose the tail).
                    cur.execute("PRAGMA journal_mode=WAL")
                    cur.execute("PRAGMA synchronous=NORMAL")
                    cur.execute("PRAGMA busy_timeout=60000")
                    cur.close()
                return engine
            return create_engine(hostname, pool_pre_ping=True)

        def _open(self):  # noqa: ANN202
            conninfo = self.connection.client
            key = conninfo.hostname
            if key not in self._engines:
                with ksqla._MUTEX:
                    if key not in self._engines:
                        engine = self._engine_from_config()
                        ksqla.metadata.create_all(engine)
                        self._engines[key] = engine, sessionmaker(bind=engine)
            return self._engines[key]

        @property
        def _table(self):  # noqa: ANN202
            return self.message_cls.__table__

        def _queue_id(self, queue):  # noqa: ANN001, ANN202
            ids = self.__dict__.setdefault("_bdchub_qids", {})
            qid = ids.get(queue)
            if qid is None:
                qid = ids[queue] = self._get_or_create(queue).id
                self.session.commit()
            return qid

        @locked
        def _put(self, queue, payload, **kwargs):  # noqa: ANN001, ANN003, ANN202
            # Core instead of the ORM: a publish is one INSERT and a commit.
            qid = self._queue_id(queue)
            self._execute(insert(self._table).values(
                payload=dumps(payload), queue_id=qid, visible=True, version=1))

        @locked
        def _get(self, queue):  # noqa: ANN001, ANN202
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

        def _row(self, delivery_tag):  # noqa: ANN001, ANN202
            try:
                return self.qos.get(delivery_tag).delivery_info.get("bdchub_row")
            except KeyError:
                return None

        @locked
        def _execute(self, statement) -> None:  # noqa: ANN001
            try:
                self.session.execute(statement)
                self.session.commit()
            except Exception:
                self.session.rollback()
                raise

        def basic_ack(self, delivery_tag, multiple=False):  # noqa: ANN001, ANN202
            row = self._row(delivery_tag)
            if row is not None:
                self._execute(delete(self._table).where(self._table.c.id == row))
            self.qos.ack(delivery_tag)

        def basic_reject(self, delivery_tag, requeue=False):  # noqa: ANN001, ANN202
            row = self._row(delivery_tag)
            if row is not None:
                if requeue:
                    self._execute(update(self._table).where(self._table.c.id == row)
                                  .values(visible=True))
                else:
                    self._execute(delete(self._table).where(self._table.c.id == row))
            self.qos.ack(delivery_tag)  # forget it locally; the row says what happens next

        def _restore(self, message):  # noqa: ANN001, ANN202
            row = message.delivery_info.get("bdchub_row")
            if row is None:
                return super()._restore(message)
            self._execute(update(self._table).where(self._table.c.id == row)
                          .values(visible=True))
            return None

        def renew_leases(self) -> None:
            rows = [m.delivery_info.get("bdchub_row") for tag, m in list(self.qos._delivered.items())
                    if tag not in self.qos._dirty]
            rows = [r for r in rows if r is not None]
            if rows:
                self._execute(update(self._table).where(self._table.c.id.in_(rows))
                              .values(timestamp=_dt.datetime.now()))

        def recover_expired(self, lease: float) -> None:
            cutoff = _dt.datetime.now() - _dt.timedelta(seconds=lease)
            t = self._table
            self._execute(update(t).where(t.c.visible == False)  # noqa: E712
                          .where(or_(t.c.timestamp < cutoff, t.c.timestamp.is_(None)))
                          .values(visible=True))

    class LeasedSqlaTransport(ksqla.Transport):
        Channel = LeasedChannel

    return LeasedSqlaTransport


_transport_cls: type | None = None


def _sqla_transport() -> type:
    global _transport_cls
    if _transport_cls is None:
        _transport_cls = _leased_sqla_transport()
    return _transport_cls


# -- kombu (RabbitMQ and SQL) -----------------------------------------------

class KombuBroker(Broker):
    """RabbitMQ (``amqp://``) or kombu's SQL transport (``sqla+…``) through kombu.

    One consumer thread owns the consuming connection: deliveries are handed to
    handlers there, and acks are queued back to it (kombu channels are not
    thread-safe). Every publishing thread has its own connection.
    """

    def __init__(self, url: str, *, prefix: str = "bdchub", exchange: str | None = None,
                 queue_type: str = "classic", confirm: bool = True,
                 visibility_timeout: float = 30.0, polling_interval: float = 0.02,
                 publish_timeout: float = 120.0, connect_timeout: float = 5.0,
                 sealer: Sealer | None = None):
        import kombu

        self._kombu = kombu
        # Queued messages carry personal data and sit on disk (the SQLite file,
        # RabbitMQ's durable queues): sealed like the store's columns.
        self._sealer = sealer
        if url.startswith("sqlite:"):
            url = "sqla+" + url
        self.url = url
        self.virtual = url.startswith(("sqla+", "sqlalchemy+"))
        self.prefix = prefix
        self.queue_type = queue_type
        self.visibility_timeout = float(visibility_timeout)
        self.publish_timeout = float(publish_timeout)
        if self.virtual:
            self._conn_args: dict[str, Any] = {
                "hostname": url.split("+", 1)[1], "transport": _sqla_transport(),
                "transport_options": {"polling_interval": polling_interval}}
        else:
            self._conn_args = {"hostname": url, "connect_timeout": connect_timeout,
                               "transport_options": {"confirm_publish": confirm}}
        self.topic = kombu.Exchange(exchange or f"{prefix}.events", type="topic", durable=True)
        self.direct = kombu.Exchange(f"{prefix}.direct", type="direct", durable=True)
        self._queues: dict[str, Any] = {}
        self._patterns: dict[str, tuple[str, ...]] = {}
        self._local = threading.local()
        self._producers: list[Any] = []  # one connection per publishing thread, closed at close()
        self._producers_lock = threading.Lock()
        self._handlers: dict[str, Handler] = {}
        self._prefetch: dict[str, int] = {}
        self._acks: _queue.SimpleQueue[tuple[int, Any, str]] = _queue.SimpleQueue()
        self._inflight = 0
        self._inflight_lock = threading.Lock()
        self._gen = 0
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._killed = False
        self._consumer_conn: Any = None
        self.connected = threading.Event()

    # -- topology
    def _connection(self) -> Any:
        return self._kombu.Connection(**self._conn_args)

    def declare_queue(self, name: str, patterns: Sequence[str]) -> None:
        kombu = self._kombu
        args = {"x-queue-type": "quorum"} if self.queue_type == "quorum" and not self.virtual else None
        bindings = [kombu.binding(self.topic, routing_key=p) for p in patterns]
        bindings.append(kombu.binding(self.direct, routing_key=name))
        queue = kombu.Queue(name, bindings=bindings, durable=True, auto_delete=False,
                            queue_arguments=args)
        self._queues[name] = queue
        self._patterns[name] = tuple(patterns)
        if not self.virtual:
            self._retrying(lambda conn: self._declare(conn, queue), what="declare")

    def _declare(self, conn: Any, queue: Any) -> None:
        with conn.channel() as channel:
            queue(channel).declare()

    def _retrying(self, fn: Callable[[Any], Any], *, what: str) -> Any:
        deadline = time.monotonic() + self.publish_timeout
        delay = 0.1
        while True:
            try:
                with self._connection() as conn:
                    conn.ensure_connection(max_retries=1)
                    return fn(conn)
            except Exception as exc:  # noqa: BLE001 - every transport error looks different
                if time.monotonic() + delay > deadline or self._killed:
                    raise RecoverableError(_("broker unavailable ({what}): {error}",
                                             what=what, error=exc)) from exc
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    # -- publishing
    def _producer(self) -> Any:
        producer = getattr(self._local, "producer", None)
        if producer is None:
            conn = self._connection()
            conn.ensure_connection(max_retries=1)
            producer = self._kombu.Producer(conn.channel())
            self._local.producer = producer
            with self._producers_lock:
                self._producers.append(producer)
        return producer

    def _drop_producer(self) -> None:
        producer = getattr(self._local, "producer", None)
        self._local.producer = None
        if producer is not None:
            with self._producers_lock, contextlib.suppress(ValueError):
                self._producers.remove(producer)
            with contextlib.suppress(Exception):
                producer.connection.close()

    def _targets(self, routing_key: str) -> list[str]:
        return [q for q, pats in self._patterns.items() if any(topic_matches(p, routing_key) for p in pats)]

    def publish(self, body: bytes, routing_key: str, *, queue: str | None = None,
                message_id: str = "") -> None:
        deadline = time.monotonic() + self.publish_timeout
        delay = 0.1
        content_type = "application/json"
        if self._sealer is not None:
            body = self._sealer.seal(SEALED_COLUMN, body.decode("utf-8")).encode("ascii")
            content_type = SEALED_CONTENT_TYPE
        props = {"content_type": content_type, "content_encoding": "utf-8",
                 "delivery_mode": 2, "retry": False}
        if message_id:
            props["message_id"] = message_id
        while True:
            try:
                producer = self._producer()
                if self.virtual:
                    # Bindings of virtual transports live in each connection's memory;
                    # the hub knows its topology, so it routes itself.
                    for target in ([queue] if queue else self._targets(routing_key)):
                        producer.publish(body, exchange="", routing_key=target, **props)
                elif queue:
                    producer.publish(body, exchange=self.direct, routing_key=queue, **props)
                else:
                    producer.publish(body, exchange=self.topic, routing_key=routing_key, **props)
                return
            except Exception as exc:  # noqa: BLE001 - connection, channel and nack errors alike
                self._drop_producer()
                if self._killed or time.monotonic() + delay > deadline:
                    raise RecoverableError(_("broker unavailable, message {id} not published: {error}",
                                             id=message_id, error=exc)) from exc
                log.warning("publish failed (%s); retrying in %.1fs", exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    # -- consuming
    def consume(self, handlers: Mapping[str, Handler], prefetch: Mapping[str, int]) -> None:
        self._handlers.update(handlers)
        self._prefetch.update(prefetch)
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._consume_loop, name="broker-consumer",
                                            daemon=True)
            self._thread.start()

    @property
    def in_flight(self) -> int:
        return self._inflight

    def _settler(self, gen: int, message: Any) -> Callable[[str], None]:
        def settle(op: str) -> None:
            self._acks.put((gen, message, op))
        return settle

    def _on_message(self, name: str, gen: int, message: Any) -> None:
        with self._inflight_lock:
            self._inflight += 1
        redelivered = bool((message.delivery_info or {}).get("redelivered"))
        body = message.body if isinstance(message.body, bytes) else str(message.body).encode()
        try:
            if message.content_type == SEALED_CONTENT_TYPE:
                if self._sealer is None:
                    raise StoreError(_("a sealed message arrived but this hub has no data key"))
                body = self._sealer.open(SEALED_COLUMN, body.decode("ascii")).encode("utf-8")
        except (StoreError, UnicodeDecodeError) as exc:
            # Not ours to read (another data key) or damaged. Neither acked nor
            # rejected: it stays with the broker, which hands it out again after
            # a restart (RabbitMQ) or the lease (SQL), once the key is set right;
            # a requeue would spin on it.
            log.error("message on %s cannot be opened (%s); held, not acked", name, exc)
            with self._inflight_lock:
                self._inflight -= 1
            return
        delivery = Delivery(body, name, redelivered, self._settler(gen, message))
        try:
            self._handlers[name](delivery)
        except Exception:  # a handler bug must not kill the consumer
            log.exception("handler for %s failed", name)
            delivery.reject(requeue=True)

    def _flush_acks(self, gen: int) -> None:
        while True:
            try:
                msg_gen, message, op = self._acks.get_nowait()
            except _queue.Empty:
                return
            with self._inflight_lock:
                self._inflight -= 1
            if msg_gen != gen:
                continue  # its channel is gone; the broker redelivers it and dedup absorbs it
            if op == "ack":
                message.ack()
            else:
                message.reject(requeue=(op == "requeue"))

    def _consume_loop(self) -> None:
        backoff = 0.2
        while not self._stopping.is_set():
            conn = None
            try:
                conn = self._connection()
                conn.ensure_connection(max_retries=1)
                self._consumer_conn = conn
                self._gen += 1
                gen = self._gen
                # Deliveries of the previous connection cannot be acked any more.
                self._flush_acks(gen)
                consumers = []
                for name in self._handlers:
                    channel = conn.channel()
                    consumer = self._kombu.Consumer(
                        channel, queues=[self._queues[name]], no_ack=False,
                        on_message=lambda m, n=name, g=gen: self._on_message(n, g, m),
                        prefetch_count=self._prefetch.get(name) or 16)
                    consumer.consume()
                    consumers.append(consumer)
                self.connected.set()
                backoff = 0.2
                self._serve(conn, gen, consumers)
                return
            except Exception as exc:  # noqa: BLE001 - reconnect on anything the transport raises
                if self._stopping.is_set() or self._killed:
                    return
                self.connected.clear()
                log.warning("broker connection lost (%s); reconnecting in %.1fs", exc, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                self._consumer_conn = None
                if conn is not None and not self._killed:
                    with contextlib.suppress(Exception):
                        conn.release()

    def _serve(self, conn: Any, gen: int, consumers: list[Any]) -> None:
        lease_every = max(0.5, self.visibility_timeout / 3)
        next_lease = time.monotonic()
        while not self._stopping.is_set():
            self._flush_acks(gen)
            try:
                conn.drain_events(timeout=0.005 if self._inflight else 0.2)
            except TimeoutError:
                pass
            if self.virtual and time.monotonic() >= next_lease:
                next_lease = time.monotonic() + lease_every
                self._leases(consumers)
        if self._killed:
            return
        for consumer in consumers:
            with contextlib.suppress(Exception):
                consumer.cancel()
        deadline = time.monotonic() + self._stop_timeout
        while self._inflight and time.monotonic() < deadline:
            self._flush_acks(gen)
            if self.virtual:
                time.sleep(0.005)
            else:
                with contextlib.suppress(TimeoutError):
                    conn.drain_events(timeout=0.01)
        self._flush_acks(gen)

    def _leases(self, consumers: list[Any]) -> None:
        for i, consumer in enumerate(consumers):
            with contextlib.suppress(Exception):
                consumer.channel.renew_leases()
                if i == 0:  # one table: one sweep is enough
                    consumer.channel.recover_expired(self.visibility_timeout)

    _stop_timeout = 30.0

    def stop(self, timeout: float = 30.0) -> None:
        self._stop_timeout = timeout
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout + 5)
            self._thread = None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stop(timeout=5)
        with self._producers_lock:
            producers, self._producers = self._producers, []
        for producer in producers:
            with contextlib.suppress(Exception):
                producer.connection.close()
        self._local = threading.local()

    def kill(self) -> None:
        self._killed = True
        self._stopping.set()
        with contextlib.suppress(Exception):
            conn = self._consumer_conn
            if conn is not None:
                if self.virtual:
                    # Like a killed process: give nothing back; leases run out instead.
                    for channel in list(getattr(conn.transport, "channels", [])):
                        channel.do_restore = False
                        channel.qos.restore_at_shutdown = False
                else:
                    conn.collect()  # drop the socket; RabbitMQ requeues what was unacked
        with self._producers_lock:
            producers, self._producers = self._producers, []
        if not self.virtual:
            for producer in producers:
                with contextlib.suppress(Exception):
                    producer.connection.collect()
        if self._thread is not None:
            self._thread.join(2.0)
            self._thread = None

    def queue_size(self, name: str) -> int | None:
        queue = self._queues.get(name)
        if queue is None:
            return None
        try:
            with self._connection() as conn, conn.channel() as channel:
                if self.virtual:
                    return int(channel._size(name))
                _name, count, _consumers = queue(channel).queue_declare(passive=True)
                return int(count)
        except Exception:  # noqa: BLE001 - a size is only informative
            return None

    def purge(self, name: str) -> None:
        with self._connection() as conn, conn.channel() as channel:
            queue = self._queues.get(name) or self._kombu.Queue(name)
            queue(channel).purge()
