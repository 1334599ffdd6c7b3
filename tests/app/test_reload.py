"""Reloading a running hub (``app.reload``): SIGHUP, ``hub reload`` and
``HubService.reload``. What changed is swapped after its messages in flight;
what did not is not disturbed; a config that cannot be applied changes nothing.

Calls are counted at a ``tally`` connector registered here: every instance of
one ledger writes to it, so a call made twice, or made through a connector
already closed, shows across reloads."""

from __future__ import annotations

import collections
import contextlib
import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from bdchub.app.reload import ReloadMetrics
from bdchub.app.service import HubService
from bdchub.connectors.base import CallContext, Connector
from bdchub.connectors.registry import CONNECTOR_TYPES
from bdchub.core.config import load
from bdchub.core.errors import PermanentError, RecoverableError

TENANT = "320684"


class Ledger:
    """What every connector of one ledger did, in order, from any thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[dict[str, Any]] = []
        self.opened: list[str] = []
        self.closed: list[str] = []
        self.gate = threading.Event()  # the ``wait`` operation blocks until it is set
        self.entered = threading.Event()

    def count(self, op: str = "put") -> collections.Counter:
        with self.lock:
            return collections.Counter(c["payload"]["n"] for c in self.calls if c["op"] == op)

    def until(self, what, deadline: float = 60.0) -> None:
        """Wait (bounded) until ``what()`` is true."""
        end = time.monotonic() + deadline
        while not what():
            assert time.monotonic() < end, "gave up waiting"
            time.sleep(0.02)


LEDGERS: dict[str, Ledger] = {}


class TallyConnector(Connector):
    """Records each call in its ledger; ``wait`` blocks on the ledger's gate; an
    instance refuses calls once closed, as a closed session would fail them."""

    type_name = "tally"
    config_schema = {
        "type": "object", "additionalProperties": False, "required": ["ledger", "tag"],
        "properties": {"ledger": {"type": "string"}, "tag": {"type": "string"},
                       "delay": {"type": "number"}, "fail_open": {"type": "boolean"}},
    }

    def __init__(self, name: str, config: dict[str, Any], **kwargs: Any):
        super().__init__(name, config, **kwargs)
        self.ledger = LEDGERS[config["ledger"]]
        self.tag = config["tag"]
        self.is_closed = False

    def operations(self) -> list[str]:
        return ["put", "wait"]

    def open(self) -> None:
        if self.config.get("fail_open"):
            raise RecoverableError(f"{self.name}: connection refused", connector=self.name)
        with self.ledger.lock:
            self.ledger.opened.append(self.tag)

    def close(self) -> None:
        self.is_closed = True
        with self.ledger.lock:
            self.ledger.closed.append(self.tag)

    def call(self, operation: str, payload: Any, context: CallContext | None = None) -> Any:
        if self.is_closed:
            raise PermanentError(f"{self.name} ({self.tag}) called after it was closed")
        if operation == "wait":
            self.ledger.entered.set()
            self.ledger.gate.wait(60)
        elif self.config.get("delay"):
            time.sleep(self.config["delay"])
        with self.ledger.lock:
            self.ledger.calls.append({"op": operation, "payload": payload, "tag": self.tag,
                                      "id": context.message_id if context else ""})
        return {"ok": True}


@pytest.fixture(autouse=True)
def tally_type():
    CONNECTOR_TYPES.register("tally", TallyConnector)
    yield
    CONNECTOR_TYPES.unregister("tally")


@pytest.fixture
def ledger():
    name = uuid.uuid4().hex
    LEDGERS[name] = found = Ledger()
    found.name = name
    yield found
    found.gate.set()
    LEDGERS.pop(name, None)


def config(ledger: Ledger, broker: str, store: str, *, version: str = "v1", tag: str = "v1",
           prefix: str = "rl", steady: bool = True, extra: bool = False,
           **more: Any) -> dict[str, Any]:
    """A hub with two routes: ``forward`` calls ``dept`` (the part the tests
    change), ``steady`` calls ``slow`` (the part they leave alone)."""
    routes: dict[str, Any] = {
        "forward": {"from": "test.forward", "concurrency": 4, "steps": [
            {"to": {"connector": "dept", "operation": "put",
                    "payload": {"n": "n", "version": f"'{version}'"}}}]},
    }
    if steady:
        routes["steady"] = {"from": "test.steady", "concurrency": 2, "steps": [
            {"to": {"connector": "slow", "operation": "wait", "payload": {"n": "n"}}}]}
    if extra:
        routes["extra"] = {"from": "test.extra", "steps": [
            {"to": {"connector": "dept", "operation": "put", "payload": {"n": "n"}}}]}
    return {
        "tenant": TENANT,
        "broker": {"url": broker, "prefix": prefix},
        "store": {"url": store},
        "inbound": {"enabled": False},
        "connectors": {
            "dept": {"type": "tally", "ledger": ledger.name, "tag": tag, "delay": 0.005},
            "slow": {"type": "tally", "ledger": ledger.name, "tag": "slow"},
        },
        "routes": routes,
        **more,
    }


def write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(params=["memory", "sqlite", "amqp"])
def backend(request, tmp_path):
    """(broker URL, store URL, options for Hub.from_config) of each broker kind."""
    if request.param == "memory":
        return "memory://", f"sqlite:///{tmp_path}/store.db", {"inline": False}
    if request.param == "sqlite":
        return f"sqla+sqlite:///{tmp_path}/broker.db", f"sqlite:///{tmp_path}/store.db", {}
    url = request.getfixturevalue("amqp_url")
    return url, f"sqlite:///{tmp_path}/store.db", {}


@contextlib.contextmanager
def running(path: Path, registry: CollectorRegistry | None = None, **options: Any):
    service = HubService.from_config(load(path), **options)
    service.start()
    try:
        service.reloader(metrics=ReloadMetrics(registry or CollectorRegistry()))
        yield service
    finally:
        service.stop(timeout=10)


def send(service: HubService, type_: str, n: int) -> None:
    service.hub.send(type_, {"n": n}, tenant=TENANT)


# -- traffic through a reload -------------------------------------------------------------


def test_traffic_through_a_reload_of_a_changed_route_and_connector_is_processed_exactly_once(
        tmp_path, ledger, backend):
    broker, store, options = backend
    prefix = "rl" + uuid.uuid4().hex[:8]
    path = write(tmp_path / "config.yaml", config(ledger, broker, store, prefix=prefix))
    total = 300
    with running(path, **options) as service:
        sent = threading.Event()

        def sender() -> None:
            for n in range(total):
                send(service, "test.forward", n)
            sent.set()

        thread = threading.Thread(target=sender)
        thread.start()
        ledger.until(lambda: len(ledger.count()) >= 20)  # under way on the old route
        write(path, config(ledger, broker, store, prefix=prefix, version="v2", tag="v2"))
        answer = service.reload()
        assert answer.applied, answer.problems
        reloaded_at = len(ledger.calls)
        thread.join(60)
        assert sent.is_set()
        ledger.until(lambda: len(ledger.count()) == total)
        time.sleep(0.3)  # a duplicate would come now, not later: the queues are empty

    counts = ledger.count()
    assert sorted(counts) == list(range(total))
    assert set(counts.values()) == {1}, [n for n, c in counts.items() if c > 1]
    # Each call went through the connector of its own route's version.
    pairs = collections.Counter((c["payload"]["version"], c["tag"]) for c in ledger.calls)
    assert set(pairs) == {("v1", "v1"), ("v2", "v2")}
    assert reloaded_at < total  # the reload came in the middle of the traffic
    assert ledger.closed.count("v1") == 1 and ledger.opened.count("v2") == 1
    assert {(c["part"], c["name"], c["change"]) for c in answer.changes} >= {
        ("route", "forward", "changed"), ("connector", "dept", "changed")}


def test_an_unchanged_routes_message_in_flight_finishes_undisturbed_during_a_reload(
        tmp_path, ledger):
    path = write(tmp_path / "config.yaml",
                 config(ledger, f"sqla+sqlite:///{tmp_path}/b.db", f"sqlite:///{tmp_path}/s.db"))
    with running(path) as service:
        steady = service.hub.routes["steady"]
        send(service, "test.steady", 7)
        assert ledger.entered.wait(30)  # its call is under way, held at the gate

        write(path, config(ledger, f"sqla+sqlite:///{tmp_path}/b.db",
                           f"sqlite:///{tmp_path}/s.db", version="v2"))
        answer = service.reload()  # returns while the steady message is still in flight
        assert answer.applied, answer.problems
        assert [c["name"] for c in answer.changes if c["part"] == "route"] == ["forward"]
        assert ledger.count("wait") == {}  # not finished, not cut off

        ledger.gate.set()
        ledger.until(lambda: ledger.count("wait") == {7: 1})
        send(service, "test.steady", 8)
        ledger.until(lambda: ledger.count("wait") == {7: 1, 8: 1})
        assert service.hub.routes["steady"] is steady
        assert ledger.opened.count("slow") == 1 and "slow" not in ledger.closed


# -- refused: nothing changes ----------------------------------------------------------------

INVALID = """\
tenant: "320684"
broker: {{url: "{broker}", prefix: rl}}
store: {{url: "{store}"}}
inbound: {{enabled: false}}
connectors:
  dept: {{type: tally, ledger: {ledger}, tag: v2}}
  slow: {{type: tally, ledger: {ledger}, tag: slow}}
