"""The hub's inbound server: one event loop in front of the WSGI application.

uvicorn (with httptools, and uvloop when installed) owns the sockets on one
asyncio loop in a background thread. Each request is read in full there
(bounded by the application's ``max_body``: a larger declared body is not read
at all and the application answers 413), then handed to the application in
one of two ways:

- request/reply routes (``InboundApp.runs_inline``) run on the loop itself, one
  greenlet per request (``core.greenloop``): their outbound HTTP calls wait on
  the loop, so many requests wait on a slow department at once without a
  thread each and without passing the interpreter lock between threads;
- everything else (submissions that publish to the broker, store queries, the
  SOAP endpoint, any plain WSGI application) runs in a pool of ``threads``
  worker threads, as under a threaded server.

Anything a loop request does that blocks (a SQLite write, an AMQP publish, a
SOAP call, the audit log's fsync) goes to the same pool through
``greenloop.blocking``.

No client holds the server by being slow or many (``inbound.limits``, taken
from the application's ``config`` when it has one): a connection whose headers
are not in within ``header_timeout`` seconds of its start (or of its request's
first byte), or whose body is not in within ``body_timeout`` seconds after
them, is closed; headers over ``HEAD_LIMIT`` bytes are answered 431; one
address holds at most ``connections_per_address`` connections and the process
``max_connections`` (the excess is closed as it is accepted); more than
``max_requests`` requests at once are answered 503. A refusal that leaves a
body on the wire is answered, then the rest of the body is read and dropped
(a bounded while) so that the client, still sending, can read the answer
instead of a reset. Each refusal is counted (``bdchub_inbound_rejected_total``
with endpoint ``*``) and audited as ``inbound.rejected`` through the
application's ``hub``, once per address, code and reason a minute: the first at
once, the rest of the minute as one record with their ``count``.

    server = LoopServer(app, "127.0.0.1", 8080, threads=8).start()
    server.url, server.port
    server.close()                     # stop taking connections, finish, close
"""

from __future__ import annotations

import asyncio
import functools
import gc
import io
import ipaddress
import logging
import socket
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

import uvicorn
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.protocols.utils import get_remote_addr

from bdchub.core import greenloop
from bdchub.core.envelope import new_id
from bdchub.core.i18n import _

from .config_schema import LIMITS_SCHEMA
from .http import json_answer

log = logging.getLogger("bdchub.web")

#: Seconds the server waits for in-flight requests when it stops.
GRACE = 10.0
#: Bytes of a request line and headers; httptools itself sets no bound.
HEAD_LIMIT = 64 * 1024
#: Bytes of a refused body read and dropped before the connection is cut anyway.
DISCARD_LIMIT = 64 * 1024 * 1024
#: Seconds of one audit window per address, code and reason.
AUDIT_WINDOW = 60.0
#: Addresses with an open audit window at most; beyond, they share the key ``*``.
AUDIT_ADDRESSES = 10_000
#: Open files kept for what is not a client connection (store, broker, outbound
#: calls, logs) when ``max_connections`` is fitted under the process limit.
FD_RESERVE = 128


@dataclass(frozen=True)
class Limits:
    """``inbound.limits`` (``web.config_schema.LIMITS_SCHEMA``)."""

    header_timeout: float
    body_timeout: float
    connections_per_address: int
    max_connections: int
    max_requests: int

    @classmethod
    def of(cls, block: Mapping[str, Any] | None) -> Limits:
        """The block over the schema's defaults."""
        values = {key: spec["default"] for key, spec in LIMITS_SCHEMA["properties"].items()}
        values.update(block or {})
        return cls(**values)


