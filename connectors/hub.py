"""Another bdc-hub: a county's hub for the province, the province's hub for a county.

Hubs talk with the one signed envelope both understand: the whole message (id,
type, tenant, business number, headers, body) is POSTed to the peer's
``/api/v1/hub/envelopes`` (``web.federation``), signed as every inbound request
is (``X-App-Key``, ``X-Timestamp``, ``X-Nonce``, ``X-Signature``: the ``appkey``
scheme of ``connectors.auth``, which is ``web.signing``'s). The peer lists this
hub under its ``inbound.clients`` with ``channel: hub`` and the tenants it may
act for::

    county_320684:
      type: hub
      base_url: https://hub.haimen.example.gov.cn   # the county hub's inbound API
      app_key: pk-province
      app_secret: ${HUB_320684_SECRET}               # the county's client entry for us
      tls: {ca_bundle: certs/gov-ca.pem}
      retry: {attempts: 2}
      breaker: {failures: 3, reset_after: 30}

A route calls the operation named after the message type that crosses::

    - enrich: {connector: county_320684, operation: tax.cleared,
               into: federation.county_ack, record: county_ack}

The message keeps its id on the way: the envelope carries the id the chain of
runs started from (the ``{origin id}`` of the call's idempotency key, see
``routes.engine``), so a message parked at the province and sent again once
the county is back, or sent again because its answer was lost, is the same
message at the county. The id also goes as the request's ``Idempotency-Key``:
the county answers a repeat with its first acknowledgement and hands nothing
over again (``web.idempotency``), and one that comes after those records
expired, or under another key, is absorbed by its routes' processed records.
The peer answers with
its acknowledgement (``id``, ``status``, ``hub``, ``received_at``), the call's
reply: ``record:`` keeps it as a verification record of the case.

``hub.hops_reported`` is the one operation with a body of its own: the hops a
route ran for the case (``report_hops`` step), under an id derived from the
call's idempotency key, so a report sent again is recorded once.

Retries, the breaker and the limits are those of every connector
(``connectors.resilience``): a peer that is down opens its own breaker and
parks only the messages of the routes calling it. A peer's 409 ``in_progress``
says it is still handing over the first copy of this envelope (the first
attempt's answer was lost, the retry overtook it): that is recoverable, tried
again after the peer's ``Retry-After`` and parked when the attempts run out,
never dead-lettered as the other refusals (4xx) are.
"""

from __future__ import annotations

import re
import threading
import uuid
from dataclasses import replace
from typing import Any

from bdchub.core.errors import PermanentError, RecoverableError
from bdchub.core.i18n import _
from bdchub.core.ids import derive_id

from .base import CallContext, Connector, Health
from .http import POOL_SCHEMA, TLS_SCHEMA
from .registry import CallProblem

#: Where a hub takes envelopes from its peers (``web.federation``).
ENVELOPES_PATH = "/api/v1/hub/envelopes"
#: The type of a report of a case's hops, recorded in the receiving hub's trace.
HOPS_REPORTED = "hub.hops_reported"
#: The peer's answer to a copy of an envelope whose first copy it is still handing over.
IN_PROGRESS = "in_progress"
#: Seconds to wait before sending again when the peer says in_progress without Retry-After.
IN_PROGRESS_WAIT = 1.0
_MESSAGE_TYPE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")


def origin_id(context: CallContext) -> str:
    """The id of the message a chain of runs started from: the head of the call's
    idempotency key (``{origin}:{route}:{step}``), which a parked or replayed copy
    keeps while its own id changes; else the message's id."""
    head = context.idempotency_key.partition(":")[0]
    try:
        return str(uuid.UUID(head)) if head else context.message_id
    except ValueError:
        return context.message_id