routes:
  forward:
    from: test.forward
    concurency: 2
    steps:
      - to: {{connector: dpet, operation: put}}
"""


def test_an_invalid_config_leaves_the_running_hub_untouched_and_reports_every_problem(
        tmp_path, ledger):
    broker, store = f"sqla+sqlite:///{tmp_path}/b.db", f"sqlite:///{tmp_path}/s.db"
    path = write(tmp_path / "config.yaml", config(ledger, broker, store))
    registry = CollectorRegistry()
    with running(path, registry) as service:
        routes, connectors = dict(service.hub.routes), dict(service.hub.connectors)
        before = registry.get_sample_value("bdchub_config_info", {
            "sha256": _sha(path), "file": str(path)})
        path.write_text(INVALID.format(broker=broker, store=store, ledger=ledger.name),
                        encoding="utf-8")
        answer = service.reload()
        assert (answer.status, answer.reason) == ("refused", "invalid")
        where = [p.split(": ", 1)[0] for p in answer.problems]
        assert f"{path}:11:5" in where  # concurency
        assert any(w.startswith(f"{path}:13:") for w in where)  # dpet
        assert len(answer.problems) >= 2
        # The hub goes on as it was: same routes, same open connectors, same answers.
        assert service.hub.routes == routes and all(
            service.hub.routes[n] is routes[n] for n in routes)
        assert all(service.hub.connectors[n] is connectors[n] for n in connectors)
        assert ledger.closed == []
        send(service, "test.forward", 1)
        ledger.until(lambda: ledger.count() == {1: 1})
        assert ledger.calls[-1]["payload"]["version"] == "v1"
        assert registry.get_sample_value("bdchub_config_last_reload_successful") == 0
        assert registry.get_sample_value("bdchub_config_reloads_total",
                                         {"result": "refused"}) == 1
        assert before == 1 and registry.get_sample_value("bdchub_config_info", {
            "sha256": _sha(path), "file": str(path)}) is None


def test_a_connector_that_cannot_open_refuses_the_reload_and_the_old_one_stays(
        tmp_path, ledger):
    broker, store = f"sqla+sqlite:///{tmp_path}/b.db", f"sqlite:///{tmp_path}/s.db"
    path = write(tmp_path / "config.yaml", config(ledger, broker, store))
    with running(path) as service:
        old = service.hub.connectors["dept"]
        changed = config(ledger, broker, store, version="v2", tag="v2")
        changed["connectors"]["dept"]["fail_open"] = True
        write(path, changed)
        answer = service.reload()
        assert (answer.status, answer.reason) == ("refused", "failed")
        assert len(answer.problems) == 1 and "dept" in answer.problems[0]
        assert "connection refused" in answer.problems[0]
        assert service.hub.connectors["dept"] is old and "v1" not in ledger.closed
        assert ledger.closed == ["v2"]  # what the refused reload built is not left open
        send(service, "test.forward", 3)
        ledger.until(lambda: ledger.count() == {3: 1})
        assert ledger.calls[-1]["tag"] == "v1"


@pytest.mark.parametrize("change, where", [
    (lambda c: c["broker"].update(prefix="other"), "broker"),
    (lambda c: c.update(tenant="320685"), "tenant"),
    (lambda c: c["inbound"].update(listen={"port": 9999}), "inbound.listen"),
])
def test_what_is_read_only_at_start_refuses_the_reload_naming_it(tmp_path, ledger, change,
                                                                  where):
    broker, store = f"sqla+sqlite:///{tmp_path}/b.db", f"sqlite:///{tmp_path}/s.db"
    path = write(tmp_path / "config.yaml", config(ledger, broker, store))
    with running(path) as service:
        routes = dict(service.hub.routes)
        new = config(ledger, broker, store, version="v2")
        change(new)
        write(path, new)
        answer = service.reload()
        assert (answer.status, answer.reason) == ("refused", "restart")
        assert len(answer.problems) == 1
        assert answer.problems[0].startswith(f"{path}:")
        assert f"{where}: changed" in answer.problems[0] and "restart" in answer.problems[0]
        assert all(service.hub.routes[n] is routes[n] for n in routes)  # v2 not applied


def test_a_route_that_does_not_drain_in_time_is_taken_up_again_and_nothing_changes(
        tmp_path, ledger):
    broker, store = f"sqla+sqlite:///{tmp_path}/b.db", f"sqlite:///{tmp_path}/s.db"
    path = write(tmp_path / "config.yaml", config(ledger, broker, store))
    with running(path) as service:
        service._reloader.drain_timeout = 0.3
        steady = service.hub.routes["steady"]
        send(service, "test.steady", 1)
        assert ledger.entered.wait(30)
        changed = config(ledger, broker, store)
        changed["routes"]["steady"]["concurrency"] = 3
        write(path, changed)
        answer = service.reload()
        assert (answer.status, answer.reason) == ("refused", "failed")
        assert "steady" in answer.problems[0]
        assert service.hub.routes["steady"] is steady
        ledger.gate.set()
        send(service, "test.steady", 2)  # the old route takes its messages again
        ledger.until(lambda: ledger.count("wait") == {1: 1, 2: 1})


# -- added and removed routes ----------------------------------------------------------------


def test_an_added_route_starts_and_a_removed_ones_messages_wait_in_its_queue(tmp_path, ledger):
    broker, store = f"sqla+sqlite:///{tmp_path}/b.db", f"sqlite:///{tmp_path}/s.db"
    path = write(tmp_path / "config.yaml", config(ledger, broker, store))
    ledger.gate.set()
    with running(path) as service:
        write(path, config(ledger, broker, store, steady=False, extra=True))
        answer = service.reload()
        assert answer.applied, answer.problems
        changes = {(c["name"], c["change"]) for c in answer.changes if c["part"] == "route"}
        assert changes == {("steady", "removed"), ("extra", "added")}
        send(service, "test.extra", 5)
        send(service, "test.steady", 6)
        ledger.until(lambda: ledger.count() == {5: 1})
        ledger.until(lambda: service.hub.broker.queue_size("rl.route.steady") == 1)
        assert ledger.count("wait") == {}

        # Back again, the route takes what waited for it.
        write(path, config(ledger, broker, store, extra=True))
        assert service.reload().applied
        ledger.until(lambda: ledger.count("wait") == {6: 1})


def _sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _entry(folder: Path, pid: int) -> dict[str, Any]:
    return json.loads((folder / f"{pid}.json").read_text(encoding="utf-8"))


# -- hub run: SIGHUP and hub reload ----------------------------------------------------------


class Department:
    """A REST endpoint on loopback that counts what it is sent."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        received = self.received = []
        lock = self.lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with lock:
                    received.append(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def versions(self) -> dict[int, list[str]]:
        with self.lock:
            found: dict[int, list[str]] = {}
            for body in self.received:
                found.setdefault(body["n"], []).append(body["version"])
            return found

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def department():
    found = Department()
    yield found
    found.close()


def run_config(tmp_path: Path, department: Department, *, version: str, port: int,
               processes: int = 1, inbound: bool = True) -> dict[str, Any]:
    return {
        "tenant": TENANT,
        "broker": {"url": f"sqla+sqlite:///{tmp_path}/broker.db", "prefix": "rl"},
        "store": {"url": f"sqlite:///{tmp_path}/store.db"},
        "inbound": ({"listen": {"host": "127.0.0.1", "port": port, "processes": processes,
                                "threads": 2}} if inbound else {"enabled": False}),
        "connectors": {"dept": {"type": "rest", "base_url": department.url,
                                "operations": {"put": {"method": "POST", "path": "/put"}}}},
        "routes": {"forward": {"from": "test.forward", "steps": [
            {"to": {"connector": "dept", "operation": "put",
                    "payload": {"n": "n", "version": f"'{version}'"}}}]}},
    }


def environ() -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if k != "HUB_DATA_DIR"}
    env["HUB_LANG"] = "en"
    return env


