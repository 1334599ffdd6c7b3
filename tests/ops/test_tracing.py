"""Tracing with OpenTelemetry (core.tracing): spans of route runs, steps, outbound
calls and inbound requests, linked by W3C ``traceparent`` on the HTTP calls and in
the envelopes; off unless the config turns it on, and then never imported.

Spans are read from the SDK's in-memory exporter, added to the tracing the hub
configured (``exporter: none``, so nothing leaves the test)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import requests
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bdchub.core import tracing
from bdchub.core.config import check_text
from bdchub.core.errors import ConfigError
from bdchub.routes.runtime import Hub
from tests.connectors.loopback import Department
from tests.ops.tracing_rig import BUSINESS_NO, TENANT, application, config

ROOT = Path(__file__).resolve().parents[2]
# A caller's span: version 00, trace id, span id, sampled.
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
CALLER = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"


@pytest.fixture
def department():
    """The connector tests' department on loopback: every request kept, faults on demand."""
    dept = Department().start()
    yield dept
    dept.stop()


@pytest.fixture
def spans():
    """The spans the hub's tracing ends, once a hub of the test has configured it."""
    exporter = InMemorySpanExporter()

    def attach() -> InMemorySpanExporter:
        assert tracing.ACTIVE is not None, "the hub did not turn tracing on"
        tracing.ACTIVE.add_processor(SimpleSpanProcessor(exporter))
        return exporter

    yield attach
    tracing.install(None)


def by_name(finished) -> dict:
    found: dict = {}
    for span in finished:
        found.setdefault(span.name, []).append(span)
    return found


def traceparent_of(span) -> str:
    ctx = span.get_span_context()
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


def parent_of(span) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def submitted(block: dict, spans) -> InMemorySpanExporter:
    """The spans of one application taken by a hub of ``block`` (in-memory broker)."""
    hub = Hub.from_config(block)
    exporter = spans()
    try:
        hub.send("application.submitted", application())
        hub.run_until_idle()
    finally:
        hub.close()
    return exporter


# -- a route's run, its steps and its outbound call ----------------------------------

def test_a_route_run_is_a_span_with_one_child_per_step_and_the_call_under_its_step(
        tmp_path, department, spans):
    exporter = submitted(config(tmp_path, department.url), spans)
    named = by_name(exporter.get_finished_spans())

    [run] = named["route registration"]
    steps = [named[f"step {label}"][0] for label in ("0:map", "1:enrich", "2:publish")]
    [call] = named["call registry.register"]
    assert run.parent is None  # nothing upstream: the run starts the trace
    assert [parent_of(s) for s in steps] == [run.context.span_id] * 3
    assert parent_of(call) == steps[1].context.span_id
    assert {s.context.trace_id for s in (run, *steps, call)} == {run.context.trace_id}

    assert run.attributes["bdchub.route"] == "registration"
    assert run.attributes["bdchub.outcome"] == "completed"
    assert run.attributes["bdchub.tenant"] == TENANT
    assert run.attributes["bdchub.message.type"] == "application.submitted"
    assert run.attributes["bdchub.business_no"] != BUSINESS_NO  # masked, as in logs
    assert call.attributes["bdchub.connector"] == "registry"
    assert call.attributes["bdchub.operation"] == "register"
    assert call.attributes["http.response.status_code"] == 201
    assert call.attributes["bdchub.outcome"] == "ok"
    # What the application says about people is in no span.
    every_value = json.dumps([dict(s.attributes) for s in exporter.get_finished_spans()],
                             ensure_ascii=False)
    assert "张三" not in every_value and "110105199001011234" not in every_value


def test_the_department_receives_the_traceparent_of_the_calls_span(tmp_path, department, spans):
    exporter = submitted(config(tmp_path, department.url), spans)
    [call] = by_name(exporter.get_finished_spans())["call registry.register"]
    [request] = department.received
    assert request["headers"]["traceparent"] == traceparent_of(call)


def test_a_message_a_step_publishes_continues_the_trace_in_the_route_that_takes_it(
        tmp_path, department, spans):
    exporter = submitted(config(tmp_path, department.url), spans)
    named = by_name(exporter.get_finished_spans())
    [first] = named["route registration"]
    [publishing] = named["step 2:publish"]
    [second] = named["route notification"]
    assert second.context.trace_id == first.context.trace_id
    assert parent_of(second) == publishing.context.span_id


@pytest.mark.integration
def test_the_trace_goes_through_rabbitmq_to_another_hub(tmp_path, department, spans,
                                                       amqp_url):
    """Two hubs on one RabbitMQ, as two services of a deployment, each running one of
    the routes: only the message carries the trace from the one to the other."""
    prefix = f"trace{time.monotonic_ns()}"
    hubs = []
    for name in ("registration", "notification"):
        # One store and data key, as the services of one deployment share them.
        block = config(tmp_path, department.url, broker=amqp_url)
        block["routes"] = {name: block["routes"][name]}
        hubs.append(Hub.from_config(block, prefix=prefix))
    exporter = spans()
    try:
        for hub in reversed(hubs):
            hub.start()
        hubs[0].send("application.submitted", application())
        for _ in range(300):  # bounded: the second hub's worker takes it within seconds
            if "route notification" in by_name(exporter.get_finished_spans()):
                break
            time.sleep(0.05)
    finally:
        for hub in hubs:
            hub.stop(timeout=5)
    named = by_name(exporter.get_finished_spans())
    [published] = named["step 2:publish"]
    [taken] = named["route notification"]
    assert taken.context.trace_id == published.context.trace_id
    assert parent_of(taken) == published.context.span_id


