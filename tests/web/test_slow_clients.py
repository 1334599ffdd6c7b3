"""Slow and greedy clients against the real inbound server (web.loopserver), on
loopback only: a thousand sockets that never finish their request must not take
the server from anyone else, are closed after their deadline and audited once
per address, a cap per address refuses the excess, and an over-limit body is
answered readably. Every wait is bounded."""

from __future__ import annotations

import http.client
import json
import resource
import selectors
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from bdchub.web.app import create_app
from bdchub.web.fake import FakeHub
from bdchub.web.loopserver import start
from bdchub.web.metrics import InboundMetrics
from bdchub.web.signing import signed_headers

from .conftest import APP_KEY, APPLICATION, SECRET, config

SLOW = 1000
#: Client sockets plus the server's side of each, plus the test process's own.
FILES_NEEDED = 2100
#: A liveness bound, not a speed target: far above any normal answer.
ANSWER_WITHIN = 2.0
#: Longest a bounded wait in these tests waits for the server to act.
PATIENCE = 20.0
OTHER_CLIENT = "127.0.0.2"
HALF_REQUEST = b"GET /api/v1/health HTTP/1.1\r\nHost: hub\r\n"  # the line and one header


@pytest.fixture(autouse=True, scope="module")
def _enough_open_files():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < FILES_NEEDED:
        target = FILES_NEEDED if hard == resource.RLIM_INFINITY else min(hard, FILES_NEEDED)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft != resource.RLIM_INFINITY and soft < FILES_NEEDED:
        pytest.skip(f"{FILES_NEEDED} open files needed for {SLOW} slow sockets; "
                    f"this process may open {soft}")
    yield


@contextmanager
def serving(make_app, **limits) -> Iterator:
    app = make_app(limits=limits)
    with start(app, "127.0.0.1", 0, threads=4) as server:
        yield server


@contextmanager
def slow_sockets(server, n: int, source: str = "127.0.0.1",
                 sends: bytes = HALF_REQUEST) -> Iterator[list[socket.socket]]:
    socks: list[socket.socket] = []
    try:
        for _ in range(n):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(sock)
            sock.bind((source, 0))
            sock.connect((server.host, server.port))
            if sends:
                sock.sendall(sends)
        yield socks
    finally:
        for sock in socks:
            sock.close()


def wait_until(condition, patience: float = PATIENCE) -> bool:
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def closed_by_server(socks: list[socket.socket], patience: float = PATIENCE) -> int:
    """How many of ``socks`` the server closed (EOF or reset) within ``patience``."""
    remaining = set(socks)
    closed = 0
    deadline = time.monotonic() + patience
    with selectors.DefaultSelector() as selector:
        for sock in remaining:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
        while remaining and time.monotonic() < deadline:
            for key, _events in selector.select(timeout=0.2):
                sock = key.fileobj
                try:
                    data = sock.recv(65536)
                except ConnectionResetError:
                    data = b""
                except BlockingIOError:
                    continue
                if not data:
                    selector.unregister(sock)
                    remaining.discard(sock)
                    closed += 1
    return closed


def ask(server, method: str, path: str, *, body: bytes = b"", source: str = "127.0.0.1",
        signed: bool = False) -> tuple[int, bytes, float]:
    """(status, body, seconds) of one request on a connection of its own from ``source``."""
    headers = {"Content-Type": "application/json"} if body else {}
    if signed:
        headers.update(signed_headers(APP_KEY, SECRET, method, path, body))
    began = time.monotonic()
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10,
                                      source_address=(source, 0))
    try:
        conn.request(method, path, body=body or None, headers=headers)
        answer = conn.getresponse()
        data = answer.read()
    finally:
        conn.close()
    return answer.status, data, time.monotonic() - began


def refusals(hub: FakeHub, code: str, address: str) -> list[dict]:
    return [r for r in hub.audited("inbound.rejected")
            if r.get("code") == code and r.get("remote_addr") == address]


