"""The one way into the hub, shared by the front doors (``web.app``'s JSON API and
endpoints, ``web.soap``).

A front door reads its wire format; the intake does the rest, and is the only
code that hands a message to the hub::

    size (413) -> authenticate: signature and nonce, or a WS-Security token (401)
    -> schema (422) -> tenant allowed (400/403) -> envelope
    -> hub.publish or hub.submit (503) -> audit "inbound.accepted"

Each step raises ``ApiError``; the front door answers it in its own form and
``reject`` counts and audits it. Nothing reaches the hub unless every step passed.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from bdchub.core import greenloop
from bdchub.core.envelope import Envelope
from bdchub.core.errors import ConfigError, HubError
from bdchub.core.i18n import _

from .http import SIGNATURE_HEADERS, ApiError, Request
from .metrics import InboundMetrics
from .ports import HubPort
from .signing import (
    AuthFailure,
    Client,
    MemoryNonceStore,
    NonceStore,
    StoreNonceStore,
    UsernameToken,
    Verifier,
)
from .validation import Schemas

log = logging.getLogger("bdchub.web")

TENANT = re.compile(r"^\d{6}$")
ENV_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")


class Intake:
    """Checks and hands over what the front doors received. ``inbound`` is the
    ``inbound:`` block with its defaults filled in (``config_schema.with_defaults``)."""

    def __init__(self, hub: HubPort, tenant: str, inbound: Mapping[str, Any], *,
                 metrics: InboundMetrics, nonce_store: NonceStore | None = None,
                 clock: Callable[[], float] = time.time):
        self.hub = hub
        self.tenant = tenant
        if not TENANT.match(tenant):
            raise ConfigError(_("tenant '{tenant}' must be the county's 6-digit division code",
                                tenant=tenant))
        self.max_body = int(inbound["max_body_bytes"])
        self.metrics = metrics
        self.clients = {
            name: Client(name=name, app_key=c["app_key"], app_secret=_secret(c["app_secret"], name),
                         tenants=tuple(c["tenants"]), channel=c.get("channel", "other"))
            for name, c in inbound["clients"].items() if c.get("enabled", True)
        }
        keys = [c.app_key for c in self.clients.values()]
        if len(keys) != len(set(keys)):
            raise ConfigError(_("inbound clients must not share an app_key"))
        if nonce_store is None:
            if int(inbound["listen"].get("processes", 1)) > 1:
                # Several processes take requests: a replay may reach another one.
                nonce_store = StoreNonceStore(hub)
            else:
                nonce_store = MemoryNonceStore(int(inbound["nonce_capacity"]))
        self.nonces = nonce_store
        self.verifier = Verifier(self.clients, self.nonces,
                                 clock_skew=float(inbound["clock_skew"]),
                                 nonce_ttl=float(inbound["nonce_ttl"]), clock=clock)
        self.schemas = Schemas(inbound.get("message_types"))

    # -- the steps, in the order a request meets them ---------------------------
    def read_body(self, req: Request) -> bytes:
        return req.read_body(self.max_body)

    def authenticate(self, req: Request) -> Client:
        """The client that signed the request (``web.signing``)."""
        headers = {name: req.environ.get(cgi) for name, cgi in SIGNATURE_HEADERS.items()}
        try:
            client = self.verifier.verify(req.method, req.target, headers, req.body)
        except AuthFailure as failure:
            raise self._auth_error(req, failure) from None
        req.client = client
        return client

    def authenticate_token(self, req: Request, token: UsernameToken | None) -> Client:
        """The client whose WS-Security UsernameToken came with the request."""
        try:
            if token is None:
                raise AuthFailure("bad_signature", "missing_headers")
            client = self.verifier.verify_token(token)
        except AuthFailure as failure:
            raise self._auth_error(req, failure) from None
        req.client = client
        return client

    def _auth_error(self, req: Request, failure: AuthFailure) -> ApiError:
        if failure.client:
            req.client = self.clients.get(failure.client)
        if failure.code == "replayed_nonce":
            return ApiError(401, "replayed_nonce",
                            _("this nonce was already used; sign every request with a new nonce"),
                            reason=failure.reason)
        if failure.reason == "clock_skew":
            message = _("the request timestamp is too far from the hub's clock")
        elif failure.reason == "missing_headers":
            message = _("the request is not signed (X-App-Key, X-Timestamp, X-Nonce, X-Signature)")
        else:
            message = _("the request signature is not valid")
        return ApiError(401, "bad_signature", message, reason=failure.reason,
                        headers=[("WWW-Authenticate", 'HMAC-SHA256 realm="bdc-hub"')])

    def check_schema(self, name: str, body: dict[str, Any]) -> None:
        found = self.schemas.validate(name, body)
        if found:
            raise ApiError(422, "schema_violation", _("the message does not match its schema"),
                           violations=[{"path": v.path, "message": v.message,
                                        "keyword": v.keyword} for v in found])

    def choose_tenant(self, req: Request, body: dict[str, Any] | None = None) -> str:
        """The tenant the request acts for (body, else X-Tenant or ?tenant=, else the
        hub's), once the client is known to be allowed to act for it."""
        asked = req.header("HTTP_X_TENANT") or req.arg("tenant")
        in_body = body.get("tenant") if body else None
        if isinstance(in_body, str) and in_body:
            if asked and asked != in_body:
                raise ApiError(422, "schema_violation", _("the message does not match its schema"),
                               violations=[{"path": "$.tenant", "keyword": "const",
                                            "message": _("does not match the X-Tenant header")}])
            tenant = in_body
        else:
            tenant = asked or self.tenant
        if not TENANT.match(tenant):
            raise ApiError(400, "bad_request",
                           _("tenant must be a 6-digit division code"), reason="bad_tenant")
        req.tenant = tenant
        client = req.client
        if client is not None and not client.allows(tenant):
            raise ApiError(403, "tenant_forbidden",
                           _("client {client} may not act for tenant {tenant}",
                             client=client.name, tenant=tenant))
        return tenant

    def admit(self, req: Request, type_: str, body: dict[str, Any], *, schema: str | None = None,
              source: str = "", headers: Mapping[str, str] | None = None) -> Envelope:
        """Schema, tenant and envelope of a message the hub may take; nothing handed over yet."""
        if schema:
            self.check_schema(schema, body)
        tenant = self.choose_tenant(req, body)
        client = req.client
        business_no = body.get("business_no")
        envelope_headers = {"inbound.endpoint": req.endpoint}
        if client is not None:
            envelope_headers["inbound.client"] = client.name
            envelope_headers["inbound.channel"] = client.channel
        envelope_headers.update(headers or {})
        return Envelope(type=type_, tenant=tenant, body=body,
                        business_no=business_no if isinstance(business_no, str) else "",
                        source=source or (f"web:{client.name}" if client else "web"),
                        headers=envelope_headers)

    def hand_over(self, req: Request, envelope: Envelope, *, route: str | None = None) -> None:
        """Publish ``envelope`` (or queue it for ``route``) durably, then audit it accepted."""
        try:
            if route is None:
                self.hub.publish(envelope)
            else:
                self.hub.submit(route, envelope)
        except HubError as exc:
            log.warning("hand-over of %s to %s failed: %s", envelope.type, route or "the broker",
                        exc)
            raise ApiError(503, "unavailable",
                           _("the hub cannot take the message now; nothing was accepted, "
                             "try again later"), reason="publish_failed",
                           headers=[("Retry-After", "5")]) from None
        client = req.client
        self.audit("inbound.accepted", {
            "message_id": envelope.id, "type": envelope.type, "tenant": envelope.tenant,
            "business_no": envelope.business_no, "client": client.name if client else "",
            "channel": client.channel if client else "", "endpoint": req.endpoint})

    def accept(self, req: Request, type_: str, body: dict[str, Any], *,
               schema: str | None = None, source: str = "",
               headers: Mapping[str, str] | None = None, route: str | None = None) -> Envelope:
        """``admit`` then ``hand_over``: the message is the hub's once this returns."""
        envelope = self.admit(req, type_, body, schema=schema, source=source, headers=headers)
        self.hand_over(req, envelope, route=route)
        return envelope

    # -- the record --------------------------------------------------------------
    def reject(self, req: Request, err: ApiError, request_id: str) -> None:
        """Count and audit a refusal; the audit holds no personal data."""
        self.metrics.reject(req.endpoint, err.code)
        client = req.client
        fields: dict[str, Any] = {
            "request_id": request_id, "status": err.status, "code": err.code,
            "reason": err.reason, "method": req.method, "endpoint": req.endpoint,
            "client": client.name if client else "",
            "channel": client.channel if client else "",
            "app_key": (req.header("HTTP_X_APP_KEY")[:128] if not client else client.app_key),
            "remote_addr": req.header("REMOTE_ADDR"),
            "tenant": req.tenant,
        }
        if err.violations:
            # Paths and keywords only: a violation message may quote the offending value.
            fields["violations"] = [v["path"] for v in err.violations[:50]]
        self.audit("inbound.rejected", fields)

    def audit(self, event: str, fields: dict[str, Any]) -> None:
        try:
            # fsynced: on the inbound server's loop a thread waits for the disk.
            greenloop.blocking(self.hub.audit, event, **fields)
        except Exception:  # noqa: BLE001 - the answer must still go out; ops see the log
            log.exception("audit of %s failed", event)


def _secret(value: str, client: str) -> str:
    m = ENV_REF.match(value)
    if m:
        found = os.environ.get(m.group(1))
        if not found:
            raise ConfigError(_("inbound client {client}: environment variable {var} is not set",
                                client=client, var=m.group(1)))
        value = found
    if len(value) < 16:
        raise ConfigError(_("inbound client {client}: app_secret must have at least 16 characters",
                            client=client))
    return value
