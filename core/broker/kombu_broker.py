"""``KombuBroker``: RabbitMQ, or the embedded SQL broker, through kombu.

``amqp://`` gives durable (or quorum) queues, persistent messages and
publisher confirms; ``sqla+…`` gives kombu's SQLAlchemy transport with the
hub's leases (``leased_sql``). Message bodies may be sealed (``core.sealing``)
because queued messages carry personal data and sit on disk.

Quorum queues (``queue_type="quorum"``, for several workers on one RabbitMQ)
carry a delivery limit and a dead-letter exchange: a message handed out
``delivery_limit`` times without an ack (a worker that dies on it each time, a
handler that puts it back each time) moves, at least once, to the queue
``{prefix}.dead``, which the hub consumes like a route's (``Delivery.dead_from``
names the queue it came from) and records as a dead letter. RabbitMQ cannot
change a queue's type or arguments in place: a queue declared otherwise before
is a ``ConfigError`` at start that says how to move, not a retry loop.
"""

from __future__ import annotations

import contextlib
import logging
import queue as _queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..backoff import Backoff
from ..errors import ConfigError, RecoverableError, StoreError
from ..i18n import _
from ..sealing import Sealer
from .base import Broker, Delivery, Handler, Outbound, topic_matches
from .retry import Retry

__all__ = ["DEFAULT_DELIVERY_LIMIT", "SEALED_COLUMN", "SEALED_CONTENT_TYPE", "KombuBroker"]

#: Sealed message bodies: ``core.sealing`` text under this name and content type.
SEALED_COLUMN = "broker.message"
SEALED_CONTENT_TYPE = "application/x-bdchub-sealed"
#: Deliveries of one message on a quorum queue before it is dead-lettered. A
#: worker killed mid-message, a broker restart or the hub's own wait for a store
#: that is away each count once; twenty is RabbitMQ 4's own default.
DEFAULT_DELIVERY_LIMIT = 20

log = logging.getLogger("bdchub.broker")