@contextlib.contextmanager
def hub_run(path: Path):
    """``hub run -c path`` until the test is done; SIGTERM must then end it cleanly."""
    import signal
    import subprocess
    import sys

    from tests.app.test_run import ROOT, Output

    errors = (path.parent / "stderr.txt").open("w")
    proc = subprocess.Popen([sys.executable, str(ROOT / "hub.py"), "run", "-c", str(path),
                             "--log-level", "INFO"], cwd=path.parent, env=environ(),
                            stdout=subprocess.PIPE, stderr=errors, text=True)
    output = Output(proc)
    try:
        output.until("stop with Ctrl-C or SIGTERM", timeout=60)
        yield proc, output
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        finally:
            errors.close()
    assert proc.returncode == 0, (path.parent / "stderr.txt").read_text()[-3000:]


def hub_reload(path: Path) -> Any:
    import subprocess
    import sys

    from tests.app.test_run import ROOT

    return subprocess.run([sys.executable, str(ROOT / "hub.py"), "reload", "-c", str(path),
                           "--timeout", "60"], capture_output=True, text=True, timeout=120,
                          env=environ())


def publisher(path: Path):
    """A hub of the test's own on the same broker and store (as ``hub send``)."""
    from bdchub.routes.runtime import Hub

    return Hub.from_config(load(path), build_connectors=False, create_key=False)


