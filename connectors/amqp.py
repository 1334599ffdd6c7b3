"""Another organisation's broker (a province's RabbitMQ), through kombu.

::

    province_mq:
      type: amqp
      url: amqp://hub:secret@10.2.0.5:5672/bdc
      exchange: bdc.results
      exchange_type: topic
      routing_key: result.320684
      queue: county.320684.results
      operations:                      # publish / get / consume exist without this
        push_result: {action: publish, routing_key: "result.{tenant}"}
        next_result: {action: consume}

Operations:

- ``publish``: the payload as a persistent JSON message (delivery mode 2)
  with publisher confirms: the call returns only after the broker confirmed
  it, so a returned call means the broker has it. Unroutable messages (no
  queue bound) are refused (``mandatory``) as permanent errors instead of
  vanishing. ``message_id``, ``correlation_id`` (business number), the
  tenant and the idempotency key travel as properties and headers;
  ``routing_key`` may use ``{tenant}`` / ``{business_no}``.
- ``get``: one message if there is one (``None`` otherwise), without waiting.
- ``consume``: one message, waiting up to the call's time (``None`` if none came).

An operation takes the profile keys of every connector type
(``connectors.profile``): ``payload`` maps what is published; ``success``,
``response`` and ``reply`` judge and map what ``get``/``consume`` take (a
publish has no reply to judge).

``get`` and ``consume`` acknowledge the message before returning it: the
caller owns it from then on; a refusal in it is raised with the peer's
message and not taken again. Routes that need at-least-once from a remote
queue use the broker inbound of the message core, which acknowledges after
the route finished, not this connector.

Errors: kombu's recoverable connection and channel errors (refused, reset,
broker restart, nack) are recoverable; a missing socket answer in time is a
timeout; the rest (access refused, exchange not found, precondition failed,
unroutable) are permanent.
"""

from __future__ import annotations

import base64
import socket
import threading
import time
from typing import Any

import kombu
from kombu.exceptions import KombuError, OperationalError

from bdchub.core.errors import ConnectorError, PermanentError, RecoverableError, TimeoutError_
from bdchub.core.i18n import _

from . import profile
from .base import CallContext, Connector, Health

ACTIONS = ("publish", "get", "consume")


