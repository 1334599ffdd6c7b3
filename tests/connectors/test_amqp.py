"""The AMQP connector against a real RabbitMQ (another province's broker)."""

from __future__ import annotations

import time
import uuid

import kombu
import pytest

from bdchub import connectors
from bdchub.core.errors import PermanentError, RecoverableError

pytestmark = pytest.mark.integration


@pytest.fixture
def queue_name():
    return "prov-" + uuid.uuid4().hex[:10]


def build(amqp_url, queue_name, metrics, **extra):
    block = {"type": "amqp", "url": amqp_url, "exchange": "bdc.province",
             "exchange_type": "topic", "routing_key": "result.{tenant}", "queue": queue_name,
             "timeout": 5, "retry": {"attempts": 2, "backoff": 0.01, "jitter": 0}, **extra}
    return connectors.build("province", block, metrics=metrics, sleep=lambda s: None)


def test_publish_is_persistent_confirmed_and_carries_the_context(amqp_url, metrics):
    queue = "prov-" + uuid.uuid4().hex[:10]
    context = connectors.CallContext(message_id="0190b3c4-msg", business_no="320684-2026-1",
                                     tenant="320684", idempotency_key="0190b3c4-msg:province")
    with build(amqp_url, queue, metrics, routing_key=queue) as conn:
        result = conn.call("publish", {"status": "登簿"}, context)
    assert result == {"published": True, "exchange": "bdc.province", "routing_key": queue}
    with kombu.Connection(amqp_url) as raw:
        message = kombu.Queue(queue, durable=True)(raw.channel()).get(no_ack=True)
        assert message.payload == {"status": "登簿"}
        assert message.properties["delivery_mode"] == 2
        assert message.properties["message_id"] == "0190b3c4-msg"
        assert message.properties["correlation_id"] == "320684-2026-1"
        assert message.headers["tenant"] == "320684"
        assert message.headers["idempotency_key"] == "0190b3c4-msg:province"
        raw.channel().queue_delete(queue)


def test_routing_key_is_filled_from_the_tenant_and_get_reads_it_back(amqp_url, queue_name,
                                                                     metrics):
    with build(amqp_url, queue_name, metrics, routing_key="result.320684") as conn:
        conn.call("get", None)  # declares the queue and its binding
    with build(amqp_url, queue_name, metrics) as conn:
        conn.call("publish", {"n": 1}, connectors.CallContext(tenant="320684"))
        assert conn.call("get", None) == {"n": 1}
        assert conn.call("get", None) is None  # acknowledged, not redelivered


def test_consume_waits_for_one_message_within_the_deadline(amqp_url, queue_name, metrics):
    block = {"routing_key": queue_name,
             "operations": {"next": {"action": "consume", "properties": True}}}
    with build(amqp_url, queue_name, metrics, **block) as conn:
        deadline = connectors.CallContext(deadline=time.monotonic() + 0.3)
        assert conn.call("next", None, deadline) is None
        conn.call("publish", {"n": 2}, connectors.CallContext(business_no="B-2"))
        conn.call("publish", {"n": 3})
        first = conn.call("next", None)
        assert first["body"] == {"n": 2}
        assert first["properties"]["correlation_id"] == "B-2"
        assert conn.call("next", None)["body"] == {"n": 3}  # the second was not swallowed


def test_unroutable_message_is_refused_not_lost(amqp_url, metrics):
    block = {"type": "amqp", "url": amqp_url, "exchange": "bdc.nowhere." + uuid.uuid4().hex[:6],
             "routing_key": "nobody-listens", "retry": {"attempts": 1}}
    with connectors.build("p", block, metrics=metrics) as conn, \
            pytest.raises(PermanentError, match="route"):
        conn.call("publish", {"x": 1})


def test_wrong_credentials_are_permanent(amqp_url, metrics):
    url = amqp_url.replace("guest:guest", "guest:wrong")
    block = {"type": "amqp", "url": url, "retry": {"attempts": 1}, "timeout": 5}
    with connectors.build("p", block, metrics=metrics) as conn, pytest.raises(PermanentError):
        conn.call("publish", {"x": 1})


def test_broker_connection_cut_is_recovered_by_a_retry(amqp_url, queue_name, metrics,
                                                       broker_proxy):
    url = f"amqp://guest:guest@127.0.0.1:{broker_proxy.port}//"
    with build(url, queue_name, metrics, routing_key=queue_name, pool=1) as conn:
        conn.call("publish", {"n": 1})
        broker_proxy.drop_all()
        assert conn.call("publish", {"n": 2})["published"]
        assert conn.call("get", None) == {"n": 1}
        assert conn.call("get", None) == {"n": 2}


def test_broker_down_is_recoverable_and_health_says_so(metrics, broker_proxy):
    broker_proxy.mode = "refuse"
    url = f"amqp://guest:guest@127.0.0.1:{broker_proxy.port}//"
    block = {"type": "amqp", "url": url, "retry": {"attempts": 1}, "timeout": 2}
    with connectors.build("p", block, metrics=metrics) as conn:
        with pytest.raises(RecoverableError):
            conn.call("publish", {"x": 1})
        health = conn.health()
    assert not health.up
    assert "guest:**@" in conn.endpoint  # no password in tables and logs


def test_a_taken_reply_saying_refused_is_a_permanent_error_with_the_peers_message(
        amqp_url, queue_name, metrics):
    """A province's answer queue: what get takes is judged by the success rule and
    mapped into canonical names, as a SOAP or REST reply is."""
    block = {"routing_key": queue_name, "operations": {
        "next_answer": {"action": "get",
                        "success": {"path": "code", "ok": ["0"], "message_path": "msg"},
                        "reply": {"business_no": "ywh", "accepted": "code == '0'"}}}}
    with build(amqp_url, queue_name, metrics, **block) as conn:
        conn.call("get", None)  # declares the queue and its binding
        conn.call("publish", {"code": "0", "ywh": "320684-2026-1"})
        conn.call("publish", {"code": "E7", "msg": "该单元已查封", "ywh": "320684-2026-2"})
        assert conn.call("next_answer", None) == {"business_no": "320684-2026-1",
                                                  "accepted": True}
        with pytest.raises(PermanentError, match="该单元已查封"):
            conn.call("next_answer", None)
        assert conn.call("next_answer", None) is None  # nothing left, nothing judged
