"""The broker interface: topic routing, and the durability fix of kombu's SQL transport."""

from __future__ import annotations

import socket
import sqlite3
import threading
import time

import pytest

from bdchub.core.broker import InMemoryBroker, KombuBroker, broker_from_url, topic_matches
from bdchub.core.errors import HubError, RecoverableError


@pytest.mark.parametrize("pattern,key,expected", [
    ("application.submitted", "application.submitted", True),
    ("application.*", "application.submitted", True),
    ("application.*", "application.submitted.v2", False),
    ("application.#", "application", True),
    ("application.#", "application.a.b", True),
    ("#", "anything.at.all", True),
    ("*.cleared", "tax.cleared", True),
    ("*.cleared", "tax.trade.cleared", False),
    ("court.#.lifted", "court.seizure.lifted", True),
    ("court.#.lifted", "court.lifted", True),
    ("tax.cleared", "tax.clearedx", False),
])
def test_topic_patterns_follow_amqp_semantics(pattern, key, expected):
    assert topic_matches(pattern, key) is expected


def test_broker_is_chosen_by_url_scheme(tmp_path):
    assert isinstance(broker_from_url("memory://"), InMemoryBroker)
    sql = broker_from_url(f"sqlite:///{tmp_path / 'b.db'}")
    assert isinstance(sql, KombuBroker) and sql.virtual
    assert not broker_from_url("amqp://guest:guest@127.0.0.1:1//").virtual
    with pytest.raises(HubError, match="unsupported broker URL"):
        broker_from_url("redis://localhost")


def test_in_memory_broker_routes_by_pattern_and_requeues_rejected():
    b = InMemoryBroker()
    b.declare_queue("a", ["tax.*"])
    b.declare_queue("b", ["#"])
    b.publish(b"1", "tax.cleared")
    b.publish(b"2", "trade.filed")
    b.publish(b"3", "whatever", queue="a")
    assert b.peek("a") == [b"1", b"3"] and b.peek("b") == [b"1", b"2"]
    got = []
    b.consume({"a": lambda d: (got.append(d.body), d.reject(requeue=True))}, {"a": 1})
    assert b.deliver_one() and b.peek("a") == [b"1", b"3"] and got == [b"1"]


def _rows(db) -> list[tuple[int, int]]:
    with sqlite3.connect(str(db)) as conn:
        return conn.execute("SELECT id, visible FROM kombu_message ORDER BY id").fetchall()


def _consume_all(broker, queue, n, ack=True, timeout=10.0):
    got, done = [], threading.Event()

    def handler(delivery):
        got.append(delivery)
        if ack:
            delivery.ack()
        if len(got) >= n:
            done.set()

    broker.consume({queue: handler}, {queue: 50})
    done.wait(timeout)
    return got


def test_sql_transport_deletes_a_row_when_its_message_is_acked(tmp_path):
    db = tmp_path / "broker.db"
    b = KombuBroker(f"sqla+sqlite:///{db}")
    b.declare_queue("q", ["a.b"])
    for i in range(5):
        b.publish(b'{"i": %d}' % i, "a.b")
    assert b.queue_size("q") == 5
    got = _consume_all(b, "q", 5)
    assert sorted(d.body for d in got) == [b'{"i": %d}' % i for i in range(5)]
    b.stop(timeout=5)
    b.close()
    assert _rows(db) == []


def _open_db_files(db) -> int:
    import os
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}") == str(db)
        except OSError:
            continue
    return count


@pytest.mark.skipif(not __import__("os").path.isdir("/proc/self/fd"), reason="needs /proc")
def test_the_last_broker_closed_on_a_database_closes_its_connections(tmp_path):
    # The SQL engine is shared by every broker of the process on one database; it
    # used to stay open for good, so a long-lived process leaked descriptors.
    db = tmp_path / "broker.db"
    first = KombuBroker(f"sqla+sqlite:///{db}")
    second = KombuBroker(f"sqla+sqlite:///{db}")
    for b in (first, second):
        b.declare_queue("q", ["a.b"])
        b.publish(b"{}", "a.b")
    assert _open_db_files(db) > 0
    first.close()
    second.publish(b"{}", "a.b")  # still open for the other broker
    assert second.queue_size("q") == 3
    second.kill()
    assert _open_db_files(db) == 0