class HubConnector(Connector):
    """A peer hub's inbound envelope API (see the module's text)."""

    type_name = "hub"
    loop_ready = True  # through the REST connector, which waits on the loop
    config_schema: dict[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["base_url", "app_key", "app_secret"],
        "properties": {
            "base_url": {"type": "string", "pattern": "^https?://",
                         "description": "the peer hub's inbound API, http(s)://host[:port]"},
            "app_key": {"type": "string", "minLength": 1, "maxLength": 128,
                        "description": "the key of this hub's client entry at the peer"},
            "app_secret": {"type": "string", "minLength": 16, "secret": True,
                           "description": "its secret (16 characters or more); write ${VAR}"},
            "path": {"type": "string", "pattern": "^/", "default": ENVELOPES_PATH,
                     "description": "where the peer takes envelopes"},
            "tls": TLS_SCHEMA,
            "pool": POOL_SCHEMA,
        },
    }

    def __init__(self, name: str, config: dict[str, Any], **kwargs: Any):
        super().__init__(name, config, **kwargs)
        self._rest: Any = None
        self._lock = threading.Lock()

    def rest_block(self) -> dict[str, Any]:
        """The REST block the calls go through: one signed POST, the peer's health probe."""
        cfg = self.config
        block: dict[str, Any] = {
            "type": "rest", "base_url": cfg["base_url"], "timeout": self.timeout,
            "auth": {"scheme": "appkey", "app_key": cfg["app_key"],
                     "app_secret": cfg["app_secret"]},
            "health": {"path": "/api/v1/health", "method": "GET", "auth": False},
            # 409 comes back as an answer so call() can tell in_progress from the
            # other conflicts; every other status outside 2xx is classified as usual.
            "operations": {"envelope": {"method": "POST",
                                        "path": cfg.get("path", ENVELOPES_PATH),
                                        "expect": [200, 201, 202, 409]}},
        }
        for key in ("tls", "pool", "limits"):
            if key in cfg:
                block[key] = cfg[key]
        return block

    def open(self) -> None:
        from .rest import RestConnector  # requests and jmespath only when a hub is called

        with self._lock:
            if self._rest is None:
                rest = RestConnector(self.name, self.rest_block(), base_dir=self.base_dir)
                rest.open()
                self._rest = rest

    def close(self) -> None:
        with self._lock:
            rest, self._rest = self._rest, None
        if rest is not None:
            rest.close()

    def call(self, operation: str, payload: Any, context: CallContext | None = None) -> Any:
        context = context or CallContext()
        if self._rest is None:
            self.open()
        envelope = self.envelope(operation, payload, context)
        # The envelope's id is the request's Idempotency-Key: the peer answers a
        # repeat with its first acknowledgement and hands nothing over again.
        reply = self._rest.call("envelope", envelope,
                                replace(context, idempotency_key=envelope["id"]))
        refusal = reply.get("error") if isinstance(reply, dict) else None
        if isinstance(refusal, dict):  # only a 409 gets here with an error body
            raise self.conflict(operation, refusal)
        return reply

    def conflict(self, operation: str, refusal: dict[str, Any]) -> PermanentError | RecoverableError:
        """The error for the peer's 409: recoverable while it still hands over the
        first copy (``in_progress``), permanent for any other conflict."""
        code = str(refusal.get("code") or "")
        text = _("connector {name}: operation {op} answered HTTP 409 {code}: {message}",
                 name=self.name, op=operation, code=code or "-",
                 message=str(refusal.get("message") or "")[:200])
        if code == IN_PROGRESS:
            return RecoverableError(text, connector=self.name, operation=operation, status=409,
                                    retry_after=IN_PROGRESS_WAIT)
        return PermanentError(text, connector=self.name, operation=operation, status=409)

    def envelope(self, operation: str, payload: Any, context: CallContext) -> dict[str, Any]:
        """The envelope as it crosses (see the module's text)."""
        def refuse(message: str) -> PermanentError:
            return PermanentError(message, connector=self.name, operation=operation)

        if not _MESSAGE_TYPE.match(operation):
            raise refuse(_("connector {name}: the operation of a hub connector is the message "
                           "type that crosses, e.g. tax.cleared; got {op}", name=self.name,
                           op=operation))
        if not isinstance(payload, dict):
            raise refuse(_("connector {name}: a message body is an object",
                           name=self.name))
        origin = origin_id(context)
        if not origin:
            raise refuse(_("connector {name}: only a route's message crosses to a peer hub "
                           "(the call has no message id)", name=self.name))
        return {"id": (derive_id(origin, operation, context.idempotency_key)
                       if operation == HOPS_REPORTED else origin),
                "type": operation, "tenant": context.tenant,
                "business_no": context.business_no,
                "headers": {str(k): str(v) for k, v in context.headers.items()},
                "body": payload}

    def health(self) -> Health:
        if self._rest is None:
            self.open()
        return self._rest.health()

    def classify(self, exc: BaseException) -> Any:
        from .http_errors import classify_requests_error

        return classify_requests_error(exc, connector=self.name)

    @classmethod
    def config_check(cls, name: str, block: Any, base_dir: Any) -> OperationCheck:
        """``hub check`` of a route's call: its operation must be a message type."""
        return OperationCheck(name)


class OperationCheck:
    """The calls of a hub connector name message types (``connectors.registry``'s hook)."""

    def __init__(self, name: str):
        self.name = name

    def call(self, operation: str, payload_keys: list[str]) -> list[CallProblem]:
        if _MESSAGE_TYPE.match(operation):
            return []
        return [CallProblem(("operation",), _(
            "connector '{connector}' is a peer hub: its operation is the message type that "
            "crosses (dotted lowercase words, e.g. tax.cleared), not '{op}'",
            connector=self.name, op=operation))]
