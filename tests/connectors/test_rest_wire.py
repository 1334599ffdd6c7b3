"""The REST connector on the wire: what it sends and how it takes what comes back,
against a scripted server that answers each request with raw bytes (redirects,
replies cut off or stalled mid-body, compressed bodies, cookies). Every test runs
from a plain thread (urllib3) and on the inbound server's event loop (aiohttp):
the department sees the same bytes either way."""

from __future__ import annotations

import contextlib
import gzip
import socket
import threading
import time
from collections.abc import Callable

import pytest

from bdchub import connectors
from bdchub.core.errors import ConnectorError, PermanentError, RecoverableError, TimeoutError_

from .loopback import TRANSPORTS, LoopRunner, runner_for

Answer = Callable[[int, bytes], tuple[bytes, str]]  # (n, request) -> (bytes, then)


class Scripted:
    """A loopback HTTP/1.1 server: ``answer(n, request)`` gives the raw bytes of
    the n-th reply and what to do next: ``keep`` (keep-alive), ``close`` or
    ``hang`` (stay silent until the test ends)."""

    def __init__(self, answer: Answer):
        self.answer = answer
        self.requests: list[bytes] = []
        self._stop = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.1)
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        self._accepter = threading.Thread(target=self._accept, daemon=True)
        self._accepter.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _addr = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._conns.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _read_request(self, conn: socket.socket, buffered: bytes) -> tuple[bytes, bytes] | None:
        data = buffered
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _sep, rest = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _colon, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            rest += chunk
        return head + b"\r\n\r\n" + rest[:length], rest[length:]

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            buffered = b""
            while not self._stop.is_set():
                try:
                    got = self._read_request(conn, buffered)
                except OSError:
                    return
                if got is None:
                    return
                request, buffered = got
                self.requests.append(request)
                reply, then = self.answer(len(self.requests), request)
                conn.sendall(reply)
                if then == "hang":
                    self._stop.wait(10)
                    return
                if then == "close":
                    return

    def close(self) -> None:
        self._stop.set()
        self._sock.close()
        self._accepter.join(timeout=5)
        for conn in self._conns:  # the client may keep its end open until collected
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(timeout=5)


def reply(status: str, body: bytes, *headers: str, length: int | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status}", "Content-Type: application/json",
             f"Content-Length: {len(body) if length is None else length}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@pytest.fixture
def scripted():
    servers: list[Scripted] = []

    def start(answer: Answer) -> Scripted:
        server = Scripted(answer)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


RUNNER: LoopRunner | None = None


@pytest.fixture(autouse=True, params=TRANSPORTS)
def transport(request):
    global RUNNER
    with runner_for(request.param) as RUNNER:
        yield request.param
    RUNNER = None


def rest(url: str, metrics, name: str = "dept", **block):
    conn = connectors.build(name, {"type": "rest", "base_url": url, "retry": {"attempts": 1},
                                   "timeout": 5,
                                   "operations": {"get": {"path": "/things/{n}"},
                                                  "post": {"method": "POST", "path": "/things"}},
                                   **block},
                            metrics=metrics, sleep=lambda s: None)
    return conn if RUNNER is None else RUNNER.wrap(conn)


def head_of(raw: bytes) -> tuple[str, dict[str, str]]:
    """The request line and the headers (lower-case names) of one raw request."""
    head = raw.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    return head[0], {k.lower(): v.strip() for k, _c, v in (line.partition(":")
                                                          for line in head[1:])}


def test_redirects_are_answered_not_followed(scripted, metrics):
    server = scripted(lambda n, req: (reply("302 Found", b"{}", "Location: /elsewhere"), "keep"))
    with rest(server.url, metrics) as conn, pytest.raises(PermanentError) as info:
        conn.call("get", {"n": 1})
    assert info.value.status == 302
    assert len(server.requests) == 1


def test_proxies_from_the_environment_are_not_used(scripted, metrics, monkeypatch):
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY",
                 "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    server = scripted(lambda n, req: (reply("200 OK", b'{"ok": true}'), "keep"))
    with rest(server.url, metrics) as conn:
        assert conn.call("get", {"n": 1}) == {"ok": True}
    assert server.requests[0].startswith(b"GET /things/1 HTTP/1.1\r\n")