def application(n: int) -> bytes:
    return json.dumps({**APPLICATION, "business_no": f"YWH20249{n:05d}"},
                      ensure_ascii=False).encode()


def read_answer(sock: socket.socket) -> tuple[bytes, bytes]:
    """(head, body) of the answer on ``sock``, read until the server closes it."""
    sock.settimeout(10)
    data = b""
    for _ in range(10_000):  # bounded: every recv either adds bytes or ends
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _sep, body = data.partition(b"\r\n\r\n")
    return head.lower(), body


# -- a thousand slow sockets ---------------------------------------------------------
def test_health_and_signed_submissions_are_answered_while_a_thousand_slow_sockets_are_open(
        make_app, hub):
    with serving(make_app, header_timeout=300, connections_per_address=0) as server, \
            slow_sockets(server, SLOW):
        assert wait_until(lambda: server.open_connections() == SLOW)

        answers = []
        for n in range(10):
            answers.append(ask(server, "GET", "/api/v1/health"))
            answers.append(ask(server, "POST", "/api/v1/applications", body=application(n),
                               signed=True))

        assert [status for status, _body, _s in answers] == [200, 202] * 10
        assert all(json.loads(body)["status"] in ("ok", "accepted") for _s, body, _t in answers)
        slowest = max(seconds for _s, _b, seconds in answers)
        assert slowest < ANSWER_WITHIN, f"an answer took {slowest:.2f} s"
        assert server.open_connections() >= SLOW  # they were held open all along
    assert len(hub.published) == 10
    assert hub.audited("inbound.rejected") == []


def test_slow_sockets_are_closed_after_the_header_timeout_and_audited_once_per_address(
        make_app, hub):
    with serving(make_app, header_timeout=1, connections_per_address=0) as server:
        with slow_sockets(server, SLOW) as stalled, \
                slow_sockets(server, 10, source="127.0.0.3", sends=b"") as silent:
            assert closed_by_server(stalled + silent) == SLOW + 10
            assert wait_until(lambda: server.open_connections() == 0)
            assert ask(server, "GET", "/api/v1/health")[0] == 200
            at_once = refusals(hub, "slow_client", "127.0.0.1")
            assert [(r["reason"], r["count"]) for r in at_once] == [("header_timeout", 1)]
    # The rest of the minute's window is written as one record when the server stops.
    stalled_records = refusals(hub, "slow_client", "127.0.0.1")
    silent_records = refusals(hub, "slow_client", "127.0.0.3")
    assert [r["count"] for r in stalled_records] == [1, SLOW - 1]
    assert [r["count"] for r in silent_records] == [1, 9]


def test_a_kept_alive_connection_gives_its_next_request_the_same_header_deadline(make_app, hub):
    with serving(make_app, header_timeout=2) as server, \
            slow_sockets(server, 1, sends=b"") as (sock,):
        sock.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: hub\r\n\r\n")
        answer = http.client.HTTPResponse(sock)
        answer.begin()
        assert (answer.status, answer.will_close) == (200, False)
        answer.read()
        sock.sendall(HALF_REQUEST)

        assert closed_by_server([sock]) == 1
    assert [(r["reason"], r["count"]) for r in refusals(hub, "slow_client", "127.0.0.1")] == [
        ("header_timeout", 1)]


def test_a_body_that_stalls_is_cut_after_the_body_timeout(make_app, hub):
    head = (b"POST /api/v1/applications HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json"
            b"\r\nContent-Length: 1000\r\n\r\n{\"business_no\":")
    with serving(make_app, body_timeout=0.5) as server, \
            slow_sockets(server, 3, sends=head) as stalled:
        assert closed_by_server(stalled) == 3
        assert [(r["reason"], r["count"]) for r in refusals(hub, "slow_client", "127.0.0.1")
                ] == [("body_timeout", 1)]
    assert hub.published == []


