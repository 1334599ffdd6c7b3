"""The inbound server (web.loopserver) with a real hub: request/reply routes wait on
the event loop, everything else in threads; bodies bounded; clean shutdown."""

from __future__ import annotations

import json
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from bdchub.core.config import load
from bdchub.routes.runtime import Hub
from bdchub.web import loopserver
from bdchub.web.app import create_app

PATH = "/api/v1/verify"
WAITING = 8  # requests that must be at the department at the same time


class Department(ThreadingHTTPServer):
    """Answers each POST with what it received, once ``WAITING`` calls are in."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Echo)
        self.barrier = threading.Barrier(WAITING, timeout=10)
        self.calls = 0
        self.lock = threading.Lock()
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with self.server.lock:
            self.server.calls += 1
        try:
            self.server.barrier.wait()
        except threading.BrokenBarrierError:
            self.send_response(504)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def department():
    dept = Department()
    yield dept
    dept.barrier.abort()
    dept.shutdown()
    dept.server_close()


def _config(tmp_path, backend: str) -> dict:
    config = {
        "tenant": "320684",
        "broker": {"url": "memory://"},
        "store": {"url": f"sqlite:///{tmp_path / 'store.db'}"},
        "connectors": {"legacy": {"type": "rest", "base_url": backend, "timeout": 15,
                                  "retry": {"attempts": 1},
                                  "operations": {"verify": {"method": "POST",
                                                            "path": "/echo"}}}},
        "routes": {"verify": {
            "from": {"endpoint": {"method": "POST", "path": PATH, "reply": True}},
            "steps": [{"map": {"ZJHM": "id_number", "XM": "name"}},
                      {"to": {"connector": "legacy", "operation": "verify"}}]}},
        "inbound": {"endpoints": [{"method": "POST", "path": PATH, "route": "verify",
                                   "reply": True, "auth": "none"}],
                    "max_body_bytes": 4096},
    }
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")
    return load(str(path))


@pytest.fixture
def served(tmp_path, department):
    config = _config(tmp_path, department.url)
    hub = Hub.from_config(config)
    hub.start()
    app = create_app(hub, config)
    server = loopserver.start(app, "127.0.0.1", 0, threads=2)
    yield server, hub
    server.close()
    hub.stop(timeout=5)


def test_reply_routes_wait_for_a_slow_department_together_beyond_the_thread_count(served,
                                                                                 department):
    """Two worker threads, eight requests held at the department until all eight
    are there: they can only all arrive if the loop, not the threads, waits."""
    server, _hub = served

    def ask(n: int):
        return requests.post(server.url + PATH, json={"id_number": f"ID{n}", "name": "张三"},
                             timeout=30)

    with ThreadPoolExecutor(WAITING) as pool:
        answers = list(pool.map(ask, range(WAITING)))

    assert [a.status_code for a in answers] == [200] * WAITING
    assert sorted(a.json()["ZJHM"] for a in answers) == [f"ID{n}" for n in range(WAITING)]
    assert department.calls == WAITING


def test_a_declared_body_over_the_limit_is_refused_unread_and_the_connection_closed(served):
    server, hub = served
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(f"POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     "Content-Length: 10000000000\r\n\r\n".encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(4096)
        head = answer.split(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"http/1.1 413")
    assert b"connection: close" in head


def test_a_chunked_body_over_the_limit_is_refused_with_413(served):
    server, _hub = served

    def chunks():
        for _ in range(10):
            yield b"x" * 1024

    answer = requests.post(server.url + PATH, data=chunks(), timeout=10,
                           headers={"Content-Type": "application/json"})
    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == "too_large"


def test_query_and_percent_encoded_paths_reach_the_application_as_under_wsgi():
    seen = {}

    def app(environ, start_response):
        seen.update({k: environ[k] for k in ("PATH_INFO", "QUERY_STRING", "REQUEST_URI",
                                              "HTTP_X_TRACE")})
        start_response("201 Created", [("Content-Type", "text/plain")])
        return [b"made"]

    with loopserver.start(app, "127.0.0.1", 0, threads=1) as server:
        answer = requests.get(server.url + "/a%20b/c?x=1&y=%E5%BC%A0", timeout=10,
                              headers={"X-Trace": "t1"})
    assert (answer.status_code, answer.text) == (201, "made")
    assert seen == {"PATH_INFO": "/a b/c", "QUERY_STRING": "x=1&y=%E5%BC%A0",
                    "REQUEST_URI": "/a%20b/c?x=1&y=%E5%BC%A0", "HTTP_X_TRACE": "t1"}


def test_a_port_in_use_is_an_os_error_at_start():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError):
            loopserver.start(lambda e, s: [], "127.0.0.1", taken.getsockname()[1])


def test_a_refused_reply_request_is_answered_and_audited_without_reaching_the_department(
        served, department, tmp_path):
    server, hub = served
    answer = requests.post(server.url + PATH, data=b'{"id_number": ', timeout=10,
                           headers={"Content-Type": "application/json"})

    assert answer.status_code == 400
    request_id = answer.json()["error"]["request_id"]
    records = [json.loads(line) for line in
               (tmp_path / "data" / "audit.jsonl").read_text(encoding="utf-8").splitlines()]
    refused = [r["fields"] for r in records if r["fields"].get("request_id") == request_id]
    assert [(r["status"], r["code"], r["endpoint"]) for r in refused] == [
        (400, "malformed_json", PATH)]
    assert department.calls == 0


def test_kill_cuts_a_request_in_flight_at_once(served, department):
    server, _hub = served
    answers: list[object] = []

    def ask():
        try:
            answers.append(requests.post(server.url + PATH, json={"id_number": "X"},
                                         timeout=30).status_code)
        except requests.RequestException as exc:
            answers.append(exc)

    caller = threading.Thread(target=ask)
    caller.start()
    for _ in range(500):  # bounded: until the request waits at the department
        if department.calls:
            break
        threading.Event().wait(0.01)
    assert department.calls == 1
    server.kill()
    caller.join(timeout=10)
    assert not caller.is_alive() and not server.running()
    assert len(answers) == 1 and isinstance(answers[0], requests.RequestException)


# -- inbound.limits ------------------------------------------------------------------
class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_refusals_are_audited_once_a_window_per_address_with_the_rest_counted():
    clock, written = Clock(), []
    reports = loopserver.Reports(lambda key, count: written.append((key, count)), window=60,
                                 clock=clock)
    for _ in range(500):
        reports.note("10.0.0.9", "slow_client", "header_timeout")
    reports.note("10.0.0.8", "slow_client", "header_timeout")
    assert written == [(("10.0.0.9", "slow_client", "header_timeout"), 1),
                       (("10.0.0.8", "slow_client", "header_timeout"), 1)]

    clock.now += 59
    reports.flush()
    assert len(written) == 2  # the window is not over
    clock.now += 1
    reports.flush()
    assert written[2:] == [(("10.0.0.9", "slow_client", "header_timeout"), 499)]

    reports.note("10.0.0.9", "slow_client", "header_timeout")  # still coming: counted on
    clock.now += 60
    reports.flush()
    assert written[3:] == [(("10.0.0.9", "slow_client", "header_timeout"), 1)]
    clock.now += 60
    reports.flush()  # a quiet window closes the address
    assert reports.open == {} and len(written) == 4
    reports.note("10.0.0.9", "slow_client", "header_timeout")
    assert written[4:] == [(("10.0.0.9", "slow_client", "header_timeout"), 1)]


def test_refusals_from_more_addresses_than_tracked_share_one_record():
    written = []
    reports = loopserver.Reports(lambda key, count: written.append((key, count)), capacity=2,
                                 clock=Clock())
    for n in range(10):
        reports.note(f"10.0.0.{n}", "too_many_connections", "max_connections")
    reports.flush(every=True)
    assert written == [(("10.0.0.0", "too_many_connections", "max_connections"), 1),
                       (("10.0.0.1", "too_many_connections", "max_connections"), 1),
                       (("*", "too_many_connections", "max_connections"), 1),
                       (("*", "too_many_connections", "max_connections"), 7)]


def test_an_ipv6_client_is_capped_by_its_64_prefix_and_a_mapped_ipv4_by_its_address():
    assert loopserver.address_key("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
    assert loopserver.address_key("2001:db8:1:2:bbbb::7") == "2001:db8:1:2::/64"
    assert loopserver.address_key("::ffff:10.1.2.3") == "10.1.2.3"
    assert loopserver.address_key("10.1.2.3") == "10.1.2.3"


def test_the_cap_per_address_and_the_cap_per_process_count_connections_held_open():
    guard = loopserver.Guard(loopserver.Limits.of({"connections_per_address": 2,
                                                   "max_connections": 3}))
    assert [guard.admit("10.0.0.1") for _ in range(3)] == [
        None, None, "connections_per_address"]
    assert guard.admit("10.0.0.2") is None
    assert guard.admit("10.0.0.3") == "max_connections"
    guard.release("10.0.0.1")
    assert guard.admit("10.0.0.3") is None
    assert (guard.connections, guard.by_address) == (3, {"10.0.0.1": 1, "10.0.0.2": 1,
                                                         "10.0.0.3": 1})


def test_inbound_limits_are_checked_by_the_config_and_default_where_left_out():
    from bdchub.core.config import check_text
    from bdchub.core.errors import ConfigError
    from bdchub.web.config_schema import with_defaults

    base = 'tenant: "320684"\nconnectors: {}\nroutes: {}\ninbound:\n  limits:\n'
    report = check_text(base + "    header_timeout: 5\n    connections_per_address: 0\n",
                        "config.yaml", {})
    limits = with_defaults(report.config["inbound"])["limits"]
    assert limits == {"header_timeout": 5, "body_timeout": 60, "connections_per_address": 0,
                      "max_connections": 4096, "max_requests": 1000}
    assert loopserver.Limits.of(limits).header_timeout == 5
    for bad in ("header_timeout: 0", "connections_per_adress: 10", "max_requests: -1"):
        with pytest.raises(ConfigError) as err:
            check_text(base + f"    {bad}\n", "config.yaml", {})
        assert "inbound.limits" in str(err.value)


def test_the_server_takes_its_limits_from_the_application_config(served):
    server, _hub = served
    assert server.limits == loopserver.Limits.of(None)
    app = type("App", (), {"config": {"limits": {"header_timeout": 3}}})()
    other = loopserver.LoopServer(app, "127.0.0.1", 0, threads=1)
    try:
        assert other.limits.header_timeout == 3
    finally:
        other.close()