def address_key(host: str) -> str:
    """What the per-address cap and the audit count under: the IPv4 address, or
    the IPv6 /64 (one subscriber's prefix: an attacker has all of it)."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if ip.version == 6:
        mapped = ip.ipv4_mapped  # type: ignore[union-attr]
        if mapped is not None:
            return str(mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class Reports:
    """Refusals turned into few audit records: the first of an (address, code,
    reason) at once, the others of its window counted into one record when the
    window ends (``flush``); a window that saw none closes the key. ``emit(key,
    count)`` writes one record."""

    def __init__(self, emit: Callable[[tuple[str, str, str], int], None], *,
                 window: float = AUDIT_WINDOW, capacity: int = AUDIT_ADDRESSES,
                 clock: Callable[[], float] = time.monotonic):
        self.emit = emit
        self.window = window
        self.capacity = capacity
        self.clock = clock
        self.open: dict[tuple[str, str, str], list[float]] = {}  # key -> [start, count]

    def note(self, address: str, code: str, reason: str) -> None:
        key = (address, code, reason)
        entry = self.open.get(key)
        if entry is None and len(self.open) >= self.capacity:
            key = ("*", code, reason)  # many addresses at once: one record for them all
            entry = self.open.get(key)
        if entry is not None:
            entry[1] += 1
            return
        self.open[key] = [self.clock(), 0]
        self.emit(key, 1)

    def flush(self, *, every: bool = False) -> None:
        """Write the counts of the windows that ended (``every``: of all of them)."""
        now = self.clock()
        for key, entry in list(self.open.items()):
            if not every and now < entry[0] + self.window:
                continue
            count = int(entry[1])
            if count and not every:
                self.open[key] = [now, 0]  # still coming: the next record in a window
            else:
                del self.open[key]
            if count:
                self.emit(key, count)


class Guard:
    """The limits of one server: connections by address, requests in flight, and
    the record of what was refused. Used on the server's loop only."""

    def __init__(self, limits: Limits, *, hub: Any = None, metrics: Any = None,
                 executor: ThreadPoolExecutor | None = None):
        self.limits = limits
        self.max_connections = limits.max_connections
        self.hub = hub if callable(getattr(hub, "audit", None)) else None
        self.metrics = metrics if callable(getattr(metrics, "reject", None)) else None
        self.executor = executor
        self.by_address: dict[str, int] = {}
        self.connections = 0
        self.in_flight = 0
        self.reports = Reports(self._emit)
        self._status: dict[tuple[str, str], int | None] = {}
        self._queued: dict[Future[None], dict[str, Any]] = {}  # audits the pool has yet to run
        self._ticking = False

    # -- connections -------------------------------------------------------------
    def admit(self, address: str) -> str | None:
        """Count a new connection in; the reason it is refused instead, if it is."""
        if self.connections >= self.max_connections:
            return "max_connections"
        cap = self.limits.connections_per_address
        held = self.by_address.get(address, 0)
        if cap and held >= cap:
            return "connections_per_address"
        self.by_address[address] = held + 1
        self.connections += 1
        return None

    def release(self, address: str) -> None:
        held = self.by_address.get(address, 0) - 1
        if held > 0:
            self.by_address[address] = held
        else:
            self.by_address.pop(address, None)
        self.connections -= 1

    # -- the record ----------------------------------------------------------------
    def refused(self, address: str, code: str, reason: str, status: int | None = None) -> None:
        """One refusal: counted now, audited in few records (``Reports``)."""
        if self.metrics is not None:
            self.metrics.reject("*", code)
        self._status[(code, reason)] = status
        self.reports.note(address, code, reason)
        if not self._ticking and self.reports.open:
            self._ticking = True
            asyncio.get_running_loop().call_later(self.reports.window / 6, self._tick)

    def _tick(self) -> None:
        self.reports.flush()
        if self.reports.open:
            asyncio.get_running_loop().call_later(self.reports.window / 6, self._tick)
        else:
            self._ticking = False

    def flush(self) -> None:
        """Write every pending count now, in this thread (the server has stopped),
        with the audits its pool dropped when it was shut down."""
        self.executor = None
        for future, fields in list(self._queued.items()):
            if future.cancelled():
                self._audit(fields)
        self._queued.clear()
        self.reports.flush(every=True)

    def _emit(self, key: tuple[str, str, str], count: int) -> None:
        address, code, reason = key
        fields = {"status": self._status.get((code, reason)), "code": code, "reason": reason,
                  "remote_addr": address, "count": count}
        log.warning("%s", _("inbound server: refused {count} time(s) from {address}: "
                            "{code} ({reason})", count=count, address=address, code=code,
                            reason=reason))
        if self.hub is None:
            return
        if self.executor is not None:
            try:  # the fsync of the audit log must not stop the loop
                future = self.executor.submit(self._audit, fields)
                self._queued[future] = fields
                future.add_done_callback(self._ran)
                return
            except RuntimeError:  # the pool is shut: the server is stopping
                pass
        self._audit(fields)

    def _ran(self, future: Future[None]) -> None:
        if not future.cancelled():
            self._queued.pop(future, None)

    def _audit(self, fields: dict[str, Any]) -> None:
        try:
            self.hub.audit("inbound.rejected", **fields)
        except Exception:  # noqa: BLE001 - a refusal goes on; ops see the log
            log.exception("audit of a refusal from %s failed", fields["remote_addr"])