class AmqpConnector(Connector):
    type_name = "amqp"
    config_schema: dict[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["url"],
        "$defs": profile.DEFS,
        "properties": {
            "url": {"type": "string", "pattern": "^amqps?://",
                    "description": "amqp://user:password@host:port/vhost (amqps for TLS)"},
            "exchange": {"type": "string", "default": "",
                         "description": "exchange to publish to; '' = the default exchange"},
            "exchange_type": {"enum": ["direct", "topic", "fanout", "headers"],
                              "default": "direct"},
            "routing_key": {"type": "string", "default": "",
                            "description": "default routing key; {tenant} and {business_no} "
                                           "are filled from the call context"},
            "queue": {"type": "string", "description": "queue read by get/consume"},
            "durable": {"type": "boolean", "default": True},
            "declare": {"type": "boolean", "default": True,
                        "description": "declare exchange, queue and binding before use; "
                                       "turn off where the peer forbids it"},
            "confirm": {"type": "boolean", "default": True,
                        "description": "publisher confirms (wait for the broker's ack)"},
            "mandatory": {"type": "boolean", "default": True,
                          "description": "refuse messages no queue would receive"},
            "heartbeat": {"type": "number", "minimum": 0, "default": 0},
            "pool": {"type": "integer", "minimum": 1, "default": 4,
                     "description": "connections kept to the broker"},
            "ssl": {
                "type": "object", "additionalProperties": False,
                "description": "TLS for amqps URLs; paths relative to the config file",
                "properties": {"ca_bundle": {"type": "string"},
                               "client_cert": {"type": "string"},
                               "client_key": {"type": "string"}},
            },
            "operations": {
                "type": "object",
                "description": "name -> action with its own exchange/routing key/queue",
                "additionalProperties": {
                    "type": "object", "additionalProperties": False, "required": ["action"],
                    "properties": {
                        "action": {"enum": list(ACTIONS)},
                        "exchange": {"type": "string"},
                        "routing_key": {"type": "string"},
                        "queue": {"type": "string"},
                        "properties": {"type": "boolean", "default": False,
                                       "description": "get/consume: return {body, headers, "
                                                      "properties, routing_key}"},
                        # payload maps what is published; reply, response and success
                        # judge and map what get/consume take (publish has no reply).
                        **profile.OPERATION_PROPERTIES,
                    },
                },
            },
            **profile.BLOCK_PROPERTIES,
        },
    }

    def __init__(self, name: str, config: dict[str, Any], **kwargs: Any):
        super().__init__(name, config, **kwargs)
        self._connection: kombu.Connection | None = None
        self._pool: Any = None
        self._lock = threading.Lock()
        self._declared: set[tuple[str, str, str]] = set()
        self._profile: profile.Profile | None = None

    @property
    def endpoint(self) -> str:
        """The URL without its password."""
        return kombu.Connection(self.config["url"]).as_uri(include_password=False)

    def operations(self) -> list[str]:
        return sorted(set(ACTIONS) | set(self.config.get("operations") or {}))

    # ------------------------------------------------------------- lifecycle
    def _new_connection(self, timeout: float) -> kombu.Connection:
        cfg = self.config
        options: dict[str, Any] = {"confirm_publish": cfg.get("confirm", True)}
        ssl: Any = False
        if cfg.get("ssl") is not None or cfg["url"].startswith("amqps"):
            tls = cfg.get("ssl") or {}
            ssl = {}
            if tls.get("ca_bundle"):
                ssl["ca_certs"] = str(self.resolve_path(tls["ca_bundle"]))
                ssl["cert_reqs"] = __import__("ssl").CERT_REQUIRED
            if tls.get("client_cert"):
                ssl["certfile"] = str(self.resolve_path(tls["client_cert"]))
            if tls.get("client_key"):
                ssl["keyfile"] = str(self.resolve_path(tls["client_key"]))
            ssl = ssl or True
        return kombu.Connection(cfg["url"], connect_timeout=timeout, ssl=ssl,
                                heartbeat=cfg.get("heartbeat", 0), transport_options=options)

    def open(self) -> None:
        with self._lock:
            if self._pool is None:
                self._profile = profile.Profile(self.name, self.config)
                self._connection = self._new_connection(self.timeout)
                self._pool = self._connection.Pool(limit=int(self.config.get("pool", 4)))

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
            connection, self._connection = self._connection, None
            self._declared.clear()
        for thing in (pool, connection):
            if thing is None:
                continue
            try:
                thing.force_close_all() if thing is pool else thing.release()
            except Exception:  # noqa: BLE001 - close never raises
                pass

    # ------------------------------------------------------------------ call
    def call(self, operation: str, payload: Any, context: CallContext | None = None) -> Any:
        context = context or CallContext()
        spec = (self.config.get("operations") or {}).get(operation)
        if spec is None:
            if operation not in ACTIONS:
                raise PermanentError(_("connector {name} has no operation {op}; known: {known}",
                                       name=self.name, op=operation,
                                       known=", ".join(self.operations())),
                                     connector=self.name, operation=operation)
            spec = {"action": operation}
        if self._pool is None:
            self.open()
        assert self._profile is not None
        op = self._profile.operation(operation)
        remaining = context.remaining(self.timeout)
        if remaining <= 0:
            raise TimeoutError_(_("connector {name}: the call's deadline has passed",
                                  name=self.name), connector=self.name, operation=operation)
        try:
            conn = self._pool.acquire(block=True, timeout=remaining)
        except Exception as exc:
            raise TimeoutError_(_("connector {name}: no free broker connection in time",
                                  name=self.name), connector=self.name,
                                operation=operation) from exc
        broken = False
        try:
            conn.connect_timeout = max(0.001, context.remaining(self.timeout))
            conn.ensure_connection(max_retries=0, reraise_as_library_errors=False)
            action = getattr(self, "_" + spec["action"])
            result = action(conn, spec, op.request(payload), context)
        except ConnectorError:
            broken = True
            raise
        except Exception as exc:
            broken = True
            raise self.classify(exc, operation) from exc
        finally:
            if broken:
                # Drop the socket without I/O; the pool reconnects on next use.
                try:
                    conn.collect()
                except Exception:  # noqa: BLE001
                    pass
                self._declared = {d for d in self._declared if d[0] != id(conn)}
            conn.release()
        if spec["action"] == "publish" or result is None:
            return result
        # What was taken is the caller's already (acknowledged): a refusal in it is
        # raised with the peer's own message, never retried into a second take.
        return op.result(result, connector=self.name)

    def _exchange(self, spec: dict[str, Any]) -> kombu.Exchange:
        name = spec.get("exchange", self.config.get("exchange", ""))
        return kombu.Exchange(name, type=self.config.get("exchange_type", "direct"),
                              durable=self.config.get("durable", True))

    def _queue(self, spec: dict[str, Any], exchange: kombu.Exchange) -> kombu.Queue:
        name = spec.get("queue") or self.config.get("queue")
        if not name:
            raise PermanentError(_("connector {name}: no queue configured to read from",
                                   name=self.name), connector=self.name)
        routing_key = spec.get("routing_key", self.config.get("routing_key")) or name
        if exchange.name:
            return kombu.Queue(name, exchange=exchange, routing_key=routing_key,
                               durable=self.config.get("durable", True))
        return kombu.Queue(name, durable=self.config.get("durable", True))

    def _declare(self, conn: kombu.Connection, *entities: Any) -> None:
        if not self.config.get("declare", True):
            return
        for entity in entities:
            key = (id(conn), type(entity).__name__, entity.name)
            if key in self._declared or not entity.name:
                continue
            entity(conn.default_channel).declare()
            self._declared.add(key)

    def _routing_key(self, spec: dict[str, Any], context: CallContext) -> str:
        template = spec.get("routing_key", self.config.get("routing_key", "")) or ""
        try:
            return template.format(tenant=context.tenant, business_no=context.business_no)
        except (KeyError, IndexError, ValueError):
            return template

    def _publish(self, conn: kombu.Connection, spec: dict[str, Any], payload: Any,
                 context: CallContext) -> dict[str, Any]:
        exchange = self._exchange(spec)
        declare: list[Any] = [exchange]
        if self.config.get("queue") and not spec.get("exchange"):
            declare.append(self._queue({}, exchange))
        self._declare(conn, *declare)
        routing_key = self._routing_key(spec, context)
        returned: list[Any] = []
        producer = kombu.Producer(conn.default_channel, exchange=exchange, auto_declare=False,
                                  on_return=lambda exc, *rest: returned.append(exc))
        headers = dict(context.headers)
        for key, value in (("tenant", context.tenant), ("business_no", context.business_no),
                           ("idempotency_key", context.idempotency_key)):
            if value:
                headers[key] = value
        remaining = max(0.001, context.remaining(self.timeout))
        properties: dict[str, Any] = {}
        if context.message_id:
            properties["message_id"] = context.message_id
        if context.business_no:
            properties["correlation_id"] = context.business_no
        producer.publish(payload, routing_key=routing_key, delivery_mode=2, serializer="json",
                         mandatory=self.config.get("mandatory", True), headers=headers,
                         timeout=remaining, confirm_timeout=remaining, retry=False,
                         **properties)
        if returned:
            raise PermanentError(_("connector {name}: the broker could not route the message "
                                   "(exchange '{exchange}', routing key '{key}'): {error}",
                                   name=self.name, exchange=exchange.name, key=routing_key,
                                   error=returned[0]), connector=self.name,
                                 operation="publish")
        return {"published": True, "exchange": exchange.name, "routing_key": routing_key}

    def _get(self, conn: kombu.Connection, spec: dict[str, Any], payload: Any,
             context: CallContext) -> Any:
        exchange = self._exchange(spec)
        queue = self._queue(spec, exchange)
        self._declare(conn, *([exchange] if exchange.name else []), queue)
        message = queue(conn.default_channel).get(no_ack=False, accept=None)
        if message is None:
            return None
        result = self._unpack(message, spec)
        message.ack()
        return result

    def _consume(self, conn: kombu.Connection, spec: dict[str, Any], payload: Any,
                 context: CallContext) -> Any:
        exchange = self._exchange(spec)
        queue = self._queue(spec, exchange)
        self._declare(conn, *([exchange] if exchange.name else []), queue)
        got: list[Any] = []
        # A channel of its own: closing it hands back anything delivered but not taken.
        channel = conn.channel()
        try:
            consumer = kombu.Consumer(channel, queues=[queue], prefetch_count=1, no_ack=False,
                                      on_message=got.append, accept=None)
            with consumer:
                while not got:
                    left = context.remaining(self.timeout)
                    if left <= 0:
                        break
                    try:
                        conn.drain_events(timeout=min(left, 1.0))
                    except TimeoutError:
                        continue
            if not got:
                return None
            result = self._unpack(got[0], spec)
            got[0].ack()
            return result
        finally:
            try:
                channel.close()
            except Exception:  # noqa: BLE001 - requeue happens broker-side anyway
                pass

    @staticmethod
    def _unpack(message: Any, spec: dict[str, Any]) -> Any:
        try:
            body = message.decode()
        except Exception:  # noqa: BLE001 - a peer's odd content type is still data
            raw = message.body
            try:
                body = raw.decode("utf-8") if isinstance(raw, bytes) else raw
            except UnicodeDecodeError:
                body = base64.b64encode(raw).decode()
        if not spec.get("properties"):
            return body
        return {"body": body, "headers": dict(message.headers or {}),
                "properties": {k: v for k, v in message.properties.items()
                               if isinstance(v, str | int | float | bool)},
                "routing_key": message.delivery_info.get("routing_key")}

    # ------------------------------------------------------------ classify
    def classify(self, exc: BaseException, operation: str = "") -> ConnectorError:
        if isinstance(exc, ConnectorError):
            return exc
        where = {"connector": self.name, "operation": operation}
        text = str(exc) or type(exc).__name__
        if isinstance(exc, socket.timeout | TimeoutError):
            return TimeoutError_(_("connector {name}: the broker did not answer in time",
                                   name=self.name), **where)
        probe = kombu.Connection(self.config["url"])
        recoverable = probe.recoverable_connection_errors + probe.recoverable_channel_errors
        if isinstance(exc, recoverable + (OperationalError,)):
            return RecoverableError(_("connector {name}: broker connection failed: {error}",
                                      name=self.name, error=text), **where)
        if isinstance(exc, probe.connection_errors + probe.channel_errors + (KombuError,)):
            return PermanentError(_("connector {name}: the broker refused: {error}",
                                    name=self.name, error=text), **where)
        if isinstance(exc, OSError):
            return RecoverableError(_("connector {name}: broker connection failed: {error}",
                                      name=self.name, error=text), **where)
        return PermanentError(_("connector {name}: {error}", name=self.name, error=text), **where)

    @classmethod
    def config_check(cls, name: str, block: Any, base_dir: Any) -> profile.ProfileCheck:
        """``hub check`` of the block's profile (the hook of ``connectors.registry``)."""
        return profile.ProfileCheck(name, block)

    # ---------------------------------------------------------------- health
    def health(self) -> Health:
        started = time.monotonic()
        conn = self._new_connection(self.timeout)
        try:
            conn.ensure_connection(max_retries=0, reraise_as_library_errors=False)
            version = conn.connection.server_properties.get("version", b"")
            if isinstance(version, bytes):
                version = version.decode(errors="replace")
            return Health(up=True, latency_ms=(time.monotonic() - started) * 1000,
                          detail=f"broker {conn.transport.driver_name} {version}".strip())
        except Exception as exc:  # noqa: BLE001 - a probe reports, it does not raise
            return Health(up=False, latency_ms=(time.monotonic() - started) * 1000,
                          detail=str(self.classify(exc)))
        finally:
            try:
                conn.release()
            except Exception:  # noqa: BLE001
                pass