def test_sql_transport_redelivers_unacked_messages_of_a_dead_consumer_after_the_lease(tmp_path):
    db = tmp_path / "broker.db"
    first = KombuBroker(f"sqla+sqlite:///{db}", visibility_timeout=1.0)
    first.declare_queue("q", ["a.b"])
    for i in range(3):
        first.publish(b'{"i": %d}' % i, "a.b")
    got = _consume_all(first, "q", 3, ack=False)
    assert len(got) == 3
    first.kill()  # like kill -9: nothing is given back
    assert [v for _id, v in _rows(db)] == [0, 0, 0]
    second = KombuBroker(f"sqla+sqlite:///{db}", visibility_timeout=1.0)
    second.declare_queue("q", ["a.b"])
    again = _consume_all(second, "q", 3, timeout=15)
    assert sorted(d.body for d in again) == sorted(d.body for d in got)
    second.stop(timeout=5)
    second.close()
    assert _rows(db) == []


def test_sql_transport_keeps_renewing_the_lease_of_slow_messages(tmp_path):
    db = tmp_path / "broker.db"
    b = KombuBroker(f"sqla+sqlite:///{db}", visibility_timeout=1.0)
    b.declare_queue("q", ["a.b"])
    b.publish(b"slow", "a.b")
    deliveries = []
    b.consume({"q": deliveries.append}, {"q": 5})
    deadline = time.monotonic() + 10
    while not deliveries and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(2.5)  # well past the lease: renewed, so not delivered a second time
    assert len(deliveries) == 1
    deliveries[0].ack()
    b.stop(timeout=5)
    b.close()
    assert _rows(db) == []


def test_sql_transport_requeues_a_rejected_message(tmp_path):
    db = tmp_path / "broker.db"
    b = KombuBroker(f"sqla+sqlite:///{db}")
    b.declare_queue("q", ["a.b"])
    b.publish(b"x", "a.b")
    seen = []

    def handler(d):
        seen.append(d.redelivered)
        if len(seen) == 1:
            d.reject(requeue=True)
        else:
            d.ack()

    b.consume({"q": handler}, {"q": 5})
    deadline = time.monotonic() + 10
    while len(seen) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    b.stop(timeout=5)
    b.close()
    assert len(seen) == 2 and _rows(db) == []


def _unreachable_amqp_url() -> str:
    with socket.socket() as sock:  # a loopback port nothing listens on any more
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"amqp://guest:guest@127.0.0.1:{port}//"


def test_publish_to_an_unreachable_broker_gives_up_at_its_timeout_with_a_recoverable_error():
    b = KombuBroker(_unreachable_amqp_url(), publish_timeout=0)
    with pytest.raises(RecoverableError, match="m-17"):
        b.publish(b"{}", "a.b", message_id="m-17")


def test_a_killed_broker_gives_up_publishing_without_retrying(caplog):
    b = KombuBroker(_unreachable_amqp_url(), publish_timeout=60)
    b.kill()
    with caplog.at_level("WARNING", logger="bdchub.broker"), pytest.raises(RecoverableError):
        b.publish(b"{}", "a.b", message_id="m-18")
    assert not [m for m in caplog.messages if "retrying" in m]


def test_the_consumer_reconnects_with_growing_waits_until_stopped(caplog):
    b = KombuBroker(_unreachable_amqp_url())
    before = set(threading.enumerate())
    with caplog.at_level("WARNING", logger="bdchub.broker"):
        b.consume({}, {})
        (consumer,) = [t for t in threading.enumerate()
                       if t not in before and t.name == "broker-consumer"]
        deadline = time.monotonic() + 20
        while len(caplog.messages) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        b.stop(timeout=1)
    lost = [m for m in caplog.messages if "connection lost" in m]
    assert [m.rsplit(" ", 1)[1] for m in lost[:2]] == ["0.2s", "0.4s"]
    assert not consumer.is_alive() and not b.connected.is_set()
