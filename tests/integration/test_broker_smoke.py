"""The real broker is reached: a persistent message survives the round trip."""

import uuid

import kombu
import pytest

pytestmark = pytest.mark.integration


def test_persistent_message_round_trips_through_real_rabbitmq(amqp_url):
    queue_name = f"smoke-{uuid.uuid4().hex}"
    body = {"business_no": "320684-2026-000001", "type": "application.submitted"}
    with kombu.Connection(amqp_url, connect_timeout=10) as conn:
        conn.ensure_connection(max_retries=3)
        assert conn.transport.driver_type == "amqp"
        queue = kombu.Queue(queue_name, durable=True, auto_delete=False)
        with conn.Producer() as producer:
            producer.publish(body, routing_key=queue_name, declare=[queue], delivery_mode=2,
                             serializer="json", confirm_publish=True)
        bound = queue(conn.channel())
        message = bound.get(no_ack=False)
        assert message is not None, "message was not delivered back"
        assert message.payload == body
        assert message.properties.get("delivery_mode") == 2
        message.ack()
        assert bound.get(no_ack=True) is None
        bound.delete()
