"""Shared fixtures: real servers for the integration tier.

``rabbit`` / ``amqp_url`` and ``postgres_url`` use the servers ``make test``
started (``HUB_TEST_AMQP_URL``, ``HUB_TEST_POSTGRES_URL``) or start a
throwaway one on a free loopback port. Where a server cannot be had, its tests
are skipped with the reason, except under ``CI=true`` where they fail.
"""

from __future__ import annotations

import os

import pytest

from bdchub.core import i18n
from tools.services import PostgresServer, RabbitNode, ServiceUnavailable, fresh_database

IN_CI = os.environ.get("CI") == "true"

pytest_plugins = ["bdchub.sandbox.pytest_plugin"]


def _unavailable(what: str, exc: Exception) -> None:
    message = f"{what} unavailable: {exc}"
    if IN_CI:
        pytest.fail(message + " (CI=true: real servers are required)")
    pytest.skip("SKIPPED LOUDLY: " + message)


@pytest.fixture(autouse=True)
def _english_by_default(request):
    """Tests assert on English text unless they ask for Chinese with set_language."""
    i18n.set_language("en")
    yield
    i18n.set_language(None)


@pytest.fixture(autouse=True)
def _hub_loggers_at_their_default_level():
    """Each test sees what a hub logs at its default levels, whatever an earlier test
    left behind (``hub test`` run in-process quiets ``bdchub`` as its own process
    would); restored after."""
    import logging

    hub, root = logging.getLogger("bdchub"), logging.getLogger()
    levels = hub.level, root.level
    hub.setLevel(logging.NOTSET)
    yield
    hub.setLevel(levels[0])
    root.setLevel(levels[1])


def _session_server(env_var: str, kind: type, what: str) -> str:
    """The URL of a server ``make test`` started, or of one started for this session."""
    url = os.environ.get(env_var)
    if url:
        return url
    try:
        server = kind()
        server.start()
    except ServiceUnavailable as exc:
        _unavailable(what, exc)
    _session_servers.append(server)
    return server.url


@pytest.fixture(scope="session")
def amqp_url() -> str:
    return _session_server("HUB_TEST_AMQP_URL", RabbitNode, "RabbitMQ")


def _private_server(kind: type, what: str):
    """A server of the test's own (``kind``: RabbitNode, PostgresServer), removed after."""
    try:
        server = kind()
        server.start()
    except ServiceUnavailable as exc:
        _unavailable(what, exc)
    yield server
    server.cleanup()


@pytest.fixture
def rabbit_node():
    """A private RabbitMQ node the test may stop, kill and restart."""
    yield from _private_server(RabbitNode, "RabbitMQ")


@pytest.fixture
def postgres_server():
    """A private PostgreSQL server the test may stop and start again (on its port and
    data); ``fresh_pg_database(server.url)`` makes a database on it."""
    yield from _private_server(PostgresServer, "PostgreSQL")


@pytest.fixture(scope="session")
def postgres_url() -> str:
    return _session_server("HUB_TEST_POSTGRES_URL", PostgresServer, "PostgreSQL")


def fresh_pg_database(postgres_url: str) -> str:
    """The URL of a new, empty database on the PostgreSQL server at ``postgres_url``."""
    return fresh_database(postgres_url)


@pytest.fixture
def pg_database(postgres_url: str) -> str:
    """A new, empty PostgreSQL database of this test's own."""
    return fresh_pg_database(postgres_url)


_session_servers: list = []


def pytest_sessionfinish(session, exitstatus):
    while _session_servers:
        _session_servers.pop().cleanup()
