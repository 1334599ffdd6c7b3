"""A small department on loopback for the connector tests: REST + SOAP, TLS
optional, faults injectable, every request recorded.

The shared sandbox (``sandbox/``) is the main target of the contract suite;
this server covers what the sandbox does not simulate: mutual TLS with a CA
the test generates, OAuth2 token expiry, counted failures ("fail twice, then
answer"), and exact control of the request sequence.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import re
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from lxml import etree

from bdchub.sandbox.soap import billion_laughs_dtd

DATA = Path(__file__).resolve().parent / "data"
NS = "urn:bdc-hub:test:contract"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"

_LOL_DTD, _LOL_REF = billion_laughs_dtd()
BILLION_LAUGHS = ('<?xml version="1.0"?>\n' + _LOL_DTD + "\n" + """<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>
<CheckContractResponse xmlns="urn:bdc-hub:test:contract"><contract_no>""" + _LOL_REF + """</contract_no>
<status>x</status><price>1</price><signed_at>2024-01-01T00:00:00</signed_at>
</CheckContractResponse></soap:Body></soap:Envelope>""").encode()


def external_entity(probe_url: str) -> bytes:
    return f"""<?xml version="1.0"?>
<!DOCTYPE r [ <!ENTITY xxe SYSTEM "{probe_url}"> <!ENTITY file SYSTEM "file:///etc/passwd"> ]>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>
<CheckContractResponse xmlns="urn:bdc-hub:test:contract"><contract_no>&xxe;&file;</contract_no>
<status>x</status><price>1</price><signed_at>2024-01-01T00:00:00</signed_at>
</CheckContractResponse></soap:Body></soap:Envelope>""".encode()


@dataclass
class Faults:
    """What the next business requests get. ``errors`` counts down; -1 = forever."""

    errors: int = 0
    status: int = 503
    retry_after: str | None = None
    hang: float = 0.0
    malformed: bool = False
    soap_fault: str | None = None  # "client" | "server"
    malicious_xml: str | None = None  # "billion_laughs" | "external_entity"


@dataclass
class Department:
    tls: ssl.SSLContext | None = None
    auth: str = "none"  # none | bearer | gjgxjhpt | appkey | basic
    token_lifetime: int = 3600
    secret: str = "secret-1"
    rid: str = "RID-TAX"
    sid: str = "SID-HUB"
    app_key: str = "hub-app"
    app_secret: str = "app-secret"
    faults: Faults = field(default_factory=Faults)
    received: list[dict[str, Any]] = field(default_factory=list)
    tokens: set[str] = field(default_factory=set)
    token_requests: int = 0
    secret_requests: int = 0
    probe_hits: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.server: ThreadingHTTPServer | None = None

    # ---------------------------------------------------------------- server
    def start(self) -> Department:
        dept = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                dept._handle(self, "GET")

            def do_HEAD(self) -> None:
                dept._handle(self, "HEAD")

            def do_POST(self) -> None:
                dept._handle(self, "POST")

            def do_PUT(self) -> None:
                dept._handle(self, "PUT")

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        if self.tls is not None:
            server.socket = self.tls.wrap_socket(server.socket, server_side=True)
        self.server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    @property
    def url(self) -> str:
        assert self.server is not None
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.server.server_address[1]}"

    @property
    def wsdl_url(self) -> str:
        return self.url + "/contract.wsdl"

    def set(self, **kwargs: Any) -> None:
        with self._lock:
            self.faults = Faults(**kwargs)

    # -------------------------------------------------------------- dispatch
    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        path = urlsplit(h.path).path
        try:
            status, headers, payload = self._route(h, method, path, body)
        except _Hang:
            h.close_connection = True
            return
        if method == "HEAD":
            payload = b""
        h.send_response(status)
        for key, value in headers.items():
            h.send_header(key, value)
        h.send_header("Content-Length", str(len(payload)))
        h.end_headers()
        if payload:
            h.wfile.write(payload)

    def _route(self, h: Any, method: str, path: str, body: bytes) -> tuple[int, dict, bytes]:
        if path == "/contract.wsdl":
            text = (DATA / "contract.wsdl").read_text().replace("http://127.0.0.1:9/soap",
                                                                self.url + "/soap")
            return 200, {"Content-Type": "text/xml"}, text.encode()
        if path == "/oauth/token":
            return self._token(h, body)
        if path == "/exchange/secret":
            self.secret_requests += 1
            return _json(200, {"secret": self.secret, "expires_in": 86400})
        if path == "/xxe-probe":
            self.probe_hits += 1
            return _json(200, {"leak": True})
        self.received.append({"method": method, "path": h.path, "headers": dict(h.headers),
                              "body": body})
        with self._lock:
            faults = self.faults
            if faults.errors > 0:
                self.faults = Faults(**{**faults.__dict__, "errors": faults.errors - 1})
        if faults.hang:
            self._stop.wait(faults.hang)
            raise _Hang
        soap = path == "/soap"
        if faults.errors:
            headers = {"Retry-After": faults.retry_after} if faults.retry_after else {}
            if soap and faults.soap_fault:
                return self._fault(body, faults.soap_fault)
            return _json(faults.status, {"code": "INJECTED", "message": "injected"}, headers)
        if soap and faults.soap_fault:
            return self._fault(body, faults.soap_fault)
        if faults.malicious_xml:
            content = BILLION_LAUGHS if faults.malicious_xml == "billion_laughs" else \
                external_entity(self.url + "/xxe-probe")
            return 200, {"Content-Type": "text/xml"}, content
        refused = self._check_auth(h, method, body)
        if refused:
            return _json(401, {"code": "UNAUTHORIZED", "message": refused})
        if faults.malformed:
            return 200, {"Content-Type": "application/json"}, b'{"code": "0", "data": {"contr'
        if soap:
            return self._soap(body)
        return self._rest(method, path, body)

    def _check_auth(self, h: Any, method: str, body: bytes) -> str:
        if self.auth == "bearer":
            value = h.headers.get("Authorization", "")
            return "" if value.startswith("Bearer ") and value[7:] in self.tokens else "bad token"
        if self.auth == "basic":
            expected = "Basic " + base64.b64encode(b"hub:pw").decode()
            return "" if h.headers.get("Authorization") == expected else "bad basic"
        if self.auth == "gjgxjhpt":
            hd = h.headers
            message = f"{hd.get('gjgxjhpt_rid')}\n{hd.get('gjgxjhpt_sid')}\n{hd.get('gjgxjhpt_rtime')}"
            sign = hmac.new(self.secret.encode(), message.encode(), hashlib.sha256).hexdigest()
            ok = (hd.get("gjgxjhpt_rid") == self.rid and hd.get("gjgxjhpt_sid") == self.sid
                  and hmac.compare_digest(sign, hd.get("gjgxjhpt_sign") or ""))
            return "" if ok else "bad signature"
        if self.auth == "appkey":
            hd = h.headers
            message = "\n".join([self.app_key, hd.get("X-Timestamp", ""), hd.get("X-Nonce", ""),
                                 method, h.path, hashlib.sha256(body).hexdigest()])
            sign = hmac.new(self.app_secret.encode(), message.encode(), hashlib.sha256).hexdigest()
            fresh = abs(time.time() - float(hd.get("X-Timestamp") or 0)) < 300
            ok = hd.get("X-App-Key") == self.app_key and fresh and hmac.compare_digest(
                sign, hd.get("X-Signature") or "")
            return "" if ok else "bad signature"
        return ""

    def _token(self, h: Any, body: bytes) -> tuple[int, dict, bytes]:
        self.token_requests += 1
        expected = "Basic " + base64.b64encode(b"hub-client:client-secret").decode()
        if h.headers.get("Authorization") != expected or b"grant_type=client_credentials" not in body:
            return _json(401, {"error": "invalid_client"})
        token = f"token-{self.token_requests}"
        self.tokens.add(token)
        return _json(200, {"access_token": token, "token_type": "Bearer",
                           "expires_in": self.token_lifetime})

    def _rest(self, method: str, path: str, body: bytes) -> tuple[int, dict, bytes]:
        if path == "/health":
            return _json(200, {"status": "up"})
        match = re.fullmatch(r"/contracts/([^/]+)", path)
        if match and method in ("GET", "HEAD"):
            return _json(200, {"code": "0", "data": {"contract_no": match.group(1),
                                                     "status": "signed", "price": 1250000.5}})
        if path == "/contracts" and method == "POST":
            data = json.loads(body or b"null")
            return _json(201, {"code": "0", "data": {"accepted": data}})
        return _json(404, {"code": "NOT_FOUND", "message": path})

    def _soap(self, body: bytes) -> tuple[int, dict, bytes]:
        version, ns = self._version(body)
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
        doc = etree.fromstring(body, parser)
        number = doc.findtext(f".//{{{NS}}}contract_no")
        content = (f'<soap:Envelope xmlns:soap="{ns}"><soap:Body>'
                   f'<CheckContractResponse xmlns="{NS}"><contract_no>{number}</contract_no>'
                   f"<status>signed</status><price>1250000.50</price>"
                   f"<signed_at>2024-03-01T10:30:00</signed_at></CheckContractResponse>"
                   f"</soap:Body></soap:Envelope>")
        return 200, {"Content-Type": _ctype(version)}, content.encode()

    def _fault(self, body: bytes, kind: str) -> tuple[int, dict, bytes]:
        version, ns = self._version(body)
        if version == 11:
            code = "soap:Client" if kind == "client" else "soap:Server"
            content = (f'<soap:Envelope xmlns:soap="{ns}"><soap:Body><soap:Fault>'
                       f"<faultcode>{code}</faultcode><faultstring>{kind} fault</faultstring>"
                       f"</soap:Fault></soap:Body></soap:Envelope>")
            return 500, {"Content-Type": _ctype(version)}, content.encode()
        code = "soap:Sender" if kind == "client" else "soap:Receiver"
        content = (f'<soap:Envelope xmlns:soap="{ns}"><soap:Body><soap:Fault>'
                   f"<soap:Code><soap:Value>{code}</soap:Value></soap:Code>"
                   f'<soap:Reason><soap:Text xml:lang="en">{kind} fault</soap:Text></soap:Reason>'
                   f"</soap:Fault></soap:Body></soap:Envelope>")
        return (400 if kind == "client" else 500), {"Content-Type": _ctype(version)}, \
            content.encode()

    @staticmethod
    def _version(body: bytes) -> tuple[int, str]:
        return (12, SOAP12) if SOAP12.encode() in body else (11, SOAP11)


class _Hang(Exception):
    pass


def _ctype(version: int) -> str:
    return "text/xml; charset=utf-8" if version == 11 else "application/soap+xml; charset=utf-8"


def _json(status: int, data: Any, headers: dict | None = None) -> tuple[int, dict, bytes]:
    return status, {"Content-Type": "application/json", **(headers or {})}, \
        json.dumps(data).encode()


class LoopRunner:
    """An event loop in a thread that runs connector calls the way the inbound
    server runs request/reply routes: each in a greenlet (``core.greenloop``)."""

    def __init__(self) -> None:
        import asyncio

        self._asyncio = asyncio
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, fn, *args, **kwargs):
        from bdchub.core import greenloop

        future = self._asyncio.run_coroutine_threadsafe(
            greenloop.run(fn, *args, **kwargs), self.loop)
        return future.result(timeout=60)

    def wrap(self, conn) -> _OnLoop:
        return _OnLoop(self, conn)

    def close(self) -> None:
        from bdchub.connectors.loophttp import close_loop

        self._asyncio.run_coroutine_threadsafe(close_loop(self.loop), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


#: The two ways a connector's call runs: from a plain thread (urllib3), and on the
#: inbound server's event loop (core.greenloop, aiohttp).
TRANSPORTS = ["threaded", "on_loop"]


@contextlib.contextmanager
def runner_for(transport: str) -> Iterator[LoopRunner | None]:
    """No runner for ``threaded``; a ``LoopRunner``, closed afterwards, for ``on_loop``."""
    if transport == "threaded":
        yield None
        return
    runner = LoopRunner()
    try:
        yield runner
    finally:
        runner.close()


class _OnLoop:
    """A connector whose ``call`` and ``health`` run on a ``LoopRunner``."""

    def __init__(self, runner: LoopRunner, conn) -> None:
        self._runner, self._conn = runner, conn

    def call(self, *args, **kwargs):
        return self._runner.run(self._conn.call, *args, **kwargs)

    def health(self, *args, **kwargs):
        return self._runner.run(self._conn.health, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._conn, name)

    def __enter__(self) -> _OnLoop:
        self._conn.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._conn.__exit__(*exc)