class KombuBroker(Broker):
    """RabbitMQ (``amqp://``) or kombu's SQL transport (``sqla+…``) through kombu.

    One consumer thread owns the consuming connection: deliveries are handed to
    handlers there, and acks are queued back to it (kombu channels are not
    thread-safe), as are the queues to start or stop consuming while it runs
    (``consume``, ``cancel``). Every publishing thread has its own connection.
    """

    #: Waits between attempts to declare or publish, until ``publish_timeout``.
    publish_backoff = Backoff(first=0.1, cap=2.0)
    #: Waits between attempts of the consumer to reconnect, until stopped.
    reconnect_backoff = Backoff(first=0.2, cap=5.0)

    def __init__(self, url: str, *, prefix: str = "bdchub", exchange: str | None = None,
                 queue_type: str = "classic", delivery_limit: int = DEFAULT_DELIVERY_LIMIT,
                 confirm: bool = True,
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
        self.delivery_limit = int(delivery_limit)
        #: Where the broker moves a message past its delivery limit (quorum queues).
        self.dead_letter_queue: str | None = (
            f"{prefix}.dead" if queue_type == "quorum" and not self.virtual else None)
        self.visibility_timeout = float(visibility_timeout)
        self.publish_timeout = float(publish_timeout)
        if self.virtual:
            from .leased_sql import LeasedSqlaTransport, hold_engine

            hold_engine(url.split("+", 1)[1])
            self._conn_args: dict[str, Any] = {
                "hostname": url.split("+", 1)[1], "transport": LeasedSqlaTransport,
                "transport_options": {"polling_interval": polling_interval}}
        else:
            self._conn_args = {"hostname": url, "connect_timeout": connect_timeout,
                               "transport_options": {"confirm_publish": confirm}}
        self.topic = kombu.Exchange(exchange or f"{prefix}.events", type="topic", durable=True)
        self.direct = kombu.Exchange(f"{prefix}.direct", type="direct", durable=True)
        self._queues: dict[str, Any] = {}
        self._dead_declared = False
        if self.dead_letter_queue is not None:
            dead = kombu.Exchange(self.dead_letter_queue, type="fanout", durable=True)
            self._queues[self.dead_letter_queue] = kombu.Queue(
                self.dead_letter_queue, exchange=dead, durable=True, auto_delete=False,
                queue_arguments={"x-queue-type": "quorum"})
        self._patterns: dict[str, tuple[str, ...]] = {}
        self._local = threading.local()
        self._producers: list[Any] = []  # one connection per publishing thread, closed at close()
        self._producers_lock = threading.Lock()
        self._handlers: dict[str, Handler] = {}
        self._prefetch: dict[str, int] = {}
        self._handlers_lock = threading.Lock()
        # ("consume" | "cancel", queue) for the consumer thread, which owns the channels.
        self._control: _queue.SimpleQueue[tuple[str, str]] = _queue.SimpleQueue()
        self._acks: _queue.SimpleQueue[tuple[int, Any, str, str]] = _queue.SimpleQueue()
        self._inflight = 0
        self._inflight_by: dict[str, int] = {}
        self._inflight_lock = threading.Lock()
        self._gen = 0
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._killed = threading.Event()
        self._consumer_conn: Any = None
        self.connected = threading.Event()
        self._engine_released = False

    # -- topology
    def _connection(self) -> Any:
        return self._kombu.Connection(**self._conn_args)

    def _connected(self) -> Any:
        conn = self._connection()
        try:
            # One attempt: kombu's own retry would sleep 2 s between tries, out
            # of reach of kill(); the callers' ``Retry`` is the only loop.
            conn.ensure_connection(max_retries=0)
        except Exception:
            with contextlib.suppress(Exception):
                conn.release()
            raise
        return conn

    def queue_arguments(self, ordered: bool = False) -> dict[str, Any] | None:
        """The arguments a route's queue is declared with (None: a classic queue)."""
        if self.dead_letter_queue is None:
            return None
        args: dict[str, Any] = {
            "x-queue-type": "quorum", "x-delivery-limit": self.delivery_limit,
            "x-dead-letter-exchange": self.dead_letter_queue,
            # Moved to the dead-letter queue before it leaves this one: never lost.
            "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}
        if ordered:
            # One worker at a time takes an ordered route's messages (the next one
            # once it is gone): N workers each with one thread would not keep order.
            args["x-single-active-consumer"] = True
        return args

    def declare_queue(self, name: str, patterns: Sequence[str], *, ordered: bool = False) -> None:
        kombu = self._kombu
        if self.dead_letter_queue is not None and not self._dead_declared:
            dead = self._queues[self.dead_letter_queue]
            self._retrying(lambda conn: self._declare(conn, dead), what="declare")
            self._dead_declared = True
        bindings = [kombu.binding(self.topic, routing_key=p) for p in patterns]
        bindings.append(kombu.binding(self.direct, routing_key=name))
        queue = kombu.Queue(name, bindings=bindings, durable=True, auto_delete=False,
                            queue_arguments=self.queue_arguments(ordered))
        # A route reloaded with fewer patterns must stop receiving the others.
        dropped = sorted(set(self._patterns.get(name, ())) - set(patterns))
        self._queues[name] = queue
        self._patterns[name] = tuple(patterns)
        if not self.virtual:
            self._retrying(lambda conn: self._declare(conn, queue, dropped), what="declare")

    def _declare(self, conn: Any, queue: Any, dropped: Sequence[str] = ()) -> None:
        with conn.channel() as channel:
            bound = queue(channel)
            try:
                bound.declare()
            except Exception as exc:
                if getattr(exc, "reply_code", None) == 406:  # PRECONDITION_FAILED
                    raise self._inequivalent(queue.name, exc) from exc
                raise
            for pattern in dropped:
                bound.unbind_from(self.topic, routing_key=pattern)

    def _inequivalent(self, queue: str, exc: Exception) -> ConfigError:
        """RabbitMQ holds ``queue`` with another type or other arguments than this
        config asks for (``broker.queue_type``, ``broker.delivery_limit``): it cannot
        be changed in place, and retrying would never succeed."""
        other = "classic" if self.queue_type == "quorum" else "quorum"
        return ConfigError(_(
            "RabbitMQ already has queue {queue} with other arguments than broker.queue_type "
            "{wanted} (delivery limit {limit}) asks for ({error}). A queue's type and arguments "
            "cannot change in place. Either keep what the queues have (broker.queue_type: "
            "{other}, HUB_BROKER_QUEUE_TYPE={other} with the shipped config.yaml; or the "
            "delivery_limit they were made with), or move as docs/deployment.md "
            "says: drain the hub (clients cut off, hub run --no-pollers, until hub status shows "
            "nothing queued or in flight), stop every worker, delete the hub's queues (those "
            "rabbitmqctl list_queues shows starting with {prefix}.) with rabbitmqctl "
            "delete_queue, and start the workers with the new setting, which declare them anew",
            queue=queue, wanted=self.queue_type, limit=self.delivery_limit,
            error=getattr(exc, "reply_text", None) or exc, other=other, prefix=self.prefix))

    def _retrying(self, fn: Callable[[Any], Any], *, what: str) -> Any:
        retry = Retry(self.publish_backoff, stop=self._killed, timeout=self.publish_timeout)
        while True:
            try:
                with self._connected() as conn:
                    return fn(conn)
            except ConfigError:
                raise
            except Exception as exc:  # noqa: BLE001 - every transport error looks different
                if not retry.again(exc):
                    raise RecoverableError(_("broker unavailable ({what}): {error}",
                                             what=what, error=exc)) from exc

    # -- publishing
    def _producer(self) -> Any:
        producer = getattr(self._local, "producer", None)
        if producer is None:
            conn = self._connected()
            producer = self._kombu.Producer(conn.channel())
            self._local.producer = producer
            with self._producers_lock:
                self._producers.append(producer)
        return producer

    def _drop_producer(self) -> None:
        producer = getattr(self._local, "producer", None)
        self._local.producer = None
        self._local.confirms = None  # its channel goes with the producer's connection
        if producer is not None:
            with self._producers_lock, contextlib.suppress(ValueError):
                self._producers.remove(producer)
            with contextlib.suppress(Exception):
                producer.connection.close()

    def _targets(self, routing_key: str) -> list[str]:
        return [q for q, pats in self._patterns.items() if any(topic_matches(p, routing_key) for p in pats)]

    def _sealed(self, body: bytes) -> tuple[bytes, str]:
        """The body as it goes on the wire and its content type."""
        if self._sealer is None:
            return body, "application/json"
        return (self._sealer.seal(SEALED_COLUMN, body.decode("utf-8")).encode("ascii"),
                SEALED_CONTENT_TYPE)

    def _wire(self, message: Outbound) -> tuple[bytes, dict[str, Any]]:
        """The body as it goes on the wire and the producer's arguments for it."""
        body, content_type = self._sealed(message.body)
        props = {"content_type": content_type, "content_encoding": "utf-8",
                 "delivery_mode": 2, "retry": False}
        if message.message_id:
            props["message_id"] = message.message_id
        return body, props

    def _send(self, producer: Any, message: Outbound, body: bytes, props: dict[str, Any]) -> None:
        if self.virtual:
            # Bindings of virtual transports live in each connection's memory;
            # the hub knows its topology, so it routes itself.
            for target in ([message.queue] if message.queue
                           else self._targets(message.routing_key)):
                producer.publish(body, exchange="", routing_key=target, **props)
        elif message.queue:
            producer.publish(body, exchange=self.direct, routing_key=message.queue, **props)
        else:
            producer.publish(body, exchange=self.topic, routing_key=message.routing_key, **props)

    def publish(self, body: bytes, routing_key: str, *, queue: str | None = None,
                message_id: str = "") -> None:
        retry = Retry(self.publish_backoff, stop=self._killed, timeout=self.publish_timeout)
        message = Outbound(body, routing_key, queue, message_id)
        body, props = self._wire(message)
        while True:
            try:
                self._send(self._producer(), message, body, props)
                return
            except Exception as exc:  # noqa: BLE001 - connection, channel and nack errors alike
                self._drop_producer()
                if not retry.again(exc, "publish failed (%s); retrying in %.1fs"):
                    raise RecoverableError(_("broker unavailable, message {id} not published: {error}",
                                             id=message_id, error=exc)) from exc

    def publish_many(self, messages: Sequence[Outbound]) -> None:
        """Publish ``messages`` on this thread's connection and wait for RabbitMQ's
        confirms of all of them together, instead of one round trip each; on the
        SQL transport, insert them in one transaction instead of one each."""
        if len(messages) < 2 or not (
                self.virtual or self._conn_args["transport_options"].get("confirm_publish")):
            super().publish_many(messages)
            return
        if self.virtual:
            self._publish_rows(messages)
            return
        wire = []
        for message in messages:
            body, content_type = self._sealed(message.body)
            props = {"delivery_mode": 2}
            if message.message_id:
                props["message_id"] = message.message_id
            exchange, key = ((self.direct.name, message.queue) if message.queue
                             else (self.topic.name, message.routing_key))
            wire.append((body, content_type, props, exchange, key))
        retry = Retry(self.publish_backoff, stop=self._killed, timeout=self.publish_timeout)
        while True:
            try:
                self._confirms().publish(wire, self.publish_timeout)
                return
            except Exception as exc:  # noqa: BLE001 - connection, channel and nack errors alike
                # The whole batch again on a new connection: whatever of it RabbitMQ
                # already took is a repeat its consumers absorb by message id.
                self._drop_producer()
                if not retry.again(exc, "publish failed (%s); retrying in %.1fs"):
                    raise _not_published(messages, exc) from exc

    def _publish_rows(self, messages: Sequence[Outbound]) -> None:
        """``messages`` into the SQL transport's table in one transaction."""
        wire = [(message, *self._wire(message)) for message in messages]
        retry = Retry(self.publish_backoff, stop=self._killed, timeout=self.publish_timeout)
        while True:
            try:
                producer = self._producer()
                with producer.channel.one_transaction():
                    for message, body, props in wire:
                        self._send(producer, message, body, props)
                return
            except Exception as exc:  # noqa: BLE001 - nothing of the batch was committed
                self._drop_producer()
                if not retry.again(exc, "publish failed (%s); retrying in %.1fs"):
                    raise _not_published(messages, exc) from exc

    def _confirms(self) -> _Confirms:
        confirms = getattr(self._local, "confirms", None)
        if confirms is None:
            # A channel of its own on the thread's connection: the producer's channel
            # waits for each confirm in turn and counts its own delivery tags.
            confirms = _Confirms(self._producer().connection.channel())
            self._local.confirms = confirms
        return confirms

    # -- consuming
    def consume(self, handlers: Mapping[str, Handler], prefetch: Mapping[str, int]) -> None:
        with self._handlers_lock:
            self._handlers.update(handlers)
            self._prefetch.update(prefetch)
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._consume_loop, name="broker-consumer",
                                            daemon=True)
            self._thread.start()
            return
        for name in handlers:
            self._control.put(("consume", name))

    def cancel(self, queue: str) -> None:
        with self._handlers_lock:
            if self._handlers.pop(queue, None) is None:
                return
        self._control.put(("cancel", queue))

    @property
    def in_flight(self) -> int:
        return self._inflight

    def _settler(self, gen: int, message: Any, name: str) -> Callable[[str], None]:
        def settle(op: str) -> None:
            self._acks.put((gen, message, op, name))
        return settle

    def _on_message(self, name: str, gen: int, message: Any) -> None:
        with self._inflight_lock:
            self._inflight += 1
            self._inflight_by[name] = self._inflight_by.get(name, 0) + 1
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
                self._inflight_by[name] -= 1
            return
        delivery = Delivery(body, name, redelivered, self._settler(gen, message, name),
                            dead_from=self._dead_from(name, message))
        handler = self._handlers.get(name)
        if handler is None:  # cancelled since the broker sent it: back to the queue
            delivery.reject(requeue=True)
            return
        try:
            handler(delivery)
        except Exception:  # a handler bug must not kill the consumer
            log.exception("handler for %s failed", name)
            delivery.reject(requeue=True)

    def _dead_from(self, name: str, message: Any) -> str:
        """The queue a message of the dead-letter queue was moved from ('' elsewhere)."""
        if name != self.dead_letter_queue:
            return ""
        headers = message.headers or {}
        return str(headers.get("x-first-death-queue")
                   or next(iter(headers.get("x-death") or []), {}).get("queue") or "")

    def _flush_acks(self, gen: int) -> None:
        while True:
            try:
                msg_gen, message, op, name = self._acks.get_nowait()
            except _queue.Empty:
                return
            with self._inflight_lock:
                self._inflight -= 1
                self._inflight_by[name] -= 1
            if msg_gen != gen:
                continue  # its channel is gone; the broker redelivers it and dedup absorbs it
            if op == "ack":
                message.ack()
            else:
                message.reject(requeue=(op == "requeue"))

    def _consume_loop(self) -> None:
        retry = Retry(self.reconnect_backoff, stop=self._stopping)  # kill() sets it too
        while not self._stopping.is_set():
            conn = None
            try:
                conn = self._connected()
                self._consumer_conn = conn
                self._gen += 1
                gen = self._gen
                # Deliveries of the previous connection cannot be acked any more.
                self._flush_acks(gen)
                # What was asked before this connection is in the handlers already.
                while not self._control.empty():
                    self._control.get_nowait()
                with self._handlers_lock:
                    names = list(self._handlers)
                consumers: dict[str, Any] = {}
                for name in names:
                    consumers[name] = self._consumer(conn, name, gen)
                self.connected.set()
                retry.reset()
                self._serve(conn, gen, consumers)
                return
            except Exception as exc:  # noqa: BLE001 - reconnect on anything the transport raises
                self.connected.clear()
                if not retry.again(exc, "broker connection lost (%s); reconnecting in %.1fs"):
                    return
            finally:
                self._consumer_conn = None
                if conn is not None and not self._killed.is_set():
                    with contextlib.suppress(Exception):
                        conn.release()

    def _consumer(self, conn: Any, name: str, gen: int) -> Any:
        consumer = self._kombu.Consumer(
            conn.channel(), queues=[self._queues[name]], no_ack=False,
            on_message=lambda m, n=name, g=gen: self._on_message(n, g, m),
            prefetch_count=self._prefetch.get(name) or 16)
        consumer.consume()
        return consumer

    def _steer(self, conn: Any, gen: int, consumers: dict[str, Any],
               retiring: list[tuple[str, Any]]) -> None:
        """Start and stop the queues asked for since the last pass (consumer thread)."""
        while True:
            try:
                op, name = self._control.get_nowait()
            except _queue.Empty:
                break
            if op == "cancel":
                consumer = consumers.pop(name, None)
                if consumer is not None:
                    with contextlib.suppress(Exception):
                        consumer.cancel()
                    # Kept open until its deliveries are settled: acks go through it.
                    retiring.append((name, consumer.channel))
            elif name not in consumers and name in self._handlers:
                consumers[name] = self._consumer(conn, name, gen)
        for item in list(retiring):
            name, channel = item
            if not self._inflight_by.get(name):
                retiring.remove(item)
                with contextlib.suppress(Exception):
                    channel.close()

    def _serve(self, conn: Any, gen: int, consumers: dict[str, Any]) -> None:
        lease_every = max(0.5, self.visibility_timeout / 3)
        next_lease = time.monotonic()
        retiring: list[tuple[str, Any]] = []
        while not self._stopping.is_set():
            self._flush_acks(gen)
            if not self._control.empty() or retiring:
                self._steer(conn, gen, consumers, retiring)
            try:
                conn.drain_events(timeout=0.005 if self._inflight else 0.2)
            except TimeoutError:
                pass
            if self.virtual and time.monotonic() >= next_lease:
                next_lease = time.monotonic() + lease_every
                self._leases([c.channel for c in consumers.values()]
                             + [channel for _name, channel in retiring])
        if self._killed.is_set():
            return
        for consumer in consumers.values():
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

    def _leases(self, channels: list[Any]) -> None:
        for i, channel in enumerate(channels):
            with contextlib.suppress(Exception):
                channel.renew_leases()
                if i == 0:  # one table: one sweep is enough
                    channel.recover_expired(self.visibility_timeout)

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
        self._release_engine()

    def _release_engine(self) -> None:
        if self.virtual and not self._engine_released:
            self._engine_released = True
            from .leased_sql import release_engine

            with contextlib.suppress(Exception):
                release_engine(self._conn_args["hostname"])

    def kill(self) -> None:
        self._killed.set()
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
        for producer in producers:
            with contextlib.suppress(Exception):
                if self.virtual:
                    producer.connection.close()  # holds no deliveries: nothing to give back
                else:
                    producer.connection.collect()
        if self._thread is not None:
            self._thread.join(2.0)
            self._thread = None
        self._release_engine()

    def ping(self, timeout: float = 2.0) -> None:
        """A new connection answers now, and the consumer (once started) is connected."""
        from ..health import ping_sqlite, sqlite_path

        if self._thread is not None and not self._thread.is_alive() \
                and not self._stopping.is_set():
            raise RecoverableError(_("the broker's consumer has stopped"))
        if self._thread is not None and not self.connected.is_set():
            raise RecoverableError(_("the broker's consumer is not connected; it is "
                                     "reconnecting"))
        hostname = self._conn_args["hostname"]
        path = sqlite_path(hostname) if self.virtual else None
        if path is not None:
            ping_sqlite(path, timeout)
            return
        if self.virtual:
            from sqlalchemy import create_engine
            from sqlalchemy.pool import NullPool

            engine = create_engine(hostname, poolclass=NullPool)
            try:
                with engine.connect() as conn:
                    conn.exec_driver_sql("SELECT 1")
            finally:
                engine.dispose()
            return
        conn = self._kombu.Connection(**{**self._conn_args, "connect_timeout": timeout})
        try:
            conn.ensure_connection(max_retries=0)
        finally:
            with contextlib.suppress(Exception):
                conn.release()

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


def _not_published(messages: Sequence[Outbound], exc: Exception) -> RecoverableError:
    return RecoverableError(_("broker unavailable, {count} messages (the first {id}) not "
                              "published: {error}", count=len(messages),
                              id=messages[0].message_id, error=exc))


class _Confirms:
    """A channel in confirm mode whose publications are confirmed together: each
    message is sent at once, then the confirms of all of them are awaited (RabbitMQ
    confirms several with one ``multiple`` ack)."""

    def __init__(self, channel: Any):
        self.channel = channel
        self.sent = 0  # RabbitMQ numbers a confirm-mode channel's publications from 1
        self.waiting: set[int] = set()
        self.nacked = 0
        channel.events["basic_ack"].add(self._ack)
        channel.events["basic_nack"].add(self._nack)
        channel.confirm_select()

    def _ack(self, tag: int, multiple: bool) -> None:
        if multiple:
            self.waiting = {t for t in self.waiting if t > tag}
        else:
            self.waiting.discard(tag)

    def _nack(self, tag: int, multiple: bool) -> None:
        before = len(self.waiting)
        self._ack(tag, multiple)
        self.nacked += before - len(self.waiting)

    def publish(self, wire: Sequence[tuple[bytes, str, dict[str, Any], str, str]],
                timeout: float) -> None:
        channel = self.channel
        self.nacked = 0
        for body, content_type, props, exchange, key in wire:
            message = channel.prepare_message(body, None, content_type, "utf-8", None, props)
            channel._basic_publish(message, exchange=exchange, routing_key=key)
            self.sent += 1
            self.waiting.add(self.sent)
        deadline = time.monotonic() + timeout
        while self.waiting:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{len(self.waiting)} publications not confirmed "
                                   f"in {timeout:.0f} s")
            channel.connection.drain_events(timeout=left)
        if self.nacked:
            raise RuntimeError(f"RabbitMQ refused {self.nacked} of {len(wire)} publications")