def until(what, deadline: float = 60.0) -> None:
    end = time.monotonic() + deadline
    while not what():
        assert time.monotonic() < end, "gave up waiting"
        time.sleep(0.05)


def test_sighup_reloads_a_running_hub_run_and_hub_reload_answers_for_it(tmp_path, department):
    import signal

    from bdchub.app.reload import RUN_FOLDER

    path = write(tmp_path / "config.yaml",
                 run_config(tmp_path, department, version="v1", port=0, inbound=False))
    folder = tmp_path / "data" / RUN_FOLDER
    with hub_run(path) as (proc, _output):
        hub = publisher(path)
        try:
            hub.send("test.forward", {"n": 1}, tenant=TENANT)
            until(lambda: department.versions().get(1) == ["v1"])

            write(path, run_config(tmp_path, department, version="v2", port=0, inbound=False))
            proc.send_signal(signal.SIGHUP)
            until(lambda: _entry(folder, proc.pid)["seq"] == 1)
            answer = _entry(folder, proc.pid)["answer"]
            assert answer["status"] == "applied" and answer["sha256"] == _sha(path)
            assert proc.poll() is None  # SIGHUP no longer ends it
            hub.send("test.forward", {"n": 2}, tenant=TENANT)
            until(lambda: department.versions().get(2) == ["v2"])

            path.write_text(path.read_text().replace("operation: put", "operation: putt"),
                            encoding="utf-8")
            refused = hub_reload(path)
            assert refused.returncode == 2, refused.stderr
            assert "not reloaded" in refused.stderr and f"{path}:" in refused.stderr
            assert "putt" in refused.stderr

            write(path, run_config(tmp_path, department, version="v3", port=0, inbound=False))
            applied = hub_reload(path)
            assert applied.returncode == 0, applied.stderr
            assert f"reloaded by process {proc.pid}" in applied.stdout
            assert "route forward: swapped after its messages in flight" in applied.stdout
            hub.send("test.forward", {"n": 3}, tenant=TENANT)
            until(lambda: department.versions().get(3) == ["v3"])
        finally:
            hub.close()
    assert department.versions() == {1: ["v1"], 2: ["v2"], 3: ["v3"]}
    assert not (folder / f"{proc.pid}.json").exists()  # a clean stop leaves no entry