def test_failed_attempts_are_events_of_the_one_call_span(tmp_path, spans):
    """A department that refuses connections: one span for the call, its attempts as
    events, the error's class (never its text) as the status."""
    block = config(tmp_path, "http://127.0.0.1:9")
    block["connectors"]["registry"]["retry"] = {"attempts": 2, "backoff": 0.01,
                                                "max_backoff": 0.01, "jitter": 0}
    block["routes"] = {"registration": block["routes"]["registration"]}
    named = by_name(submitted(block, spans).get_finished_spans())
    calls = named["call registry.register"]
    # The route retries the step (its own policy), each time one logical call.
    assert calls and all(len(c.events) == 2 for c in calls)
    assert {e.name for c in calls for e in c.events} == {"attempt failed"}
    assert calls[0].attributes["bdchub.outcome"] == "error"
    assert calls[0].status.description == calls[0].attributes["error.type"]
    [run] = named["route registration"]
    assert run.attributes["bdchub.outcome"] == "parked"


def test_every_attempt_of_a_soap_call_carries_the_traceparent_of_the_one_call_span(
        department, spans):
    """SOAP through zeep, retried once after a 503: both requests say the same call."""
    from prometheus_client import CollectorRegistry

    from bdchub.connectors import CallContext
    from bdchub.connectors.metrics import ConnectorMetrics
    from tests.connectors.targets import SoapLoopback

    tracing.configure({"enabled": True, "exporter": "none"})
    exporter = spans()
    department.set(errors=1, status=503)
    with SoapLoopback(department).connector(
            "tax", ConnectorMetrics(CollectorRegistry()),
            retry={"attempts": 2, "backoff": 0, "jitter": 0}) as conn:
        conn.call("check", {"contract_no": "HT-1"}, CallContext(business_no=BUSINESS_NO))
    [call] = exporter.get_finished_spans()
    sent = [r["headers"].get("traceparent") for r in department.received if r["path"] == "/soap"]
    assert sent == [traceparent_of(call)] * 2
    assert [(e.name, e.attributes["http.response.status_code"]) for e in call.events] == [
        ("attempt failed", 503)]
    assert call.attributes["http.response.status_code"] == 200
    assert call.attributes["bdchub.connector.type"] == "soap"


@pytest.mark.integration
def test_a_message_an_amqp_connector_publishes_carries_the_calls_traceparent(amqp_url, spans):
    import uuid

    import kombu
    from prometheus_client import CollectorRegistry

    from bdchub import connectors
    from bdchub.connectors.metrics import ConnectorMetrics

    tracing.configure({"enabled": True, "exporter": "none"})
    exporter = spans()
    queue = "trace-" + uuid.uuid4().hex[:10]
    block = {"type": "amqp", "url": amqp_url, "exchange": "bdc.province", "exchange_type": "topic",
             "routing_key": queue, "queue": queue, "timeout": 5, "retry": {"attempts": 1}}
    with connectors.build("province", block,
                          metrics=ConnectorMetrics(CollectorRegistry())) as conn:
        conn.call("publish", {"status": "登簿"}, connectors.CallContext(tenant=TENANT))
    [call] = exporter.get_finished_spans()
    with kombu.Connection(amqp_url) as raw:
        message = kombu.Queue(queue, durable=True)(raw.channel()).get(no_ack=True)
        raw.channel().queue_delete(queue)
    assert message.headers["traceparent"] == traceparent_of(call)


# -- inbound requests --------------------------------------------------------------

@pytest.fixture
def served(tmp_path, department, spans):
    from bdchub.web import loopserver
    from bdchub.web.app import create_app

    # Worker threads on a broker on disk: the queued request is taken as in hub run.
    block = config(tmp_path, department.url, broker=f"sqla+sqlite:///{tmp_path / 'broker.db'}")
    hub = Hub.from_config(block)
    exporter = spans()
    hub.start()
    server = loopserver.start(create_app(hub, block), "127.0.0.1", 0, threads=2)
    yield server, hub, exporter
    server.close()
    hub.stop(timeout=5)


