"""The message backbone: one small broker interface; RabbitMQ, SQL and memory behind it.

Like dramatiq's brokers, the hub needs only a handful of operations (see
``Broker`` in ``base``): ``declare_queue`` (a durable queue bound by
message-type patterns, ``*`` one word, ``#`` any words, and by its own name),
``publish`` (returns once the broker has the message), ``consume`` (handlers
on a background thread settle each ``Delivery`` from any thread), ``stop``
(graceful), ``close`` and ``kill`` (abrupt, never raises).

``broker_from_url`` chooses by scheme:

- ``amqp://`` / ``amqps://``: RabbitMQ through kombu (``kombu_broker``),
  durable (or quorum, with a delivery limit and a dead-letter queue) queues,
  persistent messages, publisher confirms, a prefetch per consumer;
- ``sqla+sqlite:///path``, ``sqlite:///path`` (embedded default) and
  ``sqla+postgresql://``: kombu's SQLAlchemy transport through the same
  ``KombuBroker``, with one fix that durability needs (``leased_sql``): a
  delivered row is leased, not hidden for good, and deleted on ack, so the
  messages of a killed hub come back;
- ``memory://``: in-process queues for unit tests (``memory``), with
  ``deliver_one()`` to drive delivery from the test's own thread.

``KombuBroker`` retries through broker restarts (``retry``): publishing and
declaring for ``publish_timeout`` seconds, then ``RecoverableError``; its
consumer reconnects until stopped.
"""

from __future__ import annotations

from typing import Any

from ..errors import HubError
from ..i18n import _
from .base import Broker, Delivery, Handler, Outbound, topic_matches
from .kombu_broker import DEFAULT_DELIVERY_LIMIT, SEALED_COLUMN, SEALED_CONTENT_TYPE, KombuBroker
from .memory import InMemoryBroker

__all__ = ["DEFAULT_DELIVERY_LIMIT", "SCHEMA", "SEALED_COLUMN", "SEALED_CONTENT_TYPE", "Broker", "Delivery", "Handler", "Outbound",
           "InMemoryBroker", "KombuBroker", "broker_from_url", "topic_matches"]

#: The ``broker:`` section of config.yaml (registered by ``core.config``).
SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["url"],
    "properties": {
        "url": {"type": "string", "minLength": 1,
                "description": "amqp://… (RabbitMQ) or sqla+sqlite:///… (embedded)"},
        "prefetch": {"type": "integer", "minimum": 1, "maximum": 10000},
        "queue_type": {"enum": ["classic", "quorum"],
                       "description": "RabbitMQ queues: classic (default) or quorum (with "
                                      "delivery_limit and the dead-letter queue; for several "
                                      "workers)"},
        "delivery_limit": {"type": "integer", "minimum": 1, "maximum": 1000,
                           "description": "deliveries of one message on a quorum queue "
                                          "before it is dead-lettered (default 20)"},
        "exchange": {"type": "string", "minLength": 1},
        "prefix": {"type": "string", "pattern": r"^[A-Za-z0-9_.-]+$",
                   "description": "prefix of queue and exchange names (default bdchub)"},
        "visibility_timeout": {"type": "number", "exclusiveMinimum": 0,
                               "description": "seconds an unacknowledged message of the "
                                              "embedded broker stays leased"},
    },
}


def broker_from_url(url: str, **options: Any) -> Broker:
    """The broker for ``url`` (see the module docstring for the schemes)."""
    if url.startswith("memory://"):
        return InMemoryBroker(url)
    if url.startswith(("amqp://", "amqps://", "pyamqp://", "sqla+", "sqlalchemy+", "sqlite:")):
        return KombuBroker(url, **options)
    raise HubError(_("unsupported broker URL '{url}': use amqp://… (RabbitMQ) or "
                     "sqla+sqlite:///… (embedded)", url=url))