def test_with_two_processes_hub_reload_reloads_both(tmp_path, department):
    import requests

    from bdchub.app.reload import RUN_FOLDER
    from bdchub.demo.environment import free_port

    port = free_port()
    path = write(tmp_path / "config.yaml",
                 run_config(tmp_path, department, version="v1", port=port, processes=2))
    folder = tmp_path / "data" / RUN_FOLDER
    with hub_run(path) as (proc, _output):
        def children() -> list[int]:
            return sorted(int(p.stem) for p in folder.glob("*.json")
                          if _entry(folder, int(p.stem)).get("parent") == proc.pid)

        until(lambda: len(children()) == 2)  # they build one after the other
        write(path, run_config(tmp_path, department, version="v2", port=port, processes=2))
        answer = hub_reload(path)
        assert answer.returncode == 0, answer.stderr
        pids = children()
        assert f"reloaded by process {pids[0]}, {pids[1]} (sha256 {_sha(path)})" in answer.stdout
        assert all(_entry(folder, pid)["answer"]["sha256"] == _sha(path) for pid in pids)

        # Whichever process answers, it shows the new file's hash.
        for _ in range(6):
            metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10,
                                   headers={"Connection": "close"}).text
            assert f'bdchub_config_info{{file="{path}",sha256="{_sha(path)}"}} 1.0' in metrics
        hub = publisher(path)
        try:
            for n in range(20):
                hub.send("test.forward", {"n": n}, tenant=TENANT)
            until(lambda: len(department.versions()) == 20)
        finally:
            hub.close()
    assert department.versions() == {n: ["v2"] for n in range(20)}