def error_answer(status: int, code: str, message: str,
                 extra: list[tuple[str, str]] | None = None) -> tuple[int, list[tuple[str, str]], bytes]:
    """The server's own refusal, in the application's JSON form."""
    return json_answer(status, {"error": {"code": code, "message": message,
                                          "request_id": new_id()}},
                       [*(extra or []), ("Connection", "close")])


class _Transport:
    """A connection's transport as uvicorn sees it: closing lets a client that is
    still sending read the answer first (``GuardedProtocol.close_softly``)."""

    __slots__ = ("_raw", "_protocol")

    def __init__(self, raw: asyncio.Transport, protocol: GuardedProtocol):
        self._raw = raw
        self._protocol = protocol

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)

    def close(self) -> None:
        self._protocol.close_softly()

    def is_closing(self) -> bool:
        return self._raw.is_closing() or self._protocol.lingering


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol held to the server's ``Guard``: connections
    admitted by address, a deadline on every request's headers and body, a
    bound on the headers' size, and a soft close after a refusal."""

    def __init__(self, *args: Any, guard: Guard, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.guard = guard
        self.address: str | None = None  # set once admitted
        self.raw: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.timer_kind = ""
        self.reading = False  # a request has begun and its body is not all in
        self.in_head = False
        self.head_bytes = 0
        self.lingering = False
        self.discarded = 0
        self.lost = False

    # -- connection ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        remote = get_remote_addr(transport)
        address = address_key(remote[0]) if remote else ""
        refused = self.guard.admit(address)
        if refused is not None:
            self.lost = True
            transport.close()
            self.guard.refused(address, "too_many_connections", refused)
            return
        self.address = address
        self.raw = transport
        super().connection_made(_Transport(transport, self))  # type: ignore[arg-type]
        self.in_head = True  # a connection that sends nothing is as slow as one that stalls
        self._arm("header", self.guard.limits.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.address is None:
            return  # refused at accept: uvicorn never saw it
        self._disarm()
        if not self.lost:
            self.lost = True
            self.guard.release(self.address)
        super().connection_lost(exc)

    def shutdown(self) -> None:
        if self.raw is not None and (self.cycle is None or self.cycle.response_complete):
            self._disarm()
            self.raw.close()  # stopping: a half-sent request is not waited for
            return
        super().shutdown()

    def close_softly(self) -> None:
        """Close; but while the client is still sending a request, answer first
        (already written), stop writing, and read and drop the rest for a bounded
        while: closing with unread bytes makes the kernel reset the connection,
        and a client busy sending never reads the answer."""
        raw = self.raw
        if raw is None:
            return
        if self.lost or self.lingering or not self.reading or raw.is_closing():
            raw.close()
            return
        self.lingering = True
        self._arm("linger", self.guard.limits.body_timeout)
        if raw.can_write_eof():
            raw.write_eof()
        raw.resume_reading()  # uvicorn pauses reading while a body waits to be taken

    def data_received(self, data: bytes) -> None:
        if self.lingering:
            self.discarded += len(data)
            if self.discarded > DISCARD_LIMIT and self.raw is not None:
                self.raw.abort()
            return
        super().data_received(data)
        if self.in_head and not self.lingering and self.raw is not None \
                and not self.raw.is_closing():
            self.head_bytes += len(data)
            if self.head_bytes > HEAD_LIMIT:
                self._refuse_head()

    # -- the parser's callbacks --------------------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.reading = True
        if not self.in_head:  # a request on a kept-alive connection: its own deadline
            self.in_head = True
            self.head_bytes = 0
            self._arm("header", self.guard.limits.header_timeout)

    def on_headers_complete(self) -> None:
        self.in_head = False
        self.head_bytes = 0
        self._disarm()
        super().on_headers_complete()

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        # Here, not at the headers: a pipelined request's body is not read (nor
        # its clock running) until the request before it is answered.
        if cycle.more_body:
            self._arm("body", self.guard.limits.body_timeout)
        super()._start_asgi_task(cycle, app)

    def on_message_complete(self) -> None:
        self.reading = False
        if self.timer_kind == "body":
            self._disarm()
        super().on_message_complete()

    # -- deadlines -----------------------------------------------------------------
    def _arm(self, kind: str, seconds: float) -> None:
        self._disarm()
        self.timer_kind = kind
        self.timer = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer, self.timer_kind = None, ""

    def _expired(self) -> None:
        kind, self.timer, self.timer_kind = self.timer_kind, None, ""
        raw = self.raw
        if raw is None or raw.is_closing():
            return
        if kind != "linger":
            self.guard.refused(self.address or "", "slow_client", f"{kind}_timeout")
        if raw.get_write_buffer_size():
            raw.abort()  # a client that does not read must not hold the close either
        else:
            raw.close()

    def _refuse_head(self) -> None:
        self.guard.refused(self.address or "", "header_too_large", "head_limit", 431)
        raw = self.raw
        assert raw is not None
        if self.cycle is not None and not self.cycle.response_complete:
            raw.abort()  # an answer is still being written: no second one in between
            return
        status, headers, body = error_answer(
            431, "header_too_large",
            _("the request line and headers exceed {limit} bytes", limit=HEAD_LIMIT))
        head = "".join(f"{k}: {v}\r\n" for k, v in headers)
        raw.write(STATUS_LINE[status] + f"{head}Content-Length: {len(body)}\r\n\r\n"
                  .encode("latin-1") + body)
        self.close_softly()


class AppSlot:
    """An application that can be replaced while a server out of reach serves it
    (``hub run``'s forked processes each build theirs inside ``web.server.serve``):
    ``slot.app = new`` is ``LoopServer.swap`` for it. Everything else a server
    reads of its application (``max_body``, ``runs_inline``, ``config``, ``hub``,
    ``metrics``) is the current application's; a request is answered by the
    application it found when it began."""

    def __init__(self, app: Any):
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Any:
        return self.app(environ, start_response)

    def __getattr__(self, name: str) -> Any:
        if name == "app":  # not set yet (unpickling, copying): no recursion
            raise AttributeError(name)
        return getattr(self.app, name)


def listen(host: str, port: int, backlog: int = 1024) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``port`` 0: a free one)."""
    family, kind, proto, _name, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class LoopServer:
    """``app`` (a WSGI application) served on its own event loop. ``sock``: an
    already listening socket to serve instead of binding ``host:port``.
    ``limits``: ``inbound.limits`` (default: the application's ``config["limits"]``,
    else the schema's defaults); refusals are audited through ``app.hub`` and
    counted in ``app.metrics`` when the application has them."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, *, threads: int = 8,
                 sock: socket.socket | None = None, keep_alive: float = 60.0,
                 limits: Mapping[str, Any] | None = None):
        self.app = app
        if limits is None:
            config = getattr(app, "config", None)
            limits = config.get("limits") if isinstance(config, Mapping) else None
        self.limits = Limits.of(limits)
        self.sock = sock if sock is not None else listen(host, port)
        self.host, self.port = self.sock.getsockname()[:2]
        self.executor = ThreadPoolExecutor(max_workers=max(1, threads),
                                           thread_name_prefix=f"web-{self.port}")
        self.guard = Guard(self.limits, hub=getattr(app, "hub", None),
                           metrics=getattr(app, "metrics", None), executor=self.executor)
        config = uvicorn.Config(
            self._asgi, interface="asgi3", lifespan="off", ws="none",
            http=functools.partial(GuardedProtocol, guard=self.guard),
            loop="none", proxy_headers=False,
            log_config=None, log_level="warning", access_log=False, server_header=False,
            # uvicorn's own limit counts idle connections as work (slow clients then
            # made every request 503); the guard caps each on its own.
            timeout_keep_alive=int(keep_alive), limit_concurrency=None,
            timeout_graceful_shutdown=int(GRACE))
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None
        # Waited on instead of the thread: on Python 3.11 a signal that interrupts
        # Thread.join can mark a live thread as stopped.
        self._done = threading.Event()
        self._failed: BaseException | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def swap(self, app: Any) -> Any:
        """Serve ``app`` from the next request on (``hub reload``); a request under
        way is answered by the application it began with. Returns the old one.
        The connection limits stay those the server started with."""
        old, self.app = self.app, app
        return old

    # -- lifecycle ---------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> LoopServer:
        """Serve in a background thread; returns once the server takes connections."""
        # What is loaded by now (config, schemas, routes, libraries) lives as long as
        # the process: out of the collector's sight, a full collection walks only
        # what requests allocate (p99 latency fell from about 45 to 13 ms).
        gc.freeze()
        self.guard.max_connections = _fit_open_files(self.limits.max_connections)
        self._thread = threading.Thread(target=self._run, name=f"web-loop-{self.port}",
                                        daemon=True)
        self._thread.start()
        waited = 0.0
        while not self._server.started and not self._done.is_set() and waited < timeout:
            self._done.wait(0.01)
            waited += 0.01
        if not self._server.started:
            self.close()
            raise RuntimeError(f"inbound server on {self.url} did not start: "
                               f"{self._failed or 'timed out'}")
        return self

    def running(self) -> bool:
        return self._thread is not None and not self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the server has stopped (signals still reach the caller); True
        once it has."""
        return self._done.wait(timeout)

    def _run(self) -> None:
        loop = _new_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._server.serve(sockets=[self.sock]))
        except BaseException as exc:  # noqa: BLE001 - reported by start() or close()
            self._failed = exc
            log.exception("inbound server on %s failed", self.url)
        finally:
            from bdchub.connectors.loophttp import close_loop

            try:
                loop.run_until_complete(close_loop(loop))
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()
                self._done.set()

    def close(self) -> None:
        """Stop taking connections, let requests in flight finish (up to ``GRACE``
        seconds), close. Never raises."""
        self._server.should_exit = True
        if self._thread is not None:
            self._done.wait(GRACE + 5)
        self.executor.shutdown(wait=False, cancel_futures=True)
        self._flush()
        try:
            self.sock.close()
        except OSError:
            pass

    def kill(self) -> None:
        """Stop now: connections and requests in flight are cut (what they carried
        is redelivered or retried by its sender). Never raises."""
        self._server.force_exit = True
        self._server.should_exit = True
        if self._thread is not None:
            self._done.wait(5)
        self.executor.shutdown(wait=False, cancel_futures=True)
        self._flush()
        try:
            self.sock.close()
        except OSError:
            pass

    def _flush(self) -> None:
        if self._thread is not None and not self._done.is_set():
            return  # the loop still owns the guard
        try:
            self.guard.flush()
        except Exception:  # noqa: BLE001 - stopping never raises
            log.exception("inbound server on %s: refusals not audited", self.url)

    def open_connections(self, address: str | None = None) -> int:
        """Client connections held open now (from ``address`` only, if given)."""
        if address is None:
            return self.guard.connections
        return self.guard.by_address.get(address_key(address), 0)

    def __enter__(self) -> LoopServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- ASGI -> WSGI -----------------------------------------------------------
    async def _asgi(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        guard = self.guard
        if guard.in_flight >= self.limits.max_requests:
            client = scope.get("client") or ("", 0)
            guard.refused(address_key(str(client[0])), "unavailable", "max_requests", 503)
            await _send(send, *error_answer(
                503, "unavailable", _("the hub is busy; nothing was accepted, try again later"),
                [("Retry-After", "5")]))
            return
        guard.in_flight += 1
        try:
            await self._respond(scope, receive, send)
        finally:
            guard.in_flight -= 1

    async def _respond(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        app = self.app  # read once: a reload's swap never splits one request
        if isinstance(app, AppSlot):
            app = app.app
        environ, unread = await self._environ(scope, receive, getattr(app, "max_body", None))
        if environ is None:
            return  # the client went away before its body was in
        inline = getattr(app, "runs_inline", None)
        if inline is not None and inline(environ["REQUEST_METHOD"], environ["PATH_INFO"]):
            status, headers, body = await greenloop.run(_call, app, environ,
                                                        executor=self.executor)
        else:
            status, headers, body = await asyncio.get_running_loop().run_in_executor(
                self.executor, _call, app, environ)
        if unread:  # a body left unread on the wire: this connection cannot be reused
            headers = [*headers, ("Connection", "close")]
        if isinstance(body, bytes):
            await _send(send, status, headers, body)
        else:
            await self._stream(send, status, headers, body)

    async def _stream(self, send: Any, status: int, headers: list[tuple[str, str]],
                      chunks: Iterable[bytes]) -> None:
        """An answer the application streams (a generator: an audit export of any
        size): each chunk read in a worker thread and sent as it comes, chunked. A
        failure midway leaves the answer unterminated, so the client sees it cut,
        never a short file that looks whole."""
        loop = asyncio.get_running_loop()
        parts = iter(chunks)
        try:
            raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
            await send({"type": "http.response.start", "status": status, "headers": raw})
            while True:
                chunk = await loop.run_in_executor(self.executor, next, parts, None)
                if chunk is None:
                    break
                if chunk:
                    await send({"type": "http.response.body", "body": bytes(chunk),
                                "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                await loop.run_in_executor(self.executor, close)

    async def _environ(self, scope: dict[str, Any], receive: Any, limit: int | None
                       ) -> tuple[dict[str, Any] | None, bool]:
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
        query: bytes = scope.get("query_string") or b""
        server = scope.get("server") or (self.host, self.port)
        client = scope.get("client") or ("", 0)
        environ: dict[str, Any] = {
            "REQUEST_METHOD": scope["method"],
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote_to_bytes(raw_path).decode("latin-1"),
            "QUERY_STRING": query.decode("latin-1"),
            "REQUEST_URI": (raw_path + (b"?" + query if query else b"")).decode("latin-1"),
            "SERVER_NAME": str(server[0]), "SERVER_PORT": str(server[1]),
            "REMOTE_ADDR": str(client[0]), "REMOTE_PORT": str(client[1]),
            "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
            "wsgi.version": (1, 0), "wsgi.url_scheme": scope.get("scheme", "http"),
            "wsgi.errors": sys.stderr, "wsgi.multithread": True,
            "wsgi.multiprocess": False, "wsgi.run_once": False,
        }
        for name, value in scope["headers"]:
            key = name.decode("latin-1").upper().replace("-", "_")
            if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                key = "HTTP_" + key
            text = value.decode("latin-1")
            environ[key] = f"{environ[key]},{text}" if key in environ else text
        length = environ.get("CONTENT_LENGTH")
        declared: int | None = None
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                declared = None
        if declared is not None and limit is not None and declared > limit:
            environ["wsgi.input"] = io.BytesIO(b"")  # refused from the header alone
            return environ, True
        if length is None:
            environ["wsgi.input_terminated"] = True
        chunks: list[bytes] = []
        total, more, unread = 0, True, False
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None, False
            chunk = message.get("body", b"")
            if chunk:
                chunks.append(chunk)
                total += len(chunk)
            more = message.get("more_body", False)
            if more and limit is not None and total > limit:
                unread = True  # enough to know it is too large; the rest stays unread
                break
        environ["wsgi.input"] = io.BytesIO(b"".join(chunks))
        return environ, unread


async def _send(send: Any, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def _fit_open_files(wanted: int) -> int:
    """Connections this process can hold: ``wanted`` if the open-file limit allows
    it with ``FD_RESERVE`` to spare (raising the soft limit toward the hard one,
    as servers do), else fewer: a refusal at the cap is cleaner than failing
    accepts, which also stop the health check."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return wanted
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = wanted + FD_RESERVE
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        if target > soft:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
                soft = target
            except (ValueError, OSError):
                pass
    if soft == resource.RLIM_INFINITY or soft >= need:
        return wanted
    fitted = max(16, soft - FD_RESERVE)
    log.warning("%s", _("inbound server: {files} open files allowed, so at most {fitted} "
                        "connections, not {wanted}", files=soft, fitted=fitted, wanted=wanted))
    return fitted


def _call(app: Any, environ: dict[str, Any]
          ) -> tuple[int, list[tuple[str, str]], bytes | Iterator[bytes]]:
    """One WSGI call: answered in full, or the application's generator (an answer
    it streams) for ``LoopServer._stream`` to send as it comes."""
    started: list[Any] = []
    written: list[bytes] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None):
        started[:] = [status, headers]
        return written.append  # WSGI's write(): kept ahead of the returned body

    chunks = app(environ, start_response)
    if isinstance(chunks, Generator) and not written:
        return int(str(started[0]).split(" ", 1)[0]), list(started[1]), chunks
    try:
        body = b"".join([*written, *chunks])
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    return int(str(started[0]).split(" ", 1)[0]), list(started[1]), body


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def start(app: Any, host: str = "127.0.0.1", port: int = 0, threads: int = 8,
          **options: Any) -> LoopServer:
    """Serve ``app`` in the background; ``port=0`` takes a free one."""
    return LoopServer(app, host, port, threads=threads, **options).start()
