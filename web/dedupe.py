"""Message ids of callbacks, derived from what they say.

A department that gets no answer in time posts its callback again, with a new
nonce and timestamp but the same content. Were the retry given a fresh id it
would be a second message: a second progress report, forwarded to every window
under new idempotency keys. With an id derived from the content, the retry
is the same message and the routes' idempotency records (message id, route)
absorb it; the caller gets 202 with the same id both times.

The content is the request's scope (client, method, endpoint, tenant, path
parameters) plus the whole body (``dedupe: body``, canonical JSON, so key order
and white space do not matter). A declared key (``dedupe_key: <JMESPath>``,
e.g. the legacy system's event sequence ``XH``) names the event at its source
instead: the id is then ``core.ids.event_id`` of the type, tenant and key,
the same id the reconciler gives that event when it finds it missed, so a
late callback after a reconciliation is absorbed too. A body without that key
falls back to the whole body.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError

from bdchub.core.errors import ConfigError
from bdchub.core.i18n import _
from bdchub.core.ids import derive_id, event_id


def _canonical(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"),
                      default=str)


class ContentId:
    """How one endpoint (or front door) names what it takes in."""

    def __init__(self, key: str | None = None, *, where: str = ""):
        try:
            self.key = jmespath.compile(key) if key else None
        except JMESPathError as exc:
            raise ConfigError(_("{where}: dedupe_key '{expr}' is not a valid JMESPath "
                                "expression: {error}", where=where, expr=key, error=exc)) from exc

    def message_id(self, type_: str, tenant: str, scope: Sequence[str], body: Any) -> str:
        """The same id for the same event, or the same ``scope`` and content."""
        value = self.key.search(body) if self.key is not None else None
        if value is not None:
            return event_id(type_, tenant, value)
        digest = hashlib.sha256(_canonical(body).encode("utf-8")).hexdigest()
        return derive_id("inbound", *scope, "body", digest)