def test_the_inbound_application_is_rebuilt_and_swapped_behind_the_running_server(
        tmp_path, ledger):
    import requests

    from bdchub.demo.environment import free_port

    broker, store = f"sqla+sqlite:///{tmp_path}/b.db", f"sqlite:///{tmp_path}/s.db"
    port = free_port()

    def with_endpoints(version: str, *paths: str) -> dict[str, Any]:
        found = config(ledger, broker, store, version=version, steady=False)
        found["inbound"] = {"listen": {"port": port},
                            "endpoints": [{"path": f"/api/v1/{p}", "route": p, "auth": "none"}
                                          for p in paths]}
        for p in paths:
            found["routes"][p] = {"from": {"endpoint": {"path": f"/api/v1/{p}"}}, "steps": [
                {"to": {"connector": "dept", "operation": "put",
                        "payload": {"n": "n", "version": f"'{version}'"}}}]}
        return found

    path = write(tmp_path / "config.yaml", with_endpoints("v1", "ping"))
    url = f"http://127.0.0.1:{port}/api/v1"
    with running(path) as service:
        server = service.server
        assert requests.post(f"{url}/ping", json={"n": 1}, timeout=10).status_code == 200
        assert requests.post(f"{url}/pong", json={"n": 2}, timeout=10).status_code == 404

        write(path, with_endpoints("v2", "ping", "pong"))
        answer = service.reload()
        assert answer.applied, answer.problems
        assert {"part": "inbound", "name": "inbound", "change": "rebuilt"} in answer.changes
        assert requests.post(f"{url}/ping", json={"n": 3}, timeout=10).status_code == 200
        assert requests.post(f"{url}/pong", json={"n": 4}, timeout=10).status_code == 200
        assert service.server is server  # the same server, listening all along
    assert {n: c["payload"]["version"] for c in ledger.calls for n in [c["payload"]["n"]]} == {
        1: "v1", 3: "v2", 4: "v2"}