def test_an_inbound_request_with_a_traceparent_is_the_parent_of_its_spans(served, department):
    server, _hub, exporter = served
    answer = requests.post(server.url + "/api/v1/verify", json={"business_no": BUSINESS_NO},
                           headers={"traceparent": CALLER}, timeout=10)
    assert answer.status_code == 200
    named = by_name(exporter.get_finished_spans())
    [inbound] = named["inbound POST /api/v1/verify"]
    [run] = named["route verify"]
    [call] = named["call registry.register"]
    assert f"{inbound.context.trace_id:032x}" == CALLER_TRACE
    assert f"{inbound.parent.span_id:016x}" == CALLER_SPAN and inbound.parent.is_remote
    assert parent_of(run) == inbound.context.span_id
    assert department.received[-1]["headers"]["traceparent"] == traceparent_of(call)
    assert inbound.attributes["http.response.status_code"] == 200
    assert inbound.attributes["http.route"] == "/api/v1/verify"


def test_a_queued_inbound_message_continues_the_requests_trace(served, department):
    server, _hub, exporter = served
    answer = requests.post(server.url + "/api/v1/notify", json=application(),
                           headers={"traceparent": CALLER}, timeout=10)
    assert answer.status_code == 202
    for _ in range(200):  # bounded: a worker takes the message within seconds
        if "route notification" in by_name(exporter.get_finished_spans()):
            break
        time.sleep(0.05)
    named = by_name(exporter.get_finished_spans())
    [inbound] = named["inbound POST /api/v1/notify"]
    [run] = named["route registration"]
    [downstream] = named["route notification"]
    assert parent_of(run) == inbound.context.span_id
    assert {f"{s.context.trace_id:032x}" for s in (inbound, run, downstream)} == {CALLER_TRACE}


# -- off -------------------------------------------------------------------------------

OFF = textwrap.dedent("""
    import json, sys
    from wsgiref.util import setup_testing_defaults
    from tests.connectors.loopback import Department
    from tests.ops.tracing_rig import application, config
    from bdchub.core import tracing
    from bdchub.routes.runtime import Hub
    from bdchub.web.app import create_app

    department = Department().start()
    block = config(__import__("pathlib").Path(sys.argv[1]), department.url, traced=False)
    hub = Hub.from_config(block)
    hub.send("application.submitted", application())
    hub.run_until_idle()
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/api/v1/verify",
               "HTTP_TRACEPARENT": %r, "CONTENT_TYPE": "application/json"}
    body = json.dumps({"business_no": "B"}).encode()
    environ["CONTENT_LENGTH"] = str(len(body))
    setup_testing_defaults(environ)
    environ["wsgi.input"] = __import__("io").BytesIO(body)
    statuses = []
    create_app(hub, block)(environ, lambda status, headers: statuses.append(status))
    print(json.dumps({
        "loaded": sorted(m for m in sys.modules if m.startswith("opentelemetry")),
        "active": tracing.ACTIVE is not None, "status": statuses,
        "traceparents": [r["headers"].get("traceparent") for r in department.received]}))
""") % CALLER


def test_with_tracing_off_nothing_is_traced_and_opentelemetry_is_never_imported(tmp_path):
    done = subprocess.run([sys.executable, "-c", OFF, str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["status"] == ["200 OK"]
    assert seen["traceparents"] == [None, None]  # the route's call and the request's
    assert seen == {**seen, "loaded": [], "active": False}


# -- the config ------------------------------------------------------------------------

BASE = 'tenant: "320684"\nconnectors: {}\nroutes: {}\n'


def test_unknown_and_wrong_tracing_keys_are_refused_at_their_line():
    with pytest.raises(ConfigError) as refused:
        check_text(BASE + "tracing:\n  enabled: true\n  sample_rate: 0.5\n"
                   "  exporter: jaeger\n  sample_ratio: 2\n", file="hub.yaml")
    text = str(refused.value)
    assert "hub.yaml:6:3: tracing.sample_rate: unknown key 'sample_rate'" in text
    assert "did you mean 'sample_ratio'" in text
    assert "hub.yaml:7:13: tracing.exporter: 'jaeger' is not one of: otlp, console, none" in text
    assert "hub.yaml:8:17: tracing.sample_ratio:" in text


def test_a_config_with_tracing_off_or_on_passes_the_check():
    check_text(BASE + "tracing: {enabled: false}\n")
    check_text(BASE + "tracing:\n  enabled: true\n  exporter: otlp\n"
                      "  endpoint: http://127.0.0.1:4318/v1/traces\n  sample_ratio: 0.25\n")


BLOCKED = textwrap.dedent("""
    import sys
    sys.modules["opentelemetry"] = None  # as if the tracing extra were not installed
    from bdchub.hub import main
    sys.exit(main(sys.argv[1:]))
""")


@pytest.mark.parametrize("command", ["check", "run"])
def test_enabled_tracing_without_the_packages_stops_hub_check_and_hub_run_naming_the_extra(
        tmp_path, command):
    path = tmp_path / "config.yaml"
    path.write_text(BASE + "tracing:\n  enabled: true\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-c", BLOCKED, command, "-c", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    said = done.stdout + done.stderr
    assert f"{path}:5:12: tracing.enabled:" in said
    assert "未安装 OpenTelemetry" in said  # Chinese by default
    assert "pip install 'bdc-hub[tracing]'" in said
