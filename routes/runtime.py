"""A running hub: routes on the broker, worker threads, the scheduler, ops queries.

``Hub.from_config(config)`` assembles a hub from the plain dict that
``core.config.load`` returns; nothing connects until ``start()``::

    hub = Hub.from_config(core.config.load("config.yaml"))
    hub.serve_forever()            # start, then block until SIGTERM / SIGINT

Topology: a topic exchange (``{prefix}.events``, routing key = message type),
a direct exchange (``{prefix}.direct``, routing key = queue name), one durable
queue per route (``{prefix}.route.{name}``) bound by its ``from`` patterns,
and ``{prefix}.await`` bound to every type some ``await`` step waits for.
Each route has its own thread pool (``concurrency``, default 4) and prefetch
(``broker.prefetch``, default twice the concurrency; at least 64 for a route
run in batches, ``routes.batch``), so a slow route cannot starve the others.
A route whose steps all stay in the process is run in batches on at most two
threads (``routes.batch``). Any number of worker processes may serve the same broker
and store (scale-out): everything they share is in the broker and the store;
parked messages are claimed ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (a
conditional update on SQLite), await deadlines decided by a conditional update.
On RabbitMQ's quorum queues a route with ``concurrency: 1`` is taken by one
worker at a time, and a message past the delivery limit is recorded as a dead
letter (``routes.exhausted``); see docs/deployment.md.

Defaults when the config has no ``broker`` / ``store``: the embedded pair,
``sqla+sqlite:///<config dir>/data/broker.db`` and
``sqlite:///<config dir>/data/store.db``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bdchub.core import greenloop, tracing
from bdchub.core.broker import (
    DEFAULT_DELIVERY_LIMIT,
    Broker,
    Delivery,
    InMemoryBroker,
    broker_from_url,
)
from bdchub.core.datadir import data_dir
from bdchub.core.envelope import Envelope, Hop
from bdchub.core.errors import ConfigError, HubError, RouteError
from bdchub.core.health import Part, probe
from bdchub.core.i18n import _
from bdchub.core.ids import derive_id
from bdchub.core.masking import Masker
from bdchub.core.sealing import audit_key as chain_key
from bdchub.core.sealing import load_sealer
from bdchub.core.store import Finish, Store, in_memory

from .batch import batchable, handle_batch
from .compiler import Route, compile_routes
from .engine import Engine
from .headers import H_ORIGIN, H_PARK_COUNT, H_REPLAY
from .middleware import MetricsMiddleware, Middleware, Middlewares, default_metrics
from .progress import answer
from .tenants import Tenancy, own_connectors

log = logging.getLogger("bdchub.routes")

AUDIT_FILE = "audit.jsonl"
#: Threads of a route run in batches (``routes.batch``), and the most deliveries
#: one batch takes.
BATCH_THREADS = 2
BATCH_LIMIT = 64


def _in_trace(envelope: Envelope) -> Envelope:
    """``envelope`` handed to the hub inside a span (an inbound request's, with
    tracing on): it carries that span's ``traceparent``, so its route runs continue
    the trace (``routes.tracing``). One it already carries is kept."""
    traced = tracing.ACTIVE
    if traced is None or tracing.TRACEPARENT in envelope.headers:
        return envelope
    carried = traced.headers()
    return envelope.with_headers(**carried) if carried else envelope


class Hub:
    """The hub's runtime. Build it with ``from_config``."""

    def __init__(self, config: Mapping[str, Any], *, engine: Engine, broker: Broker,
                 store: Store, connectors: Mapping[str, Any], prefetch: int | None = None,
                 tick_interval: float = 1.0, inline: bool = False):
        self.config = config
        self.engine = engine
        self.broker = broker
        self.store = store
        self.connectors = dict(connectors)
        self.routes: dict[str, Route] = engine.routes
        self.prefetch = prefetch
        self.tick_interval = tick_interval
        self.inline = inline
        self.tenant = str(config.get("tenant") or "")
        self.masking = engine.masking
        self._declared = False
        self._started = False
        self._pools: list[ThreadPoolExecutor] = []
        self._workers: dict[str, _Workers] = {}  # by queue
        self._sync_busy: dict[int, int] = {}  # request/reply runs under way, by id(route)
        self._sync_done = threading.Condition()
        self._stop = threading.Event()
        self._scheduler: threading.Thread | None = None
        self._lock = threading.Lock()
        self._audit: Any = None
        engine.audit = self.audit  # ``audit`` steps write to the hub's own log

    # -- assembly
    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, broker: Broker | str | None = None,
                    store: Store | str | None = None,
                    connectors: Mapping[str, Any] | None = None,
                    middleware: Iterable[Middleware] | None = None,
                    metrics: MetricsMiddleware | None = None,
                    validator: Callable[[str, Any], list] | None = None,
                    clock: Callable[[], float] = time.time,
                    sleep: Callable[[float], None] = greenloop.sleep,
                    tick_interval: float = 1.0, prefix: str | None = None,
                    visibility_timeout: float | None = None,
                    publish_timeout: float | None = None,
                    redeliver_after: float = 30.0, inline: bool | None = None,
                    build_connectors: bool = True, create_key: bool = True) -> Hub:
        """Assemble a hub from a loaded config. Keyword arguments replace parts
        (tests pass ``broker="memory://"``, ready connectors, a fake clock);
        ``build_connectors=False`` is for one-shot commands that publish or query
        but never run a route (``hub dlq``, ``hub trace``, ``hub send``), which
        also pass ``create_key=False``: only a starting hub makes a data key."""
        broker_block = dict(config.get("broker") or {})
        store_block = dict(config.get("store") or {})
        prefix = prefix or broker_block.get("prefix") or "bdchub"
        if not isinstance(store, Store):
            url = store or store_block.get("url")
            # The key first: a command that may not make one fails before making a store.
            sealer = None if url and in_memory(url) else load_sealer(
                config, data_dir(config), create=create_key)
            if not url:
                folder = data_dir(config)
                folder.mkdir(parents=True, exist_ok=True)
                url = f"sqlite:///{folder / 'store.db'}"
            store = Store(url, pool_size=store_block.get("pool_size"), sealer=sealer)
        elif store.sealer is None and not in_memory(store.url):
            # Its progress rows' lookup keys would die with this process.
            raise ConfigError(_("the store at {url} rests on disk but was opened without "
                                "the data key", url=store.url))
        if not isinstance(broker, Broker):
            url = broker or broker_block.get("url")
            if not url:
                folder = data_dir(config)
                folder.mkdir(parents=True, exist_ok=True)
                url = f"sqla+sqlite:///{folder / 'broker.db'}"
            options: dict[str, Any] = {}
            if not url.startswith("memory://"):
                lease = (visibility_timeout or broker_block.get("visibility_timeout")
                         or os.environ.get("BDCHUB_BROKER_LEASE") or 30.0)
                options = {"prefix": prefix, "exchange": broker_block.get("exchange"),
                           "queue_type": broker_block.get("queue_type") or "classic",
                           "delivery_limit": int(broker_block.get("delivery_limit")
                                                 or DEFAULT_DELIVERY_LIMIT),
                           "visibility_timeout": float(lease)}
                if publish_timeout is not None:
                    options["publish_timeout"] = publish_timeout
                # Queued messages are sealed with the store's key (core.sealing).
                options["sealer"] = store.sealer
            broker = broker_from_url(url, **options)
        built = dict(connectors or {})
        if build_connectors:
            blocks = {**(config.get("connectors") or {}), **own_connectors(config)}
            for name, block in blocks.items():
                if name not in built:
                    built[name] = _build_connector(name, block, config)
        compiled = compile_routes(config, connectors=built if build_connectors else None,
                                  prefix=prefix, sleep=sleep)
        routes = {name: route for name, route in compiled.items() if route.enabled}
        mws: list[Middleware] = [metrics or default_metrics(), *(middleware or [])]
        # Off unless the config turns it on: then OpenTelemetry is never imported.
        traced = tracing.configure(config.get("tracing"))
        if traced is not None:
            from .tracing import TracingMiddleware

            mws.append(TracingMiddleware(traced))
        engine = Engine(routes, connectors=built, store=store, broker=broker,
                        middleware=Middlewares(mws), validator=validator, clock=clock,
                        sleep=sleep, masking=Masker.from_config(config.get("masking")),
                        tenant=str(config.get("tenant") or ""),
                        organisation=str(config.get("name") or ""), prefix=prefix,
                        redeliver_after=redeliver_after, tenancy=Tenancy.from_config(config))
        if inline is None:
            inline = isinstance(broker, InMemoryBroker)
        if inline:
            store.group_commit = False  # one thread: nothing to group, only a hand-off
        return cls(config, engine=engine, broker=broker, store=store, connectors=built,
                   prefetch=broker_block.get("prefetch"), tick_interval=tick_interval,
                   inline=inline)

    # -- topology
    def declare(self) -> None:
        """Declare every route's queue and the await queue (idempotent)."""
        with self._lock:
            if self._declared:
                return
            for route in self.routes.values():
                if not route.sync:
                    self.broker.declare_queue(route.queue, route.patterns,
                                              ordered=route.concurrency == 1)
            awaited = self.awaited_types()
            if awaited:
                self.broker.declare_queue(self.engine.await_queue, sorted(awaited))
            self._declared = True

    def awaited_types(self) -> set[str]:
        found: set[str] = set()
        for route in self.routes.values():
            found |= route.awaited_types()
        return found

    # -- life cycle
    def start(self) -> None:
        """Open connectors, declare queues, start consuming and the scheduler."""
        if self._started:
            return
        self._started = True
        self._stop.clear()
        for name, connector in self.connectors.items():
            try:
                connector.open()
            except Exception as exc:  # noqa: BLE001 - its routes park until it works
                log.warning("connector %s did not open: %s", name, exc)
        self.declare()
        handlers: dict[str, Callable[[Delivery], None]] = {}
        prefetch: dict[str, int] = {}
        for route in self.routes.values():
            if route.sync:
                continue
            handlers[route.queue] = self._route_dispatcher(route)
            prefetch[route.queue] = self._prefetch(route)
        if self.awaited_types():
            handlers[self.engine.await_queue] = self._dispatcher(2, self._safe(
                "await", self.engine.handle_awaited), self.engine.await_queue)
            prefetch[self.engine.await_queue] = self.prefetch or 4
        dead = self.broker.dead_letter_queue
        if dead:  # messages past a quorum queue's delivery limit: dead letters to record
            handlers[dead] = self._dispatcher(1, self._safe("dead", self.engine.handle_exhausted),
                                              dead)
            prefetch[dead] = 4
        self.broker.consume(handlers, prefetch)
        if isinstance(self.broker, InMemoryBroker) and not self.inline:
            self.broker.start_thread()
        if not self.inline:
            self._scheduler = threading.Thread(target=self._schedule, name="hub-scheduler",
                                               daemon=True)
            self._scheduler.start()

    def _handler(self, route: Route) -> Callable[[Delivery], None]:
        return self._safe(route.name, lambda d: self.engine.handle(route, d))

    def _prefetch(self, route: Route) -> int:
        if self.prefetch:
            return self.prefetch
        if batchable(route):
            # Batches are what arrived while the threads were busy: the broker must
            # have sent that many ahead (measured: 16 relayed 0.7x, 64 1.1-1.3x of
            # a bare kombu relay, bench/broker_relay.py).
            return max(route.concurrency * 2, BATCH_LIMIT)
        return route.concurrency * 2

    def _route_dispatcher(self, route: Route) -> Callable[[Delivery], None]:
        if not batchable(route):
            return self._dispatcher(route.concurrency, self._handler(route), route.queue)
        # Its steps only use the processor: more threads would take turns at the
        # interpreter lock; two let one run steps while the other waits for its
        # batch's confirms and commit. One keeps an ordered route's order.
        threads = min(route.concurrency, BATCH_THREADS)
        pool = None
        if not self.inline:
            pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="route")
            self._pools.append(pool)
        self._workers[route.queue] = found = _Batches(pool, self._batch_handler(route), threads)
        return found.dispatch

    def _batch_handler(self, route: Route) -> Callable[[list[Delivery]], None]:
        def run(deliveries: list[Delivery]) -> None:
            try:
                handle_batch(self.engine, route, deliveries)
            except Exception:  # noqa: BLE001 - never lose a delivery to a bug
                log.exception("route %s: unexpected failure; messages requeued", route.name)
                unsettled = [d for d in deliveries if not d.settled]
                if unsettled:
                    time.sleep(0.5)
                for delivery in unsettled:
                    delivery.reject(requeue=True)
        return run

    def _safe(self, name: str, fn: Callable[[Delivery], Any]) -> Callable[[Delivery], None]:
        def run(delivery: Delivery) -> None:
            try:
                fn(delivery)
            except Exception:  # noqa: BLE001 - never lose a delivery to a bug
                log.exception("route %s: unexpected failure; message requeued", name)
                if not delivery.settled:
                    time.sleep(0.5)
                    delivery.reject(requeue=True)
        return run

    def _dispatcher(self, workers: int, handler: Callable[[Delivery], None],
                    queue: str) -> Callable[[Delivery], None]:
        pool = None
        if not self.inline:
            pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="route")
            self._pools.append(pool)
        self._workers[queue] = found = _Workers(pool, handler)
        return found.dispatch

    def _schedule(self) -> None:
        ticks = 0
        while not self._stop.wait(self.tick_interval):
            ticks += 1
            try:
                self.engine.tick()
                if ticks % 600 == 1:
                    self.engine.purge()
                if self._audit is not None:  # an idle hub's last records get anchored too
                    self._audit.checkpoint_if_due()
            except Exception as exc:  # noqa: BLE001 - the next tick tries again
                log.warning("scheduler: %s", exc)

    def stop(self, timeout: float = 30.0) -> None:
        """Finish what is in flight (up to ``timeout``), then close everything."""
        self._stop.set()
        with contextlib.suppress(Exception):
            self.broker.stop(timeout)
        for pool in self._pools:
            pool.shutdown(wait=True)
        self._pools.clear()
        if self._scheduler is not None:
            self._scheduler.join(timeout=5)
            self._scheduler = None
        self._close()
        self._started = False

    def close(self) -> None:
        """Release the broker, store and connectors of a hub that was not started
        (the CLI's one-shot commands). Never raises."""
        self._close()

    def _close(self) -> None:
        if self._audit is not None:
            try:  # the closing checkpoint: this writer stopped cleanly
                self._audit.close()
            except Exception as exc:  # noqa: BLE001 - closing goes on; verify will say so
                log.warning("audit log: no closing checkpoint: %s", exc)
        for connector in self.connectors.values():
            with contextlib.suppress(Exception):
                connector.close()
        with contextlib.suppress(Exception):
            self.broker.close()
        with contextlib.suppress(Exception):
            self.engine.close()
        with contextlib.suppress(Exception):
            self.store.close()

    def kill(self) -> None:
        """Stop at once, acknowledging nothing more (what was in flight is redelivered).
        Never raises."""
        with contextlib.suppress(Exception):
            self._stop.set()
            self.broker.kill()
            for pool in self._pools:
                pool.shutdown(wait=False, cancel_futures=True)
            self._pools.clear()
            self.engine.close()
            self.store.close()
        self._started = False

    # -- readiness (``/readyz``)
    def readiness(self, timeout: float = 2.0) -> list[Part]:
        """Whether the store, the broker and the route workers answer now."""
        return [probe("store", lambda: self.store.ping(timeout)),
                probe("broker", lambda: self.broker.ping(timeout)),
                probe("workers", self._workers_answer)]

    def _workers_answer(self) -> str | None:
        if not self._started:
            return _("the route workers are not running")
        if self._scheduler is not None and not self._scheduler.is_alive():
            return _("the scheduler (parked messages, await timeouts) has stopped")
        return None

    def serve_forever(self, ready: Callable[[], None] | None = None) -> None:
        """Start, then block until SIGTERM or SIGINT; then stop gracefully."""
        done = threading.Event()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_a: done.set())
        self.start()
        if ready is not None:
            ready()
        try:
            while not done.wait(0.5):
                pass
        finally:
            self.stop()

    run_worker = serve_forever

    # -- reconfiguring (``hub reload``, app.reload): one route or connector at a time
    def pause_route(self, name: str) -> None:
        """Stop taking the messages of route ``name``: its queue's consumer is
        cancelled and what still reaches it goes back to the queue, while the
        messages in flight go on (``drained`` waits for them). The other routes
        are not touched."""
        route = self._route(name)
        if route.sync or not self._started:
            return
        self.broker.cancel(route.queue)
        workers = self._workers.get(route.queue)
        if workers is not None:
            workers.close()

    def drained(self, name: str, timeout: float) -> bool:
        """Wait up to ``timeout`` s until the messages in flight of the paused route
        ``name`` are settled (a request/reply route: its runs under way); False if
        some still are."""
        route = self._route(name)
        if route.sync:
            return self.sync_drained([route], timeout)
        workers = self._workers.get(route.queue)
        return workers is None or workers.idle(timeout)

    def resume_route(self, name: str) -> None:
        """Take the messages of the paused route ``name`` again, with the same route
        and workers (a reload given up)."""
        route = self._route(name)
        workers = self._workers.get(route.queue)
        if route.sync or workers is None:
            return
        workers.reopen()
        self.broker.consume({route.queue: workers.dispatch}, {route.queue: self._prefetch(route)})

    def reconfigure(self, config: Mapping[str, Any], *, routes: Mapping[str, Route | None],
                    connectors: Mapping[str, Any | None]) -> dict[str, Any]:
        """Put the given routes and connectors in place of those of the same name
        (None: removed), in one step: a message or request starting after this sees
        only the new set. Routes being replaced or removed should be paused and
        drained first, then started (``start_route``) or retired (``retire_route``).
        Returns the connectors replaced or removed, open still: close them once
        nothing runs that may call them."""
        table = dict(self.routes)
        for name, route in routes.items():
            if route is None:
                table.pop(name, None)
            else:
                table[name] = route
        found = dict(self.connectors)
        old = {name: found[name] for name in connectors if name in found}
        for name, connector in connectors.items():
            if connector is None:
                found.pop(name, None)
            else:
                found[name] = connector
        # Whole tables swapped, never edited in place: the scheduler and the
        # request threads may be walking the old ones.
        self.routes = self.engine.routes = table
        self.connectors = self.engine.connectors = found
        self.config = config
        return old

    def start_route(self, name: str) -> None:
        """Consume the queue of route ``name`` (added or replaced by a reload) with
        workers of its own; the workers of the route it replaced, drained by then,
        are shut down."""
        route = self._route(name)
        if route.sync or not self._started:
            return
        self.broker.declare_queue(route.queue, route.patterns, ordered=route.concurrency == 1)
        self.retire_route(route.queue)
        handler = self._route_dispatcher(route)
        self.broker.consume({route.queue: handler}, {route.queue: self._prefetch(route)})

    def retire_route(self, queue: str) -> None:
        """Shut down the workers of ``queue``, paused and drained (a route removed or
        replaced). The queue and its bindings stay: its messages wait there."""
        self.broker.cancel(queue)
        workers = self._workers.pop(queue, None)
        if workers is not None and workers.pool is not None:
            workers.pool.shutdown(wait=False)
            with contextlib.suppress(ValueError):
                self._pools.remove(workers.pool)

    def refresh_await(self) -> None:
        """Bind the await queue to what the routes wait for now, and consume it if
        no route waited for anything before."""
        awaited = self.awaited_types()
        if not awaited:
            return
        queue = self.engine.await_queue
        self.broker.declare_queue(queue, sorted(awaited))
        if self._started and queue not in self._workers:
            handler = self._dispatcher(2, self._safe("await", self.engine.handle_awaited), queue)
            self.broker.consume({queue: handler}, {queue: self.prefetch or 4})

    def sync_drained(self, routes: Iterable[Route], timeout: float) -> bool:
        """Wait up to ``timeout`` s until no request/reply run of ``routes`` (these
        very route objects) is under way; False if one still is."""
        keys = [id(route) for route in routes]
        deadline = time.monotonic() + timeout
        with self._sync_done:
            while any(self._sync_busy.get(key) for key in keys):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._sync_done.wait(left)
        return True

    # -- in-memory driving (tests)
    def run_until_idle(self, max_deliveries: int = 100_000) -> int:
        """Deliver until every queue is empty (in-memory broker, inline mode)."""
        if not isinstance(self.broker, InMemoryBroker):
            raise HubError(_("run_until_idle needs the in-memory broker"))
        if not self._started:
            self.start()
        count = 0
        while count < max_deliveries and self.broker.deliver_one():
            count += 1
        return count

    def tick(self, now: float | None = None) -> dict[str, int]:
        """One scheduler pass (parked messages, await deadlines)."""
        return self.engine.tick(now)

    # -- sending
    def publish(self, envelope: Envelope) -> None:
        """Publish ``envelope`` by its type (confirmed before this returns)."""
        self.declare()
        self.engine.publish(_in_trace(envelope))

    def send(self, type_: str, body: Mapping[str, Any], tenant: str | None = None,
             business_no: str | None = None, headers: Mapping[str, str] | None = None,
             source: str = "cli") -> Envelope:
        """Wrap ``body`` in an envelope of ``type_`` and publish it."""
        bno = business_no if business_no is not None else str(body.get("business_no") or "")
        env = Envelope(type=type_, tenant=tenant or str(body.get("tenant") or self.tenant),
                       body=dict(body), business_no=bno, source=source,
                       headers=dict(headers or {}))
        self.publish(env)
        return env

    def submit(self, route_name: str, envelope: Envelope) -> None:
        """Queue ``envelope`` for one route (endpoint routes without ``reply``)."""
        route = self._route(route_name, envelope.tenant)
        if route.sync:
            raise RouteError(_("route '{name}' answers synchronously; use run_sync",
                               name=route_name), route=route_name)
        self.declare()
        self.engine.publish(_in_trace(envelope), route.queue)

    def run_sync(self, route_name: str, envelope: Envelope) -> Envelope:
        """Run an endpoint route in this thread and return its result (see Engine.run_sync)."""
        key = id(self._route(route_name, envelope.tenant))
        self.declare()
        # Counted, so that a reload closes a connector only once the runs of the
        # route it replaced are over (sync_drained).
        with self._sync_done:
            self._sync_busy[key] = self._sync_busy.get(key, 0) + 1
        try:
            return self.engine.run_sync(route_name, _in_trace(envelope))
        finally:
            with self._sync_done:
                left = self._sync_busy.pop(key) - 1
                if left:
                    self._sync_busy[key] = left
                else:
                    self._sync_done.notify_all()

    def endpoints(self) -> list[dict[str, Any]]:
        """Inbound HTTP endpoints of ``from: {endpoint: …}`` routes, for the web layer."""
        # A tenant's own endpoint route answers the shared route's endpoint (run_sync
        # picks it by the request's tenant): the API lists each endpoint once.
        return [{"route": r.name, **(r.endpoint or {})} for r in self.routes.values()
                if r.endpoint is not None and not r.tenant]

    def shares_store(self) -> bool:
        """Whether other processes or hubs may open this hub's store (HubPort)."""
        return not in_memory(self.store.url)

    def remember_nonce(self, digest: str, expires_at: float, now: float) -> bool:
        """Record a signed request's nonce for the web layer, in the store every
        process serving this hub shares; False for a replay (see Store.remember_nonce)."""
        return self.store.remember_nonce(digest, expires_at, now)

    def request_records(self) -> Store:
        """The web layer's idempotency records live in the store, like the nonces."""
        return self.store

    def record_hops(self, envelope: Envelope, hops: Sequence[Hop]) -> bool:
        """Hops a peer hub reported for the case of ``envelope`` into this hub's trace
        (HubPort, ``web.federation``), once per report id: a processed record keyed
        like a route's, so a report sent again writes nothing and answers False."""
        return self.store.finish(Finish(
            message_id=envelope.id, route=envelope.type, outcome="recorded",
            tenant=envelope.tenant, business_no=envelope.business_no, type=envelope.type,
            hops=list(hops)))

    def audit(self, event: str, **fields: Any) -> None:
        """Append one record to the hub's audit log (``core.audit``): ``audit.jsonl``
        in the data folder, HMAC-chained under the audit key (``core.sealing``),
        shared safely by every process and hub writing there.
        Callers pass no unmasked personal data."""
        object_id = str(fields.get("id") or fields.get("business_no") or "")
        self.audit_log().record(event, object_id, **fields)

    def audit_log(self) -> Any:
        """The hub's ``core.audit.AuditLog``, opened on first use."""
        with self._lock:
            if self._audit is None:
                from bdchub.core.audit import AuditLog, rotation_from

                self._audit = AuditLog(data_dir(self.config) / AUDIT_FILE,
                                       key=self.audit_key(),
                                       rotation=rotation_from(self.config))
            return self._audit

    def audit_key(self) -> bytes:
        """The audit chain's key: ``BDCHUB_AUDIT_KEY``, else derived from the store's
        data key (``core.sealing.audit_key``)."""
        return chain_key(self.store.sealer)

    def _route(self, name: str, tenant: str = "") -> Route:
        route = self.engine.route_for(name, tenant) if tenant else self.routes.get(name)
        if route is None:
            raise RouteError(_("no route named '{name}'", name=name), route=name)
        return route

    # -- ops: trace, dead letters, progress
    def trace(self, business_no: str, tenant: str | None = None) -> list[dict[str, Any]]:
        """Every step every message of ``business_no`` went through, in time order."""
        return self.store.trace(business_no, tenant)

    def dlq_list(self, route: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Dead letters without their messages; ID and phone numbers in the errors masked."""
        rows = self.store.dead_letters(route=route, limit=limit)
        return [{**{k: v for k, v in r.items() if k != "envelope"},
                 "last_error": self.masking.text(r["last_error"])} for r in rows]

    def dlq_show(self, dl_id: str, masked: bool = True) -> dict[str, Any] | None:
        row = self.store.dead_letter(dl_id)
        if row is None:
            return None
        if masked:  # an error may quote the value it refused
            row = {**row, "last_error": self.masking.text(row["last_error"])}
        try:
            envelope: Any = json.loads(row["envelope"])
            if masked and isinstance(envelope, dict):
                envelope["body"] = self.masking(envelope.get("body"))
        except ValueError:
            envelope = row["envelope"]
        return {**row, "envelope": envelope}

    def dlq_replay(self, dl_id: str, *, from_start: bool = False) -> list[str]:
        """Republish dead letters (one id, an id prefix, or ``all``) to their routes.
        Returns the ids of the republished messages (see ``dlq_replays``)."""
        return [r["id"] for r in self.dlq_replays(dl_id, from_start=from_start)]

    def dlq_replays(self, dl_id: str, *, from_start: bool = False) -> list[dict[str, Any]]:
        """Republish dead letters (one id, an id prefix, or ``all``) to their routes:
        each resumes at the step that failed, with the message as it was there, so
        the steps before it are not done again; ``from_start`` runs the whole route
        over the message as received (as does a dead letter kept without its state).
        Calls made again carry the original's idempotency keys either way.
        Returns ``{"id", "dead_letter", "resumed_at"}`` per replay (``resumed_at``:
        the step, or None from the start)."""
        rows = (self.store.dead_letters(limit=10_000) if dl_id == "all"
                else [r for r in [self.store.dead_letter(dl_id)] if r is not None])
        if not rows and dl_id != "all":
            raise HubError(_("no dead letter '{id}'", id=dl_id))
        self.declare()
        out: list[dict[str, Any]] = []
        for row in rows:
            if row["status"] != "dead":
                continue
            route = self.routes.get(row["route"])
            if route is None or route.sync:
                raise HubError(_("dead letter {id}: route '{route}' does not exist any more",
                                 id=row["id"], route=row["route"]))
            if row["reason"] == "malformed":
                raise HubError(_("dead letter {id} is not a valid message and cannot be "
                                 "replayed; drop it", id=row["id"]))
            state = None if from_start else self.store.dead_letter_state(row["id"])
            env = Envelope.from_json(state or row["envelope"])
            count = int(row["replay_count"]) + 1
            headers = {k: v for k, v in env.headers.items() if k != H_PARK_COUNT}
            headers.update({H_ORIGIN: row["origin_id"], H_REPLAY: str(count)})
            # Same id for the same replay count: a replay repeated after a crash is absorbed.
            replay = env.evolve(id=derive_id(row["message_id"], row["route"], "replay", count),
                                headers=headers, attempt=env.attempt + 1)
            self.engine.publish(replay, route.queue)
            self.store.mark_replayed(row["id"], self.engine.clock())
            out.append({"id": replay.id, "dead_letter": row["id"],
                        "resumed_at": row["step"] if state else None})
        return out

    def dlq_drop(self, dl_id: str) -> bool:
        row = self.store.dead_letter(dl_id)
        return bool(row) and self.store.drop_dead_letter(row["id"])

    def in_flight(self) -> dict[str, int]:
        """Messages each route of this process holds now, by route name: deliveries
        handed to its workers (waiting for a thread or running) and request/reply
        runs under way (``hub status``, through ``app.status``)."""
        by_queue = {queue: workers.busy for queue, workers in list(self._workers.items())}
        return {name: by_queue.get(route.queue, 0) + self._sync_busy.get(id(route), 0)
                for name, route in self.routes.items()}

    def parked_list(self, limit: int = 100) -> list[dict[str, Any]]:
        return [{k: v for k, v in r.items() if k != "envelope"}
                for r in self.store.parked_list(limit)]

    def progress_by_business_no(self, tenant: str, business_no: str, *,
                                client: str | None = None,
                                channel: str | None = None) -> dict[str, Any] | None:
        """Progress of one application of ``tenant`` (masked), or None; with ``client``
        (``channel``) only one that client (a client of that channel) submitted."""
        row = self.store.progress(tenant, business_no, client=client, channel=channel)
        if row is None:
            return None
        return answer(row, self.store.trace(business_no, tenant))

    def notices(self, tenant: str, business_no: str, *, client: str | None = None,
                channel: str | None = None) -> list[dict[str, Any]]:
        """The electronic notices of a case, without their files (HubPort)."""
        return self.store.notices_for(tenant, business_no, client=client, channel=channel)

    def notice(self, tenant: str, business_no: str, notice_id: str, *,
               client: str | None = None, channel: str | None = None) -> dict[str, Any] | None:
        """One notice with its file, base64 (HubPort)."""
        return self.store.notice(tenant, business_no, notice_id, client=client, channel=channel)

    def correction_deadline(self, tenant: str, business_no: str) -> str | None:
        """The last day the case's correction is taken, as its notice said (HubPort)."""
        return self.store.correction_deadline(tenant, business_no)

    def progress_by_applicant(self, tenant: str, id_number: str, *, client: str | None = None,
                              channel: str | None = None) -> list[dict[str, Any]]:
        """Applications of ``tenant`` whose first applicant has ``id_number`` (masked),
        narrowed by ``client`` / ``channel`` as ``progress_by_business_no``."""
        rows: dict[str, dict[str, Any]] = {}
        for key in self.engine.applicant_keys.candidates(tenant, id_number):
            for row in self.store.progress_by_key(tenant, key, client=client, channel=channel):
                rows.setdefault(row["business_no"], row)
        return [answer(r, self.store.trace(r["business_no"], tenant)) for r in rows.values()]


class _Workers:
    """The threads of one queue (no pool: the broker's own thread, inline mode),
    counting the deliveries they hold, so that one route can be paused and drained
    while the others go on."""

    def __init__(self, pool: ThreadPoolExecutor | None, handler: Callable[[Delivery], None]):
        self.pool = pool
        self.handler = handler
        self.busy = 0
        self.open = True
        self._cond = threading.Condition()

    def dispatch(self, delivery: Delivery) -> None:
        with self._cond:
            taken = self.open
            if taken:
                self.busy += 1
        if not taken:  # paused: it waits in its queue for the route that takes over
            delivery.reject(requeue=True)
            return
        if self.pool is None:
            self._run(delivery)
            return
        try:
            self.pool.submit(self._run, delivery)
        except RuntimeError:  # shut down by a stop under way
            self._done()
            delivery.reject(requeue=True)

    def _run(self, delivery: Delivery) -> None:
        try:
            self.handler(delivery)
        finally:
            self._done()

    def _done(self, count: int = 1) -> None:
        with self._cond:
            self.busy -= count
            if not self.busy:
                self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self.open = False

    def reopen(self) -> None:
        with self._cond:
            self.open = True

    def idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True


class _Batches(_Workers):
    """The threads of a route run in batches (``routes.batch``): deliveries wait in
    a list while every thread is busy, and a thread that is done takes all that
    wait (up to ``BATCH_LIMIT``) as its next batch. A delivery that finds a thread
    idle is a batch of its own: batches grow with the load, not by waiting."""

    def __init__(self, pool: ThreadPoolExecutor | None,
                 handler: Callable[[list[Delivery]], None], threads: int):
        super().__init__(pool, handler)  # type: ignore[arg-type]
        self.batch_handler = handler
        self.threads = threads
        self.running = 0  # threads taking batches
        self.waiting: list[Delivery] = []

    def dispatch(self, delivery: Delivery) -> None:
        with self._cond:
            taken = self.open
            start = False
            if taken:
                self.busy += 1
                self.waiting.append(delivery)
                start = self.running < self.threads
                if start:
                    self.running += 1
        if not taken:  # paused: it waits in its queue for the route that takes over
            delivery.reject(requeue=True)
            return
        if not start:
            return
        if self.pool is None:
            self._drain()
            return
        try:
            self.pool.submit(self._drain)
        except RuntimeError:  # shut down by a stop under way
            with self._cond:
                self.running -= 1
                left, self.waiting = self.waiting, []
            self._done(len(left))
            for waiting in left:
                waiting.reject(requeue=True)

    def _drain(self) -> None:
        while True:
            with self._cond:
                batch, self.waiting = self.waiting[:BATCH_LIMIT], self.waiting[BATCH_LIMIT:]
                if not batch:
                    self.running -= 1
                    return
            try:
                self.batch_handler(batch)
            finally:
                self._done(len(batch))


def _build_connector(name: str, block: Mapping[str, Any], config: Mapping[str, Any]) -> Any:
    from bdchub import connectors

    return connectors.build(name, dict(block), base_dir=config.get("__dir__"))
