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

    server = LoopServer(app, "127.0.0.1", 8080, threads=8).start()
    server.url, server.port
    server.close()                     # stop taking connections, finish, close
"""

from __future__ import annotations

import asyncio
import gc
import io
import logging
import socket
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import unquote_to_bytes

import uvicorn

from bdchub.core import greenloop

log = logging.getLogger("bdchub.web")

#: Seconds the server waits for in-flight requests when it stops.
GRACE = 10.0


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
    already listening socket to serve instead of binding ``host:port``."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, *, threads: int = 8,
                 sock: socket.socket | None = None, keep_alive: float = 60.0,
                 connection_limit: int = 1000):
        self.app = app
        self.max_body: int | None = getattr(app, "max_body", None)
        self._inline = getattr(app, "runs_inline", None)
        self.sock = sock if sock is not None else listen(host, port)
        self.host, self.port = self.sock.getsockname()[:2]
        self.executor = ThreadPoolExecutor(max_workers=max(1, threads),
                                           thread_name_prefix=f"web-{self.port}")
        config = uvicorn.Config(
            self._asgi, interface="asgi3", lifespan="off", ws="none", http="httptools",
            loop="none", proxy_headers=False,
            log_config=None, log_level="warning", access_log=False, server_header=False,
            timeout_keep_alive=int(keep_alive), limit_concurrency=connection_limit,
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

    # -- lifecycle ---------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> LoopServer:
        """Serve in a background thread; returns once the server takes connections."""
        # What is loaded by now (config, schemas, routes, libraries) lives as long as
        # the process: out of the collector's sight, a full collection walks only
        # what requests allocate (p99 latency fell from about 45 to 13 ms).
        gc.freeze()
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
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> LoopServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- ASGI -> WSGI -----------------------------------------------------------
    async def _asgi(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        environ, unread = await self._environ(scope, receive)
        if environ is None:
            return  # the client went away before its body was in
        if self._inline is not None and self._inline(environ["REQUEST_METHOD"],
                                                      environ["PATH_INFO"]):
            status, headers, body = await greenloop.run(_call, self.app, environ,
                                                        executor=self.executor)
        else:
            status, headers, body = await asyncio.get_running_loop().run_in_executor(
                self.executor, _call, self.app, environ)
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        if unread:  # a body left unread on the wire: this connection cannot be reused
            raw.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})

    async def _environ(self, scope: dict[str, Any], receive: Any
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
        limit = self.max_body
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


def _call(app: Any, environ: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
    """One WSGI call, answered in full."""
    started: list[Any] = []
    written: list[bytes] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None):
        started[:] = [status, headers]
        return written.append  # WSGI's write(): kept ahead of the returned body

    chunks = app(environ, start_response)
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
