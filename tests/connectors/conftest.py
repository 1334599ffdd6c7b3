"""Fixtures of the connector tests: loopback departments, a proxied broker,
fresh metrics, and the contract targets."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from bdchub.connectors.metrics import ConnectorMetrics

from .loopback import Department
from .proxy import ToggleProxy
from .targets import (
    AmqpProxied,
    GovSandbox,
    LegacySandbox,
    MarketSandbox,
    RestLoopback,
    SoapLoopback,
    TaxSandbox,
    TradeSandbox,
)


@pytest.fixture
def metrics():
    """Metrics on a registry of their own, so counts start at zero."""
    return ConnectorMetrics(CollectorRegistry())


@pytest.fixture
def department():
    dept = Department().start()
    yield dept
    dept.stop()


@pytest.fixture
def broker_proxy(amqp_url):
    host_port = amqp_url.split("@", 1)[1].split("/", 1)[0]
    host, port = host_port.rsplit(":", 1)
    proxy = ToggleProxy((host, int(port)))
    yield proxy
    proxy.close()


SANDBOX_TARGETS = {"rest-appkey": MarketSandbox, "rest-bearer": TradeSandbox,
                   "rest-gjgxjhpt": GovSandbox, "soap-1.1-wsse": TaxSandbox,
                   "soap-1.2": LegacySandbox}
LOOPBACK_TARGETS = ["rest-loopback", "soap-1.1-loopback", "soap-1.2-loopback"]
TARGETS = [*SANDBOX_TARGETS, *LOOPBACK_TARGETS, "amqp"]


@pytest.fixture(params=TARGETS)
def target(request):
    """Every connector type, each against a real server on loopback: the
    sandbox's departments, the test's own department (for exact counted
    faults) and a real RabbitMQ behind a switchable proxy."""
    name = request.param
    if name == "amqp":
        request.applymarker(pytest.mark.integration)
        proxy = request.getfixturevalue("broker_proxy")
        return AmqpProxied(proxy, request.getfixturevalue("amqp_url"))
    if name in SANDBOX_TARGETS:
        target = SANDBOX_TARGETS[name](request.getfixturevalue("clean_sandbox"))
        request.addfinalizer(target.clear)
        return target
    dept = request.getfixturevalue("department")
    if name == "rest-loopback":
        return RestLoopback(dept)
    return SoapLoopback(dept, name.split("-")[1])