def test_the_request_carries_the_session_headers_and_a_json_body(scripted, metrics):
    server = scripted(lambda n, req: (reply("200 OK", b"{}"), "keep"))
    with rest(server.url, metrics, headers={"X-Hub": "bdc"}) as conn:
        conn.call("post", {"name": "张三"}, connectors.CallContext(idempotency_key="m-1"))
    head, _sep, body = server.requests[0].partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _c, v in (line.partition(":") for line in lines[1:])}
    assert lines[0] == "POST /things HTTP/1.1"
    assert headers["x-hub"] == "bdc"
    assert headers["user-agent"] == "bdc-hub"
    assert headers["idempotency-key"] == "m-1"
    assert headers["content-type"] == "application/json"
    assert int(headers["content-length"]) == len(body)
    assert body == b'{"name": "\\u5f20\\u4e09"}'


def test_connections_are_kept_alive_between_calls(scripted, metrics):
    server = scripted(lambda n, req: (reply("200 OK", b'{"n": %d}' % n), "keep"))
    with rest(server.url, metrics) as conn:
        assert [conn.call("get", {"n": i})["n"] for i in range(3)] == [1, 2, 3]
    assert len(server._threads) == 1  # one connection served all three


def test_a_reply_cut_off_mid_body_is_a_recoverable_connection_failure(scripted, metrics):
    server = scripted(lambda n, req: (reply("200 OK", b'{"data": "par', length=100), "close"))
    with rest(server.url, metrics) as conn, pytest.raises(RecoverableError) as info:
        conn.call("get", {"n": 1})
    assert type(info.value) is RecoverableError
    assert "connection" in str(info.value)


def test_a_reply_that_stalls_mid_body_fails_within_the_deadline(scripted, metrics):
    server = scripted(lambda n, req: (reply("200 OK", b'{"data": "par', length=100), "hang"))
    started = time.monotonic()
    with rest(server.url, metrics, timeout=0.5) as conn, \
            pytest.raises(RecoverableError) as info:
        conn.call("get", {"n": 1})
    assert time.monotonic() - started < 4
    assert not isinstance(info.value, PermanentError)


def test_silence_before_the_status_line_is_a_timeout(scripted, metrics):
    server = scripted(lambda n, req: (b"", "hang"))
    with rest(server.url, metrics, timeout=0.5) as conn, pytest.raises(TimeoutError_):
        conn.call("get", {"n": 1})
    assert len(server.requests) == 1


def test_a_garbled_status_line_is_a_recoverable_connection_failure(scripted, metrics):
    server = scripted(lambda n, req: (b"NOT HTTP AT ALL\r\n\r\n", "close"))
    with rest(server.url, metrics) as conn, pytest.raises(RecoverableError, match="connection"):
        conn.call("get", {"n": 1})


def test_compressed_replies_are_decompressed(scripted, metrics):
    packed = gzip.compress(b'{"data": "zipped"}')
    server = scripted(lambda n, req: (reply("200 OK", packed, "Content-Encoding: gzip"), "keep"))
    with rest(server.url, metrics) as conn:
        assert conn.call("get", {"n": 1}) == {"data": "zipped"}
    assert b"accept-encoding: gzip" in server.requests[0].lower()


def test_cookies_the_endpoint_sets_are_sent_back(scripted, metrics):
    def answer(n: int, req: bytes) -> tuple[bytes, str]:
        if n == 1:
            return reply("200 OK", b"{}", "Set-Cookie: JSESSIONID=abc123; Path=/"), "keep"
        return reply("200 OK", b"{}"), "keep"

    server = scripted(answer)
    with rest(server.url, metrics) as conn:
        conn.call("get", {"n": 1})
        conn.call("get", {"n": 2})
    assert b"cookie" not in server.requests[0].lower()
    assert b"\r\nCookie: JSESSIONID=abc123\r\n" in server.requests[1]