def test_the_cap_per_address_refuses_the_1001st_connection_and_no_other_client(make_app, hub):
    with serving(make_app, header_timeout=300, connections_per_address=SLOW) as server, \
            slow_sockets(server, SLOW):
        assert wait_until(lambda: server.open_connections("127.0.0.1") == SLOW)
        with slow_sockets(server, 1) as (one_more,):
            assert closed_by_server([one_more]) == 1

        status, _body, seconds = ask(server, "GET", "/api/v1/health", source=OTHER_CLIENT)
        assert status == 200 and seconds < ANSWER_WITHIN
        assert ask(server, "POST", "/api/v1/applications", body=application(1),
                   source=OTHER_CLIENT, signed=True)[0] == 202
        assert server.open_connections("127.0.0.1") == SLOW
        assert [(r["reason"], r["count"])
                for r in refusals(hub, "too_many_connections", "127.0.0.1")] == [
            ("connections_per_address", 1)]


# -- answers a client can read --------------------------------------------------------
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_body_over_the_limit_is_answered_413_in_json_while_the_client_is_still_sending(
        make_app, hub, framing):
    body = b" " * (8 * 1024 * 1024)  # 128 times the limit of 64 KiB
    if framing == "chunked":
        framed = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 65536]), body[i:i + 65536])
                          for i in range(0, len(body), 65536)) + b"0\r\n\r\n"
        length = b"Transfer-Encoding: chunked"
    else:
        framed, length = body, b"Content-Length: %d" % len(body)
    with serving(make_app) as server, \
            socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(b"POST /api/v1/applications HTTP/1.1\r\nHost: hub\r\n"
                     b"Content-Type: application/json\r\n" + length + b"\r\n\r\n")
        sock.sendall(framed)  # a reset here is what a client sees instead of the answer
        head, answer = read_answer(sock)

    assert head.startswith(b"http/1.1 413")
    assert b"connection: close" in head
    assert json.loads(answer)["error"]["code"] == "too_large"
    assert [r["code"] for r in hub.audited("inbound.rejected")] == ["too_large"]


def test_headers_that_never_end_are_answered_431_in_json(make_app, hub):
    with serving(make_app) as server, \
            socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: hub\r\n")
        for n in range(200):  # 200 KiB of headers at most; the server answers well before
            try:
                sock.sendall(b"X-Pad-%d: %s\r\n" % (n, b"y" * 1000))
            except OSError:
                break
        head, answer = read_answer(sock)

    assert head.startswith(b"http/1.1 431")
    assert json.loads(answer)["error"]["code"] == "header_too_large"
    assert [(r["status"], r["reason"]) for r in refusals(hub, "header_too_large", "127.0.0.1")
            ] == [(431, "head_limit")]


class HeldHub(FakeHub):
    """Holds every publish until released: a submission stays in flight."""

    def __init__(self):
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def publish(self, envelope):
        self.entered.set()
        self.release.wait(PATIENCE)
        super().publish(envelope)


def test_requests_beyond_max_requests_are_answered_503_in_json_and_audited(registry):
    hub = HeldHub()
    app = create_app(hub, config(limits={"max_requests": 1}), metrics=InboundMetrics(registry))
    with start(app, "127.0.0.1", 0, threads=2) as server:
        held: list[int] = []
        first = threading.Thread(target=lambda: held.append(ask(
            server, "POST", "/api/v1/applications", body=application(1), signed=True)[0]))
        first.start()
        try:
            assert hub.entered.wait(PATIENCE)
            status, body, _seconds = ask(server, "GET", "/api/v1/health")
        finally:
            hub.release.set()
            first.join(PATIENCE)

    assert status == 503
    assert json.loads(body)["error"]["code"] == "unavailable"
    assert held == [202]
    assert [(r["status"], r["reason"], r["count"])
            for r in refusals(hub, "unavailable", "127.0.0.1")] == [(503, "max_requests", 1)]
    assert registry.get_sample_value("bdchub_inbound_rejected_total",
                                     {"endpoint": "*", "code": "unavailable"}) == 1
