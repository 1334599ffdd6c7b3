"""Reliability of route execution, on the embedded default (kombu's SQL transport on
SQLite, SQLite store) and on real RabbitMQ with PostgreSQL.

- a worker process killed with SIGKILL mid-flow and restarted: every
  application completes, none is lost, duplicates are absorbed;
- RabbitMQ stopped and restarted under load: none lost;
- the tax endpoint down for a while: its messages park and complete when it
  returns, while another route keeps flowing;
- a poison message goes to the dead letters with its reason and is replayed
  after the fix.

Endpoints are ``tests.routes.sink`` doubles that record each idempotency key
once (as an endpoint honouring idempotency keys does), so "exactly once in
effect" is one key per application and operation.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import yaml

from bdchub.core.config import load
from bdchub.routes.runtime import Hub
from tests.conftest import fresh_pg_database
from tests.routes import sink

ROOT = Path(__file__).resolve().parents[2]
TENANT = "320684"


@pytest.fixture(autouse=True)
def _sink_type():
    sink.register()


def _pg_database(postgres_url: str) -> str:
    return fresh_pg_database(postgres_url)


@pytest.fixture(params=["embedded", pytest.param("rabbitmq", marks=pytest.mark.integration)])
def backend(request, tmp_path):
    """(broker url, store url, queue prefix) of the backend under test."""
    if request.param == "embedded":
        return (f"sqla+sqlite:///{tmp_path / 'broker.db'}", f"sqlite:///{tmp_path / 'store.db'}",
                "bdchub")
    amqp = request.getfixturevalue("amqp_url")
    pg = request.getfixturevalue("postgres_url")
    return amqp, _pg_database(pg), f"t{uuid.uuid4().hex[:10]}"


def _config(tmp_path: Path, broker: str, store: str, routes: dict, sinks: dict) -> Path:
    connectors = {name: {"type": "testsink", "db": str(tmp_path / f"{name}.db"),
                         "retry": {"attempts": 1}, "breaker": {"failures": 100000},
                         **extra} for name, extra in sinks.items()}
    config = {"tenant": TENANT, "broker": {"url": broker}, "store": {"url": store},
              "connectors": connectors, "routes": routes}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    return path


def _wait(predicate, timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def _application(no: str) -> dict:
    return {"business_no": no, "tenant": TENANT, "registration_type": "200",
            "applicants": [{"name": "李四", "id_type": "1", "id_number": "320684199001011236"}]}


FLOW = {
    "intake": {"from": "application.submitted", "concurrency": 4,
               "on_error": {"retry": {"attempts": 1}, "park_for": 0.5, "park_max": 1000},
               "steps": [{"to": {"connector": "legacy", "operation": "submit"}},
                         {"publish": "application.forwarded"}]},
    "forward": {"from": "application.forwarded", "concurrency": 4,
                "on_error": {"retry": {"attempts": 1}, "park_for": 0.5, "park_max": 1000},
                "steps": [{"to": {"connector": "legacy", "operation": "final"}}]},
}


class Worker:
    def __init__(self, config: Path, prefix: str, log: Path):
        self.log = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.routes.worker", str(config), "--prefix", prefix,
             "--lease", "2"], cwd=ROOT, stdout=subprocess.PIPE, stderr=self.log,
            env={**os.environ, "PYTHONPATH": str(ROOT)})
        line = b""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and b"READY" not in line:
            line = self.proc.stdout.readline()
            if not line and self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}; see {log}")
        assert b"READY" in line, "worker did not get ready"

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()


def test_worker_killed_mid_flow_restarts_and_completes_every_application_once(backend, tmp_path):
    broker, store, prefix = backend
    config = _config(tmp_path, broker, store, FLOW, {"legacy": {"delay": 0.01}})
    db = tmp_path / "legacy.db"
    publisher = Hub.from_config(load(config), prefix=prefix)
    numbers = [f"K-{i:04d}" for i in range(200)]
    try:
        for no in numbers:
            publisher.send("application.submitted", _application(no))
        first = Worker(config, prefix, tmp_path / "worker.log")
        try:
            _wait(lambda: len(sink.done(db, "final")) >= 40, 60, "the flow to get going")
            first.kill9()
        finally:
            first.stop()
        assert len(sink.done(db, "final")) < len(numbers), "killed too late to prove anything"
        second = Worker(config, prefix, tmp_path / "worker.log")
        try:
            _wait(lambda: len(sink.done(db, "final")) == len(numbers), 120,
                  "every application to complete after the restart")
            _wait(lambda: publisher.store.count("processed", route="forward") == len(numbers),
                  30, "every outcome to be recorded")
        finally:
            second.stop()
        submitted, final = sink.done(db, "submit"), sink.done(db, "final")
        # Exactly once in effect: one idempotency key per application and operation.
        assert set(final) == set(numbers) and set(final.values()) == {1}
        assert set(submitted) == set(numbers) and set(submitted.values()) == {1}
        assert publisher.store.count("processed", route="intake") == len(numbers)
        assert publisher.dlq_list() == []
        # Calls repeated after the kill (a redelivered message) hit the same keys.
        assert sink.total_calls(db, "final") >= len(numbers)
    finally:
        publisher.kill()


def _running_hub(config: Path, prefix: str, **kw) -> Hub:
    hub = Hub.from_config(load(config), prefix=prefix, tick_interval=0.1, redeliver_after=2.0,
                          visibility_timeout=2.0, **kw)
    hub.start()
    return hub


def test_tax_endpoint_down_parks_messages_that_complete_when_it_returns(backend, tmp_path):
    broker, store, prefix = backend
    routes = {
        "tax": {"from": "application.accepted",
                "on_error": {"retry": {"attempts": 1}, "park_for": 0.5, "park_max": 10000},
                "steps": [{"to": {"connector": "tax", "operation": "declare"}}]},
        "notify": {"from": "progress.updated",
                   "steps": [{"to": {"connector": "window", "operation": "push"}}]},
    }
    config = _config(tmp_path, broker, store, routes, {"tax": {}, "window": {}})
    down = Path(str(tmp_path / "tax.db") + ".down")
    down.touch()
    hub = _running_hub(config, prefix)
    try:
        for i in range(20):
            hub.send("application.accepted", _application(f"T-{i:02d}"))
        for i in range(60):
            hub.send("progress.updated", {"stage": "acceptance"}, business_no=f"W-{i:02d}")
        _wait(lambda: len(sink.done(tmp_path / "window.db", "push")) == 60, 60,
              "the healthy route to deliver while tax is down")
        _wait(lambda: hub.store.count("parked", route="tax") > 0, 30, "tax messages to park")
        assert sink.done(tmp_path / "tax.db", "declare") == {}
        assert hub.dlq_list() == []
        down.unlink()  # the endpoint is back
        _wait(lambda: len(sink.done(tmp_path / "tax.db", "declare")) == 20, 60,
              "parked messages to complete")
        assert set(sink.done(tmp_path / "tax.db", "declare").values()) == {1}
        assert hub.dlq_list() == []
        _wait(lambda: hub.store.count("parked") == 0, 10, "the parked rows to go")
    finally:
        hub.stop(timeout=10)


def test_poison_message_is_dead_lettered_with_reason_and_replayed_after_fix(backend, tmp_path):
    broker, store, prefix = backend
    config = _config(tmp_path, broker, store, FLOW, {"legacy": {}})
    db = tmp_path / "legacy.db"
    Path(str(db) + ".reject").write_text("P-03\n")
    hub = _running_hub(config, prefix)
    try:
        for i in range(10):
            hub.send("application.submitted", _application(f"P-{i:02d}"))
        hub.broker.publish(b'{"type": "application.submitted", "body": ', "application.submitted")
        _wait(lambda: len(sink.done(db, "final")) == 9 and len(hub.dlq_list()) == 2, 60,
              "nine to complete and two dead letters")
        dead = {d["reason"]: d for d in hub.dlq_list()}
        poison = dead["permanent"]
        assert (poison["route"], poison["step"], poison["business_no"]) == ("intake", "0:to", "P-03")
        assert "bad unit code" in poison["last_error"]
        assert dead["malformed"]["route"] == "intake"
        Path(str(db) + ".reject").unlink()  # the fix
        hub.dlq_replay(poison["id"])
        _wait(lambda: len(sink.done(db, "final")) == 10, 60, "the replayed message to complete")
        assert [d["reason"] for d in hub.dlq_list()] == ["malformed"]
        assert hub.dlq_drop(dead["malformed"]["id"]) and hub.dlq_list() == []
    finally:
        hub.stop(timeout=10)


@pytest.mark.integration
def test_rabbitmq_stopped_and_restarted_under_load_loses_nothing(rabbit_node, tmp_path):
    config = _config(tmp_path, rabbit_node.url, f"sqlite:///{tmp_path / 'store.db'}", FLOW,
                     {"legacy": {}})
    db = tmp_path / "legacy.db"
    hub = _running_hub(config, "bdchub", publish_timeout=180)
    numbers = [f"R-{i:04d}" for i in range(300)]
    sent: list[str] = []
    errors: list[BaseException] = []

    def produce() -> None:
        try:
            for no in numbers:
                hub.send("application.submitted", _application(no))
                sent.append(no)
                time.sleep(0.005)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    producer = threading.Thread(target=produce)
    try:
        producer.start()
        _wait(lambda: len(sent) >= 80, 60, "load to build up")
        rabbit_node.stop()
        time.sleep(1)
        rabbit_node.start()
        producer.join(timeout=240)
        assert not producer.is_alive() and not errors, errors
        _wait(lambda: len(sink.done(db, "final")) == len(numbers), 120,
              "every application to complete after the broker restart")
        final = sink.done(db, "final")
        assert set(final) == set(numbers) and set(final.values()) == {1}
        assert hub.dlq_list() == []
    finally:
        hub.stop(timeout=10)