def test_a_body_in_a_declared_charset_is_read_in_it(scripted, metrics):
    body = '{"name": "张三"}'.encode("gbk")
    server = scripted(lambda n, req: (reply("200 OK", body).replace(
        b"application/json", b"application/json; charset=GBK"), "keep"))
    with rest(server.url, metrics, operations={"get": {"path": "/x", "reply": "text"}}) as conn:
        assert conn.call("get", {}) == '{"name": "张三"}'


def test_the_request_carries_exactly_the_prepared_headers(scripted, metrics):
    """requests' own headers and the block's, nothing a transport adds of its own
    (aiohttp would add its User-Agent, Accept and a body's Content-Type)."""
    server = scripted(lambda n, req: (reply("200 OK", b"{}"), "keep"))
    with rest(server.url, metrics, headers={"X-Hub": "bdc"}) as conn:
        conn.call("get", {"n": 1})
        conn.call("post", {"name": "张三"}, connectors.CallContext(idempotency_key="m-1"))
    get, post = (head_of(raw)[1] for raw in server.requests)
    assert set(get) == {"host", "user-agent", "accept-encoding", "accept", "connection",
                        "x-hub"}
    assert set(post) == set(get) | {"idempotency-key", "content-length", "content-type"}
    assert (get["user-agent"], get["accept"]) == ("bdc-hub", "*/*")


def test_a_form_body_of_plain_text_goes_without_a_content_type(scripted, metrics):
    """As requests sends a string body: no Content-Type (aiohttp would say text/plain)."""
    server = scripted(lambda n, req: (reply("200 OK", b"{}"), "keep"))
    operations = {"post": {"method": "POST", "path": "/things", "body": "note",
                           "body_format": "form"}}
    with rest(server.url, metrics, operations=operations) as conn:
        conn.call("post", {"note": "补正材料"})
    headers = head_of(server.requests[0])[1]
    assert "content-type" not in headers
    assert server.requests[0].endswith("补正材料".encode())


def test_connectors_of_two_tenants_on_one_department_keep_their_own_headers_and_cookies(
        scripted, metrics):
    """What a connector prepares once (its headers, its pool, the cookies the
    department gave it) is its own: another connector of the same name, for
    another tenant, to the same department, sends none of it."""
    def answer(n: int, req: bytes) -> tuple[bytes, str]:
        if b"X-Tenant: 320684" in req and n == 1:
            return reply("200 OK", b"{}", "Set-Cookie: JSESSIONID=county-a; Path=/"), "keep"
        return reply("200 OK", b"{}"), "keep"

    server = scripted(answer)
    with rest(server.url, metrics, headers={"X-Tenant": "320684"}) as first, \
            rest(server.url, metrics, headers={"X-Tenant": "320621"},
                 idempotency_header="X-Request-Id") as second:
        for _ in range(2):
            first.call("post", {"n": 1}, connectors.CallContext(idempotency_key="a"))
            second.call("post", {"n": 2}, connectors.CallContext(idempotency_key="b"))
    sent = [head_of(raw)[1] for raw in server.requests]
    assert [h["x-tenant"] for h in sent] == ["320684", "320621"] * 2
    assert [h.get("idempotency-key") for h in sent] == ["a", None, "a", None]
    assert [h.get("x-request-id") for h in sent] == [None, "b", None, "b"]
    assert [h.get("cookie") for h in sent] == [None, None, "JSESSIONID=county-a", None]


def test_a_utf8_reply_with_a_broken_byte_is_read_as_requests_reads_it(scripted, metrics):
    server = scripted(lambda n, req: (reply("200 OK", b'{"name": "\xff\xe5\xbc\xa0"}'),
                                      "keep"))
    with rest(server.url, metrics) as conn:
        assert conn.call("get", {"n": 1}) == {"name": "\ufffd张"}


def test_a_header_from_the_message_that_would_split_the_request_is_never_sent(
        scripted, metrics):
    """The block's headers are checked once, when the connector opens; a header
    from the message (the idempotency key) is still checked on every call."""
    server = scripted(lambda n, req: (reply("200 OK", b"{}"), "keep"))
    with rest(server.url, metrics) as conn, pytest.raises(ConnectorError, match="header"):
        conn.call("post", {"n": 1},
                  connectors.CallContext(idempotency_key="m-1\r\nX-Injected: yes"))
    assert server.requests == []