# -- the broker under a reload: one queue stopped, the others served -------------------------


@pytest.fixture(params=["memory", "sqlite", "amqp"])
def broker(request, tmp_path):
    from bdchub.core.broker import broker_from_url

    if request.param == "memory":
        found = broker_from_url("memory://")
        found.start_thread()
    elif request.param == "sqlite":
        found = broker_from_url(f"sqla+sqlite:///{tmp_path}/b.db", prefix="c")
    else:
        found = broker_from_url(request.getfixturevalue("amqp_url"),
                                prefix="c" + uuid.uuid4().hex[:8])
    yield found
    found.stop(timeout=5)
    found.close()


def test_a_cancelled_queue_waits_while_the_others_are_served_and_resumes_where_it_was(broker):
    queue_a, queue_b = f"{uuid.uuid4().hex[:6]}.a", f"{uuid.uuid4().hex[:6]}.b"
    broker.declare_queue(queue_a, ["t.a"])
    broker.declare_queue(queue_b, ["t.b"])
    held: list[Any] = []  # deliveries of a, settled by the test
    served: list[bytes] = []

    def serve(delivery: Any) -> None:
        served.append(delivery.body)
        delivery.ack()

    broker.consume({queue_a: held.append, queue_b: serve}, {queue_a: 4, queue_b: 4})
    broker.publish(b"a1", "t.a")
    until(lambda: len(held) == 1)

    broker.cancel(queue_a)
    broker.publish(b"a2", "t.a")
    broker.publish(b"b1", "t.b")
    until(lambda: served == [b"b1"])  # the other queue goes on
    until(lambda: broker.queue_size(queue_a) == 1)  # a2 waits in its queue
    held[0].ack()  # what was handed out before still settles

    broker.consume({queue_a: serve}, {queue_a: 4})
    until(lambda: served == [b"b1", b"a2"])
    until(lambda: broker.queue_size(queue_a) == 0)
    broker.publish(b"b2", "t.b")
    until(lambda: served == [b"b1", b"a2", b"b2"])  # a1 was settled: never again
    assert [d.body for d in held] == [b"a1"]


def test_a_refused_reload_is_logged_in_chinese_by_default_with_every_problem(
        tmp_path, ledger, caplog, monkeypatch):
    from bdchub.core import i18n

    broker, store = f"sqla+sqlite:///{tmp_path}/b.db", f"sqlite:///{tmp_path}/s.db"
    path = write(tmp_path / "config.yaml", config(ledger, broker, store))
    with running(path) as service:
        path.write_text(INVALID.format(broker=broker, store=store, ledger=ledger.name),
                        encoding="utf-8")
        monkeypatch.delenv("HUB_LANG", raising=False)
        i18n.set_language(None)
        with caplog.at_level("ERROR", logger="bdchub.reload"):
            answer = service.reload()
    lines = [r.getMessage() for r in caplog.records if r.name == "bdchub.reload"]
    assert "未重新加载" in lines[0] and str(path) in lines[0]
    assert [line.strip() for line in lines[1:]] == answer.problems
