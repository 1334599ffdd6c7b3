"""The running hub's state as gauges read at scrape time (app.metrics, core.metrics):
queue depth, parked, waiting and dead letters per route, open breakers, build info;
a store that does not answer leaves its gauges out and says so, and the scrape answers."""

from __future__ import annotations

import time
from pathlib import Path

import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from bdchub.app.metrics import StateMetrics
from bdchub.app.service import HubService
from bdchub.core import metrics as core_metrics
from bdchub.core.config import load
from bdchub.core.errors import StoreError
from bdchub.demo.environment import free_port
from tests.app.test_status import _config as _status_config
from tests.routes.helpers import application


def config(tmp_path: Path, **extra) -> Path:
    """``hub status``'s test hub (tests/app/test_status.py): its tax endpoint is a loopback
    port nobody listens on, so its breaker opens at the first failure and the message
    parks; the archive route's connector answers. ``extra``: more top-level sections."""
    path = _status_config(tmp_path)
    doc = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**doc, **extra}, allow_unicode=True))
    return path


def samples(text: bytes | str) -> dict[tuple[str, tuple], float]:
    if isinstance(text, bytes):
        text = text.decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def wait(condition, what: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_a_scrape_shows_each_routes_parked_messages_the_open_breaker_and_the_build(tmp_path):
    service = HubService.from_config(load(config(tmp_path)), pollers=False)
    service.start()
    try:
        service.hub.send("application.submitted", application("M-1"))
        wait(lambda: service.hub.store.count("parked") == 1, "the message never parked")
        got = samples(core_metrics.exposition())
    finally:
        service.stop(timeout=10)

    assert got[("bdchub_route_parked_messages", (("route", "tax_declaration"),))] == 1
    # Every route has its gauges, at 0 before anything happens to it.
    assert got[("bdchub_route_parked_messages", (("route", "archive"),))] == 0
    assert got[("bdchub_route_dead_letter_messages", (("route", "tax_declaration"),))] == 0
    assert got[("bdchub_route_waiting_messages", (("route", "archive"),))] == 0
    assert got[("bdchub_route_queue_messages", (("route", "archive"),))] == 0
    assert got[("bdchub_state_up", (("source", "store"),))] == 1
    assert got[("bdchub_state_up", (("source", "broker"),))] == 1
    assert got[("bdchub_connector_breakers_open", ())] == 1
    [(labels, one)] = [(k[1], v) for k, v in got.items() if k[0] == "bdchub_build_info"]
    assert one == 1 and dict(labels)["version"] and dict(labels)["python"].count(".") == 2

    # Stopped, the hub's state is no longer in the scrapes of this process.
    assert b"bdchub_route_parked_messages" not in core_metrics.exposition()


def test_queue_depth_dead_letters_and_waiting_are_the_stores_and_brokers_counts(tmp_path):
    service = HubService.from_config(load(config(tmp_path)), pollers=False)
    state = StateMetrics(service.hub)
    service.hub.declare()  # the queues, without workers taking from them
    try:
        for n in range(3):
            service.hub.send("application.archived", application(f"Q-{n}"))
        store = service.hub.store
        store.add_dead_letter(id="dl-1", message_id="m1", origin_id="m1", route="archive",
                              step="0", type="application.archived", tenant="320684",
                              business_no="Q-9", reason="permanent", last_error="no",
                              envelope="{}")
        got = {f.name: {s.labels.get("route"): s.value for s in f.samples}
               for f in state.state.collect()}
    finally:
        service.hub.close()
    assert got["bdchub_route_queue_messages"] == {"archive": 3, "tax_declaration": 0}
    assert got["bdchub_route_dead_letter_messages"] == {"archive": 1, "tax_declaration": 0}
    assert got["bdchub_route_waiting_messages"] == {"archive": 0, "tax_declaration": 0}


def test_a_store_that_does_not_answer_leaves_its_gauges_out_and_the_scrape_answers(
        tmp_path, monkeypatch):
    service = HubService.from_config(load(config(tmp_path)), pollers=False)
    service.start()
    try:
        def away():
            raise StoreError("database is locked")

        monkeypatch.setattr(service.hub.store, "route_counts", away)
        got = samples(core_metrics.exposition())
    finally:
        service.stop(timeout=10)
    assert got[("bdchub_state_up", (("source", "store"),))] == 0
    assert got[("bdchub_state_up", (("source", "broker"),))] == 1
    assert not [k for k in got if k[0] == "bdchub_route_parked_messages"]
    assert ("bdchub_route_queue_messages", (("route", "archive"),)) in got


def test_metrics_listen_serves_the_scrapes_on_an_address_of_its_own(tmp_path):
    port = free_port()
    service = HubService.from_config(load(config(tmp_path, metrics={
        "listen": f"127.0.0.1:{port}"})), pollers=True)
    service.start()
    try:
        answer = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    finally:
        service.stop(timeout=10)
    assert answer.status_code == 200
    got = samples(answer.text)
    assert got[("bdchub_route_parked_messages", (("route", "archive"),))] == 0
    assert "bdchub_connector_calls" in {f.name for f in
                                        text_string_to_metric_families(answer.text)}
    # Stopped, nothing listens there any more.
    try:
        requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
    except requests.ConnectionError:
        pass
    else:
        raise AssertionError("the metrics listener outlived the hub")
