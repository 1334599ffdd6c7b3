"""``/healthz`` and ``/readyz`` of a running hub (``hub run``'s ``HubService``):
alive while the process answers; ready only while the store, the broker, the
route workers and the pollers answer, else 503 naming the part, and ready again
once it is back. The embedded broker (kombu's SQL transport on SQLite) is made
unreachable by taking its folder away, as an unmounted volume would; RabbitMQ is
stopped and started (integration)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from bdchub.app.service import HubService
from bdchub.core.config import load

TENANT = "320684"


def write_config(folder: Path, broker_url: str, store_url: str) -> Path:
    config = {
        "tenant": TENANT,
        "broker": {"url": broker_url},
        "store": {"url": store_url},
        "inbound": {"listen": {"host": "127.0.0.1"}},
        "connectors": {"legacy": {"type": "fake", "responses": {"submit": {}, "pull": {}}}},
        "pollers": {"court_orders": {"connector": "legacy", "operation": "pull", "every": 30,
                                     "items": "items", "publish": "court.order_received"}},
        "routes": {"online": {"from": "application.submitted",
                              "steps": [{"to": {"connector": "legacy", "operation": "submit"}}]}},
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


@contextlib.contextmanager
def running(path: Path) -> Iterator[HubService]:
    """The hub of ``path``, started; stopped at the end."""
    # Port 0: the system picks a free one (service.url says which).
    service = HubService.from_config(load(path), port=0, tick_interval=0.1)
    service.start()
    try:
        yield service
    finally:
        service.stop(timeout=10)


def readyz(service: HubService, **headers: str) -> requests.Response:
    return requests.get(service.url + "/readyz", headers=headers, timeout=10)


def until_status(service: HubService, status: int, deadline: float = 60.0) -> requests.Response:
    end = time.monotonic() + deadline
    while True:
        answer = readyz(service)
        if answer.status_code == status:
            return answer
        assert time.monotonic() < end, f"/readyz stayed {answer.status_code}: {answer.text}"
        time.sleep(0.2)


def until_failing(service: HubService, names: list[str], deadline: float = 60.0) -> dict:
    """The first 503 body naming exactly ``names`` (a starting hub is not ready
    either, until its broker consumer has connected)."""
    end = time.monotonic() + deadline
    while True:
        answer = readyz(service)
        if answer.status_code == 503 and answer.json()["failing"] == names:
            return answer.json()
        assert time.monotonic() < end, f"/readyz never failed with {names}: {answer.text}"
        time.sleep(0.2)


def test_a_running_hub_is_alive_and_ready_with_each_part_named(tmp_path: Path):
    path = write_config(tmp_path, f"sqla+sqlite:///{tmp_path / 'mq' / 'broker.db'}",
                        f"sqlite:///{tmp_path / 'store.db'}")
    with running(path) as service:
        for alive in ("/healthz", "/api/v1/health"):
            answer = requests.get(service.url + alive, timeout=10)
            assert answer.status_code == 200 and answer.json()["status"] == "ok"
        answer = until_status(service, 200)
        assert answer.json()["status"] == "ready"
        assert [(p["name"], p["ok"]) for p in answer.json()["parts"]] == [
            ("store", True), ("broker", True), ("workers", True), ("pollers", True)]


def test_readyz_fails_naming_the_broker_while_the_embedded_broker_is_unreachable_and_recovers(
        tmp_path: Path):
    mq = tmp_path / "mq"
    path = write_config(tmp_path, f"sqla+sqlite:///{mq / 'broker.db'}",
                        f"sqlite:///{tmp_path / 'store.db'}")
    with running(path) as service:
        until_status(service, 200)
        mq.rename(tmp_path / "mq.away")  # the broker's volume is gone
        try:
            body = until_failing(service, ["broker"])
            assert body["status"] == "not_ready"
            assert body["message"] == "not ready: the message broker (broker) not answering"
            assert [p["name"] for p in body["parts"] if not p["ok"]] == ["broker"]
            # The process itself still answers: a restart would not bring the broker back.
            assert requests.get(service.url + "/healthz", timeout=10).status_code == 200
            chinese = readyz(service, **{"Accept-Language": "zh-CN"}).json()["message"]
            assert chinese == "未就绪：消息代理（broker）无应答"
        finally:
            (tmp_path / "mq.away").rename(mq)
        assert until_status(service, 200).json()["status"] == "ready"


def test_readyz_names_a_poller_whose_thread_has_ended(tmp_path: Path):
    path = write_config(tmp_path, f"sqla+sqlite:///{tmp_path / 'broker.db'}",
                        f"sqlite:///{tmp_path / 'store.db'}")
    service = HubService.from_config(load(path), port=0, tick_interval=0.1)
    # A poller never ends on its own (it logs and polls again): one that did is a fault.
    service.pollers.items[0].run = lambda stop: None
    service.start()
    try:
        body = until_failing(service, ["pollers"])
        assert [p["error"] for p in body["parts"] if p["name"] == "pollers"] == [
            "pollers stopped: court_orders"]
    finally:
        service.stop(timeout=10)


@pytest.mark.integration
def test_readyz_fails_naming_the_broker_while_rabbitmq_is_stopped_and_recovers(
        rabbit_node, tmp_path: Path):
    path = write_config(tmp_path, rabbit_node.url, f"sqlite:///{tmp_path / 'store.db'}")
    with running(path) as service:
        until_status(service, 200)
        rabbit_node.stop()
        try:
            until_failing(service, ["broker"])
            assert requests.get(service.url + "/healthz", timeout=10).status_code == 200
        finally:
            rabbit_node.start()
        assert until_status(service, 200, deadline=120).json()["status"] == "ready"
