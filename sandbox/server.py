"""The HTTP machinery every simulated department shares.

One ``ThreadingHTTPServer`` per endpoint, HTTP/1.1 with keep-alive (every
answer carries Content-Length and goes out in one write, with TCP_NODELAY, so
pooled client connections are reused without Nagle stalls).

A request to an endpoint goes through, in order:

1. ``/_sandbox/...`` control paths: never faulted (except health during an
   outage), never recorded.
2. outage: while ``outage_for`` runs, 503 (``outage_mode="503"``, with
   Retry-After) or the connection is reset without an answer
   (``outage_mode="reset"``). WSDL/XSD downloads are affected too.
3. WSDL/XSD downloads (SOAP endpoints): served, nothing else applies.
4. the request is identified (operation, parsed body) and recorded in the
   received log, then: latency, timeout (hold without answer), injected
   error (seeded), malicious XML, the operation itself, malformed answer.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import random
import selectors
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from bdchub.core.i18n import _

if TYPE_CHECKING:  # pragma: no cover
    from .sandbox import Sandbox

MAX_BODY = 16 * 1024 * 1024
RECORDED_TEXT_LIMIT = 64 * 1024


class HttpError(Exception):
    """An answer other than success; endpoints raise it from handlers."""

    def __init__(self, status: int, code: str, message: str, *,
                 headers: dict[str, str] | None = None, extra: dict[str, Any] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})


@dataclass
class Request:
    method: str
    target: str  # path and query exactly as sent
    headers: Any  # email.message.Message: case-insensitive get()
    body: bytes
    client: tuple[str, int] = ("", 0)
    path: str = ""
    query: dict[str, str] = field(default_factory=dict)
    _json: Any = None
    _json_state: int = 0  # 0 not parsed, 1 ok, 2 invalid

    def __post_init__(self) -> None:
        parts = urlsplit(self.target)
        self.path = parts.path or "/"
        self.raw_query = parts.query
        self.query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}

    def header(self, name: str, default: str | None = None) -> str | None:
        value = self.headers.get(name)
        return default if value is None else value

    def header_dict(self) -> dict[str, str]:
        return {k: v for k, v in self.headers.items()}

    def json(self) -> Any:
        """The JSON body; HTTP 400 when it is missing or not JSON."""
        if self._json_state == 0:
            try:
                self._json = json.loads(self.body.decode("utf-8")) if self.body else None
                self._json_state = 1 if self.body else 2
            except (UnicodeDecodeError, ValueError):
                self._json_state = 2
        if self._json_state != 1:
            raise HttpError(400, "BAD_REQUEST", _("the request body is not valid JSON"))
        return self._json

    def json_object(self) -> dict[str, Any]:
        data = self.json()
        if not isinstance(data, dict):
            raise HttpError(400, "BAD_REQUEST", _("the request body must be a JSON object"))
        return data

    def recorded_body(self) -> Any:
        if not self.body:
            return dict(self.query) if self.query else None
        with contextlib.suppress(HttpError):
            return self.json()
        return self.body[:RECORDED_TEXT_LIMIT].decode("utf-8", errors="replace")


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    action: str = ""  # "", "hold", "reset", "short"
    hold_for: float = 0.0
    close: bool = False

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
        return cls(status=status, body=body, headers=dict(headers or {}))


def ok(data: Any = None, status: int = 200) -> Response:
    return Response.json({"code": "0", "message": "ok", "data": data}, status)


@dataclass
class Call:
    """An identified request: what the received log records, and how to answer it."""

    operation: str
    body: Any
    run: Callable[[], Response]


# --------------------------------------------------------------------------- faults

FAULT_DEFAULTS: dict[str, Any] = {
    "latency": 0.0, "error_rate": 0.0, "error_status": 503, "timeout": False,
    "outage_for": 0.0, "outage_mode": "503", "malformed": False, "retry_after": None,
    "soap_fault": None, "malicious_xml": None,
}
MALFORMED_MODES = ("truncated", "garbage", "short_read")


@dataclass
class FaultPlan:
    latency: float = 0.0
    hold: float = 0.0
    error: bool = False
    status: int = 503
    retry_after: Any = None
    soap_fault: str | None = None
    malicious_xml: str | None = None
    malformed: str | None = None


class Faults:
    """Fault knobs of one endpoint. ``set`` merges into the current settings and
    reseeds the error RNG, so a test sees the same error sequence every run;
    ``clear`` goes back to no faults."""

    def __init__(self, endpoint: Endpoint):
        self._endpoint = endpoint
        self._lock = threading.Lock()
        self._settings = dict(FAULT_DEFAULTS)
        self._outage_until = 0.0
        self._rng = self._new_rng()

    def _new_rng(self) -> random.Random:
        # The same seed after every set/clear: a test sees the same error
        # sequence whatever ran before it.
        return random.Random(f"{self._endpoint.sandbox.seed}:{self._endpoint.name}:faults")

    def set(self, **settings: Any) -> dict[str, Any]:
        """Change some knobs (see ``FAULT_DEFAULTS``); the next request sees them."""
        clean = self._validate(settings)
        with self._lock:
            self._settings.update(clean)
            if "outage_for" in clean:
                self._outage_until = time.monotonic() + clean["outage_for"]
            self._rng = self._new_rng()
        return self.settings()

    def clear(self) -> dict[str, Any]:
        with self._lock:
            self._settings = dict(FAULT_DEFAULTS)
            self._outage_until = 0.0
            self._rng = self._new_rng()
        return self.settings()

    def settings(self) -> dict[str, Any]:
        with self._lock:
            out = dict(self._settings)
            out["outage_remaining"] = round(max(0.0, self._outage_until - time.monotonic()), 3)
        return out

    def outage(self) -> tuple[float, str]:
        """Seconds of outage left (0 when none) and the mode."""
        with self._lock:
            left = self._outage_until - time.monotonic()
            return (left if left > 0 else 0.0), self._settings["outage_mode"]

    def plan(self) -> FaultPlan:
        with self._lock:
            s = self._settings
            soap = self._endpoint.kind == "soap"
            rate = s["error_rate"]
            if soap and s["soap_fault"] and rate == 0.0:
                rate = 1.0  # soap_fault alone: every operation answers that fault
            error = rate > 0 and self._rng.random() < rate
            hold = 0.0
            if s["timeout"] is True:
                hold = self._endpoint.sandbox.timeout_max
            elif s["timeout"]:
                hold = min(float(s["timeout"]), self._endpoint.sandbox.timeout_max)
            malformed = s["malformed"]
            if malformed is True:
                malformed = "truncated"
            return FaultPlan(latency=s["latency"], hold=hold, error=error,
                             status=s["error_status"], retry_after=s["retry_after"],
                             soap_fault=s["soap_fault"], malicious_xml=s["malicious_xml"],
                             malformed=malformed or None)

    def _validate(self, settings: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(settings) - set(FAULT_DEFAULTS))
        if unknown:
            raise ValueError(_("unknown fault setting {names}; known: {known}",
                               names=", ".join(unknown), known=", ".join(FAULT_DEFAULTS)))
        out: dict[str, Any] = {}
        for key, value in settings.items():
            if value is None and key in ("retry_after", "soap_fault", "malicious_xml"):
                out[key] = None
                continue
            try:
                if key in ("latency", "outage_for"):
                    value = float(value)
                    if value < 0 or math.isnan(value):
                        raise ValueError
                elif key == "error_rate":
                    value = float(value)
                    if not 0.0 <= value <= 1.0:
                        raise ValueError
                elif key == "error_status":
                    value = int(value)
                    if not 400 <= value <= 599:
                        raise ValueError
                elif key == "timeout":
                    if not isinstance(value, bool):
                        value = float(value)
                        if value < 0:
                            raise ValueError
                elif key == "outage_mode":
                    if value not in ("503", "reset"):
                        raise ValueError
                elif key == "malformed":
                    if not isinstance(value, bool) and value not in MALFORMED_MODES:
                        raise ValueError
                elif key == "retry_after":
                    value = str(value) if not isinstance(value, int | float) else value
                elif key == "soap_fault":
                    if value not in ("client", "server", "http"):
                        raise ValueError
                    if self._endpoint.kind != "soap":
                        raise ValueError
                elif key == "malicious_xml":
                    if value not in ("billion_laughs", "external_entity"):
                        raise ValueError
                    if self._endpoint.kind != "soap":
                        raise ValueError
            except (TypeError, ValueError):
                raise ValueError(_("bad value {value!r} for fault setting {key} on {name}",
                                   value=value, key=key, name=self._endpoint.name)) from None
            out[key] = value
        return out


# --------------------------------------------------------------------------- endpoint

class Endpoint:
    """One simulated department. Subclasses implement ``identify``."""

    kind = "rest"
    protocol = "REST/JSON"

    def __init__(self, sandbox: Sandbox, name: str):
        self.sandbox = sandbox
        self.name = name
        self.lock = threading.RLock()
        self.faults = Faults(self)
        self._received: deque[dict[str, Any]] = deque(maxlen=sandbox.received_limit)
        self._received_lock = threading.Lock()
        self._received_seq = 0
        self.server: _Server | None = None
        self.thread: threading.Thread | None = None
        self.port: int = 0

    # -- life cycle
    @property
    def url(self) -> str:
        host = self.sandbox.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def bind(self, port: int) -> None:
        server = _Server((self.sandbox.host, port), _Handler, self)
        self.server = server
        self.port = server.server_address[1]
        self.thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                       name=f"sandbox-{self.name}", daemon=True)
        self.thread.start()

    def close(self) -> None:
        server, self.server = self.server, None
        if server is None:
            return
        with contextlib.suppress(Exception):
            server.shutdown()
        with contextlib.suppress(Exception):
            server.server_close()
        server.drop_connections()
        if self.thread is not None:
            self.thread.join(timeout=5)

    # -- received log
    def record(self, req: Request, operation: str, body: Any) -> dict[str, Any]:
        with self._received_lock:
            self._received_seq += 1
            entry = {"seq": self._received_seq, "time": time.time(), "method": req.method,
                     "path": req.target, "operation": operation, "body": body,
                     "headers": req.header_dict(), "fault": None, "status": None}
            self._received.append(entry)
        return entry

    def received(self) -> list[dict[str, Any]]:
        with self._received_lock:
            return [dict(e) for e in self._received]

    def clear_received(self) -> None:
        with self._received_lock:
            self._received.clear()

    # -- to be provided by subclasses
    def identify(self, req: Request) -> Call:
        raise NotImplementedError

    def meta(self, req: Request) -> Response | None:
        """Documents served outside the fault pipeline (WSDL, XSD)."""
        return None

    def control(self, action: str, req: Request) -> Response | None:
        """Endpoint-specific ``POST /_sandbox/<action>``; None when unknown."""
        return None

    def error_response(self, req: Request, status: int, code: str, message: str,
                       headers: dict[str, str] | None = None, soap_fault: str | None = None,
                       extra: dict[str, Any] | None = None) -> Response:
        return Response.json({"code": code, "message": message, **(extra or {})}, status, headers)

    def malicious(self, kind: str) -> Response:
        raise NotImplementedError

    def corrupt(self, resp: Response, mode: str) -> Response:
        rng = random.Random(f"{self.sandbox.seed}:{self.name}:garbage:{len(resp.body)}")
        if mode == "garbage":
            junk = bytes(rng.randrange(256) for _ in range(64)) + b"<<<{{{"
            return Response(status=resp.status, body=junk, content_type=resp.content_type,
                            headers=resp.headers)
        cut = max(1, len(resp.body) // 2)
        if mode == "short_read":
            return Response(status=resp.status, body=resp.body[:cut],
                            content_type=resp.content_type, headers=resp.headers,
                            action="short", hold_for=len(resp.body))
        return Response(status=resp.status, body=resp.body[:cut], content_type=resp.content_type,
                        headers=resp.headers)

    # -- the pipeline
    def serve(self, req: Request, conn: _Handler) -> Response:
        if req.path.startswith("/_sandbox/"):
            return self._control(req)
        left, mode = self.faults.outage()
        if left > 0:
            if mode == "reset":
                return Response(action="reset")
            configured = self.faults.settings()["retry_after"]
            retry = configured if configured is not None else math.ceil(left)
            return self.error_response(req, 503, "UNAVAILABLE", _("{name} is temporarily unavailable",
                                                               name=self.name),
                                       {"Retry-After": str(retry)}, soap_fault="http")
        meta = self.meta(req)
        if meta is not None:
            return meta
        try:
            call = self.identify(req)
        except HttpError as exc:
            entry = self.record(req, "unknown", req.recorded_body())
            entry["status"] = exc.status
            return self.error_response(req, exc.status, exc.code, exc.message, exc.headers,
                                       extra=exc.extra)
        entry = self.record(req, call.operation, call.body)
        plan = self.faults.plan()
        if plan.latency > 0 and self.sandbox.stopping.wait(plan.latency):
            return Response(action="reset")
        if plan.hold > 0:
            entry["fault"] = "timeout"
            return Response(action="hold", hold_for=plan.hold)
        if plan.error:
            entry["fault"] = "error"
            headers = {}
            if plan.retry_after is not None:
                headers["Retry-After"] = str(plan.retry_after)
            resp = self.error_response(req, plan.status, "INJECTED_FAULT",
                                       _("injected fault on {name}", name=self.name), headers,
                                       soap_fault=plan.soap_fault or "server")
            entry["status"] = resp.status
            return resp
        if plan.malicious_xml:
            entry["fault"] = plan.malicious_xml
            resp = self.malicious(plan.malicious_xml)
            entry["status"] = resp.status
            return resp
        try:
            resp = call.run()
        except HttpError as exc:
            resp = self.error_response(req, exc.status, exc.code, exc.message, exc.headers,
                                       extra=exc.extra)
        if plan.malformed:
            entry["fault"] = "malformed"
            resp = self.corrupt(resp, plan.malformed)
        entry["status"] = resp.status
        return resp

    def _control(self, req: Request) -> Response:
        action = req.path[len("/_sandbox/"):].strip("/")
        try:
            if action == "health":
                left, _mode = self.faults.outage()
                if left > 0:
                    return Response.json({"status": "outage", "name": self.name,
                                          "outage_remaining": round(left, 3)}, 503,
                                         {"Retry-After": str(math.ceil(left))})
                return Response.json({"status": "ok", "name": self.name, "kind": self.kind,
                                      "protocol": self.protocol})
            if action == "faults":
                if req.method == "GET":
                    return Response.json(self.faults.settings())
                if req.method == "DELETE":
                    return Response.json(self.faults.clear())
                if req.method in ("POST", "PUT"):
                    try:
                        return Response.json(self.faults.set(**req.json_object()))
                    except ValueError as exc:
                        raise HttpError(400, "BAD_FAULT", str(exc)) from None
            if action == "received":
                if req.method == "GET":
                    return Response.json(self.received())
                if req.method == "DELETE":
                    self.clear_received()
                    return Response.json({"cleared": True})
            if req.method == "POST":
                resp = self.control(action, req)
                if resp is not None:
                    return resp
            raise HttpError(404, "NOT_FOUND", _("no such sandbox control: {method} {path}",
                                                method=req.method, path=req.path))
        except HttpError as exc:
            return Response.json({"code": exc.code, "message": exc.message}, exc.status)


# --------------------------------------------------------------------------- http server

class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type, endpoint: Endpoint):
        self.endpoint = endpoint
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        self.accepted = 0
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)

    def track(self, sock: socket.socket, add: bool) -> None:
        with self._conns_lock:
            if add:
                self.accepted += 1
                self._conns.add(sock)
            else:
                self._conns.discard(sock)

    def drop_connections(self) -> None:
        with self._conns_lock:
            conns, self._conns = list(self._conns), set()
        for sock in conns:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client hanging up mid-answer is normal here (timeouts, resets).
        pass


class _BodyError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "bdc-sandbox/1.0"
    sys_version = ""
    timeout = 120  # idle keep-alive connections are closed after this
    server: _Server

    def setup(self) -> None:
        super().setup()
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            with contextlib.suppress(OSError):
                super().finish()
        finally:
            self.server.track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks, total = [], 0
            while True:
                line = self.rfile.readline(1024)
                try:
                    size = int(line.split(b";")[0].strip() or b"0", 16)
                except ValueError:
                    raise _BodyError(400, "bad chunk") from None
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY:
                    raise _BodyError(413, "body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(8)
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        try:
            n = int(length)
        except ValueError:
            raise _BodyError(400, "bad Content-Length") from None
        if n < 0:
            raise _BodyError(400, "bad Content-Length")
        if n > MAX_BODY:
            raise _BodyError(413, "body too large")
        return self.rfile.read(n)

    def _serve(self) -> None:
        try:
            body = self._read_body()
        except _BodyError as exc:
            self.close_connection = True
            self._write(Response.json({"code": "BAD_REQUEST", "message": str(exc)}, exc.status))
            return
        req = Request(method=self.command, target=self.path, headers=self.headers, body=body,
                      client=self.client_address)
        try:
            resp = self.server.endpoint.serve(req, self)
        except Exception as exc:  # a sandbox bug must still answer, not hang the client
            resp = Response.json({"code": "SANDBOX_ERROR", "message": repr(exc)}, 500)
        self._write(resp)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _serve

    def _hold(self, seconds: float) -> None:
        """Keep the request open without answering until the client gives up."""
        deadline = time.monotonic() + seconds
        stopping = self.server.endpoint.sandbox.stopping
        sock = self.connection
        # A selector, not select.select: in a long test session descriptors pass 1024,
        # where select() raises and the hold would end at once as a disconnect.
        with selectors.DefaultSelector() as watch:
            try:
                watch.register(sock, selectors.EVENT_READ)
            except (OSError, ValueError):
                return
            self._watch_until(watch, sock, deadline, stopping)

    @staticmethod
    def _watch_until(watch: selectors.BaseSelector, sock: socket.socket, deadline: float,
                     stopping: threading.Event) -> None:
        while not stopping.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                readable = watch.select(min(0.05, left))
            except (OSError, ValueError):
                break
            if readable:
                try:
                    if not sock.recv(1, socket.MSG_PEEK):
                        break  # the client closed its end
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK):
                        break
                time.sleep(0.05)  # pipelined bytes: keep holding, but do not spin

    def _write(self, resp: Response) -> None:
        if resp.action == "hold":
            self._hold(resp.hold_for)
            self.close_connection = True
            return
        if resp.action == "reset":
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           struct.pack("ii", 1, 0))
            return
        if resp.close:
            self.close_connection = True
        length = len(resp.body)
        if resp.action == "short":
            length = int(resp.hold_for)
            self.close_connection = True
        try:
            reason = HTTPStatus(resp.status).phrase
        except ValueError:
            reason = "Status"
        lines = [f"HTTP/1.1 {resp.status} {reason}", f"Server: {self.server_version}",
                 f"Date: {self.date_time_string()}", f"Content-Type: {resp.content_type}",
                 f"Content-Length: {length}"]
        for key, value in resp.headers.items():
            lines.append(f"{key}: {value}")
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", errors="replace")
        payload = head if self.command == "HEAD" else head + resp.body
        try:
            self.wfile.write(payload)
        except OSError:
            self.close_connection = True
