"""What request/reply routes publish goes into the embedded broker together (issue #15).

Requests of an endpoint route that publishes (``Engine.run_sync``) hand their
messages to one publisher (``core.broker.grouped``): what they publish while a
batch is being written goes into ``broker.db`` in one transaction of the next
(``KombuBroker.publish_many`` on kombu's SQL transport). Each request is answered
only once its message is in the broker's file, and a broker that cannot take the
batch fails every request waiting on it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import event

from bdchub.core import greenloop
from bdchub.core.broker.leased_sql import LeasedChannel
from bdchub.core.envelope import Envelope
from bdchub.core.errors import RecoverableError
from bdchub.routes.middleware import MetricsMiddleware
from bdchub.routes.runtime import Hub
from tests.routes.helpers import TENANT, Clock, Sleeps, validator

CHECKED = "applicant.checked"
CAPTURE = "test.checked"

ROUTES = {"check": {"from": {"endpoint": {"method": "POST", "path": "/check", "reply": True}},
                    "steps": [{"publish": {"type": CHECKED,
                                           "body": {"business_no": "business_no"}}},
                              {"map": {"business_no": "business_no", "result": "'checked'"}}]}}


@pytest.fixture
def broker_db(tmp_path):
    return tmp_path / "broker.db"


@pytest.fixture
def hub(broker_db):
    config = {"tenant": TENANT, "name": "海门区不动产登记中心", "connectors": {},
              "routes": ROUTES, "checklists": {}}
    hub = Hub.from_config(config, broker=f"sqla+sqlite:///{broker_db}", store="sqlite://",
                          metrics=MetricsMiddleware(CollectorRegistry()), validator=validator,
                          clock=Clock(), sleep=Sleeps(), publish_timeout=0)
    hub.declare()
    hub.broker.declare_queue(CAPTURE, [CHECKED])
    yield hub
    hub.stop(timeout=5)


def request(n: int) -> Envelope:
    number = f"320684-2026-{n:06d}"
    return Envelope(type="identity.check", tenant=TENANT, business_no=number,
                    body={"business_no": number})


def in_broker(broker_db, number: str) -> bool:
    """Whether ``number``'s message is in the broker's file, as another process reads it."""
    with sqlite3.connect(broker_db) as conn:
        rows = conn.execute("SELECT payload FROM kombu_message").fetchall()
    # kombu keeps the body base64-encoded in the row's JSON (unsealed: no data key here).
    bodies = [base64.b64decode(json.loads(payload)["body"]) for (payload,) in rows]
    return any(number.encode() in body for body in bodies)


def inserts_into(broker_db) -> list[int]:
    """Counts the INSERTs into the broker's message table from now on (one an item)."""
    engine = LeasedChannel._engines[str(f"sqlite:///{broker_db}")][0]
    seen: list[int] = []

    @event.listens_for(engine, "before_cursor_execute")
    def count(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO KOMBU_MESSAGE"):
            seen.append(1)
    return seen


def test_requests_that_publish_meanwhile_share_one_transaction_and_wait_for_it(hub, broker_db):
    hub.run_sync("check", request(0))  # the broker's file, tables and connection exist
    inserts = inserts_into(broker_db)
    holder = sqlite3.connect(broker_db, isolation_level=None)
    answered: list[tuple[str, bool]] = []  # (business number, its message in the file then)

    def answer(n: int) -> None:
        env = request(n)
        hub.run_sync("check", env)
        answered.append((env.business_no, in_broker(broker_db, env.business_no)))

    async def main():
        holder.execute("BEGIN IMMEDIATE")  # another process writing the broker's file
        first = asyncio.ensure_future(greenloop.run(answer, 1))
        for _ in range(400):  # bounded: until the first request's INSERT waits for the file
            await asyncio.sleep(0.005)
            if inserts:
                break
        # Each of these runs its route up to its publish in its first step on the loop.
        rest = [asyncio.ensure_future(greenloop.run(answer, n)) for n in range(2, 7)]
        await asyncio.sleep(0.05)
        held = list(answered)
        holder.execute("ROLLBACK")
        await asyncio.gather(first, *rest)
        return held

    held = asyncio.run(main())
    assert held == []  # nobody was answered while the file could not be written
    assert sorted(answered) == [(request(n).business_no, True) for n in range(1, 7)]
    assert len(inserts) == 2  # the first request alone, then the five that waited, together


def test_a_broker_that_cannot_take_the_batch_fails_every_request_waiting_on_it(hub, broker_db):
    hub.run_sync("check", request(0))
    holder = sqlite3.connect(broker_db, isolation_level=None)
    holder.execute("PRAGMA busy_timeout=5000")
    holder.execute("DROP TABLE kombu_message")  # the broker's file cannot take a message
    failed: list[str] = []

    def answer(n: int) -> None:
        with pytest.raises(RecoverableError, match="not published") as refused:
            hub.run_sync("check", request(n))
        failed.append(str(refused.value))

    async def main():
        await asyncio.gather(*(greenloop.run(answer, n) for n in range(1, 5)))

    asyncio.run(main())
    assert len(failed) == 4 and all("broker unavailable" in text for text in failed)
