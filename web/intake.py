"""The one way into the hub, shared by the front doors (``web.app``'s JSON API and
endpoints, ``web.soap``).

A front door reads its wire format; the intake does the rest, and is the only
code that hands a message to the hub::

    size (413) -> authenticate: signature and nonce, or a WS-Security token (401)
    -> the client, or its channel, is not suspended (403, ``web.suspensions``)
    -> the client may send this type (403, ``web.permissions``)
    -> characters (422, ``web.hygiene``) -> schema (422) -> tenant allowed (400/403)
    -> envelope (a callback's id derived from its content, ``web.dedupe``)
    -> idempotency records held (``web.idempotency``: a repeat answers its first
       answer, 409 for a reused key) -> hub.publish or hub.submit (503)
    -> audit "inbound.accepted"

Each step raises ``ApiError``; the front door answers it in its own form and
``reject`` counts and audits it. Nothing reaches the hub unless every step passed.
Each request of a known client is also counted by its channel (``InboundMetrics``:
accepted, refused, error), and every request by its client in the store every
process shares (``count``: ``Store.count_request``, batched), for the console's
channels page.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from bdchub.core import greenloop
from bdchub.core.envelope import Envelope, new_id
from bdchub.core.errors import ConfigError, HubError
from bdchub.core.i18n import _

from . import hygiene
from .dedupe import ContentId
from .http import SIGNATURE_HEADERS, ApiError, Request
from .idempotency import Idempotency
from .loopserver import Reports
from .metrics import InboundMetrics
from .permissions import Permissions, hub_events, problems
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
from .suspensions import Suspensions
from .validation import Schemas

log = logging.getLogger("bdchub.web")

TENANT = re.compile(r"^\d{6}$")
ENV_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")


class Intake:
    """Checks and hands over what the front doors received. ``inbound`` is the
    ``inbound:`` block with its defaults filled in (``config_schema.with_defaults``);
    ``routes`` the config's ``routes:`` section, whose published types are hub events
    no client may send unless it owns them (``web.permissions``)."""

    def __init__(self, hub: HubPort, tenant: str, inbound: Mapping[str, Any], *,
                 metrics: InboundMetrics, nonce_store: NonceStore | None = None,
                 clock: Callable[[], float] = time.time, routes: Any = None,
                 served: Iterable[str] = ()):
        self.hub = hub
        self.tenant = tenant
        #: the codes of a hub of several tenants (``routes.tenants.served``); empty:
        #: one tenant, and a client acts for what its ``tenants`` allow
        self.served = frozenset(served)
        self.clock = clock  # the hub's time, for the checks that read a date
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
        refused = problems(inbound["clients"], routes)
        if refused:
            raise ConfigError([f"{'.'.join(map(str, path))}: {message}"
                               for path, message in refused])
        self.events = hub_events(routes)
        self.refusals = SignatureWarnings()
        self.permissions = {name: Permissions.of(inbound["clients"][name])
                            for name in self.clients}
        if nonce_store is None:
            # A replay may reach any process or hub that opens the same store (server
            # processes, separate `hub run`s, province workers): only a hub whose store
            # nobody else can open may keep its nonces to itself.
            nonce_store = (StoreNonceStore(hub) if hub.shares_store()
                           else MemoryNonceStore(int(inbound["nonce_capacity"])))
        self.nonces = nonce_store
        self.verifier = Verifier(self.clients, self.nonces,
                                 clock_skew=float(inbound["clock_skew"]),
                                 nonce_ttl=float(inbound["nonce_ttl"]), clock=clock)
        self.schemas = Schemas(inbound.get("message_types"))
        self.idempotency = Idempotency(hub.request_records, inbound["idempotency"],
                                       clock=clock)
        self.suspensions = Suspensions.of_hub(
            hub, refresh=float(inbound.get("suspension_refresh", 5)), clock=clock)
        hygiene.warm()

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
        except HubError as exc:
            raise _nonces_unavailable(exc) from None
        req.client = client
        self.check_suspended(client)
        return client

    def authenticate_token(self, req: Request, token: UsernameToken | None) -> Client:
        """The client whose WS-Security UsernameToken came with the request."""
        try:
            if token is None:
                raise AuthFailure("bad_signature", "missing_headers")
            client = self.verifier.verify_token(token)
        except AuthFailure as failure:
            raise self._auth_error(req, failure) from None
        except HubError as exc:
            raise _nonces_unavailable(exc) from None
        req.client = client
        self.check_suspended(client)
        return client

    def _auth_error(self, req: Request, failure: AuthFailure) -> ApiError:
        if failure.client:
            req.client = self.clients.get(failure.client)
        self.refusals.note(req, failure)
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

    def check_suspended(self, client: Client) -> None:
        """Refuse a client an operator suspended, or one of a suspended channel
        (403 ``channel_suspended``), whatever it asks: called wherever a request's
        client becomes known, before anything else is done for it."""
        try:
            held = self.suspensions.holding(client.name, client.channel)
        except HubError as exc:
            log.warning("channel suspensions cannot be read: %s", exc)
            raise unavailable("suspensions_unavailable") from None
        if held is None:
            return
        since = time.strftime("%Y-%m-%d %H:%M", time.localtime(float(held["suspended_at"])))
        if held["kind"] == "client":
            message = _("client {client} is suspended since {since}: its requests are refused "
                        "until the registration agency resumes it", client=client.name,
                        since=since)
        else:
            message = _("channel {channel} is suspended since {since}: requests of its "
                        "clients ({client}) are refused until the registration agency "
                        "resumes it", channel=client.channel, client=client.name, since=since)
        raise ApiError(403, "channel_suspended", message, reason=f"{held['kind']}_suspended",
                       audit_fields={"suspended": str(held["kind"]),
                                     "suspended_by": str(held["suspended_by"]),
                                     "suspended_at": str(held["suspended_at"])})

    def permit(self, req: Request, type_: str) -> None:
        """The client may send ``type_`` (403 ``type_forbidden`` if not). A request
        without a client (an ``auth: none`` endpoint, for loopback tools) has none to ask."""
        client = req.client
        if client is None or self.permissions[client.name].may_send(type_, self.events):
            return
        event = type_ in self.events
        raise ApiError(403, "type_forbidden",
                       _("client {client} may not send {type} messages; they come only from "
                         "the systems that own them", client=client.name, type=type_)
                       if event else _("client {client} may not send {type} messages",
                                       client=client.name, type=type_),
                       reason="hub_event" if event else "not_permitted",
                       audit_fields={"type": type_})

    def read_scope(self, req: Request) -> dict[str, str]:
        """The cases the client may read, as the hub's progress queries take it: its own
        (``client``), its channel's (``channel``) or every one of the tenant (``{}``).
        A client that may read none is refused (403 ``read_forbidden``)."""
        client = req.client
        reads = self.permissions[client.name].reads if client is not None else "none"
        if reads == "own":
            return {"client": client.name}  # type: ignore[union-attr]
        if reads == "channel":
            return {"channel": client.channel}  # type: ignore[union-attr]
        if reads == "tenant":
            return {}
        raise ApiError(403, "read_forbidden",
                       _("client {client} may not read cases",
                         client=client.name if client else "-"))

    def check_text(self, body: dict[str, Any]) -> None:
        """No control or invisible formatting characters anywhere in the body."""
        found = hygiene.violations(body)
        if found:
            raise ApiError(422, "schema_violation",
                           _("the message holds characters that are not allowed"),
                           violations=found, reason="forbidden_characters")

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
            tenant = asked or self._default_tenant(req)
        if not TENANT.match(tenant):
            raise ApiError(400, "bad_request",
                           _("tenant must be a 6-digit division code"), reason="bad_tenant")
        req.tenant = tenant
        client = req.client
        if client is not None and not client.allows(tenant):
            raise ApiError(403, "tenant_forbidden",
                           _("client {client} may not act for tenant {tenant}",
                             client=client.name, tenant=tenant))
        if self.served and tenant not in self.served:
            # A client's pattern ("32*") does not open a county the hub does not hold.
            raise ApiError(403, "tenant_not_served",
                           _("this hub does not serve tenant {tenant}", tenant=tenant))
        return tenant

    def _default_tenant(self, req: Request) -> str:
        """The tenant a request naming none acts for: the hub's; on a hub of several
        tenants, the one county a client acts for, if it acts for one only."""
        client = req.client
        if self.served and client is not None and len(client.tenants) == 1 \
                and client.tenants[0] in self.served:
            return client.tenants[0]
        return self.tenant

    def admit(self, req: Request, type_: str, body: dict[str, Any], *, schema: str | None = None,
              source: str = "", headers: Mapping[str, str] | None = None,
              dedupe: ContentId | None = None) -> Envelope:
        """Characters, schema, tenant and envelope of a message a request/reply route
        runs next, or a check looks at first; nothing handed over, nothing counted yet
        (``answered`` or ``reject`` counts the request once its outcome is known)."""
        return self._envelope(req, type_, body, schema=schema, source=source,
                              headers=headers, dedupe=dedupe)

    def answered(self, req: Request, status: int, route: str, envelope: Envelope,
                 answer: Mapping[str, Any]) -> None:
        """Count and audit what a request/reply route answered. A refusal the route
        made itself (it answered 4xx: an unknown unit, a batch it would not take …)
        is audited as ``inbound.rejected`` like every refusal of the intake, with the
        route's error code (``error.code`` of its answer, else its ``status``)."""
        if status < 400:
            self.metrics.channel_accepted(req.client.channel if req.client else "")
            self.count(req, "accepted")
            return
        error = answer.get("error")
        code = error.get("code") if isinstance(error, Mapping) else answer.get("status")
        refusal = ApiError(status, str(code) if isinstance(code, str) and code
                           else "route_refused", "", reason="route_refused",
                           audit_fields={"type": envelope.type, "route": route,
                                         "business_no": envelope.business_no})
        self.reject(req, refusal, new_id())

    def _envelope(self, req: Request, type_: str, body: dict[str, Any], *,
                  schema: str | None = None, source: str = "",
                  headers: Mapping[str, str] | None = None,
                  dedupe: ContentId | None = None) -> Envelope:
        """Characters, schema, tenant and envelope of a message the hub may take.
        With ``dedupe`` the id is derived from the content, so the same callback
        posted again is the same message."""
        self.permit(req, type_)
        self.check_text(body)
        if schema:
            self.check_schema(schema, body)
        tenant = self.choose_tenant(req, body)
        client = req.client
        identity: dict[str, str] = {}
        if dedupe is not None:
            identity["id"] = dedupe.message_id(
                type_, tenant, (type_, client.name if client else "", req.method, req.endpoint,
                                tenant, *req.params, req.query), body)
        business_no = body.get("business_no")
        envelope_headers = {"inbound.endpoint": req.endpoint}
        if client is not None:
            envelope_headers["inbound.client"] = client.name
            envelope_headers["inbound.channel"] = client.channel
        envelope_headers.update(headers or {})
        return Envelope(type=type_, tenant=tenant, body=body,
                        business_no=business_no if isinstance(business_no, str) else "",
                        source=source or (f"web:{client.name}" if client else "web"),
                        headers=envelope_headers, **identity)

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
            raise unavailable("publish_failed") from None
        client = req.client
        self.metrics.channel_accepted(client.channel if client else "")
        self.count(req, "accepted")
        self.audit("inbound.accepted", {
            "message_id": envelope.id, "type": envelope.type, "tenant": envelope.tenant,
            "business_no": envelope.business_no, "client": client.name if client else "",
            "channel": client.channel if client else "", "endpoint": req.endpoint})

    def accept(self, req: Request, type_: str, body: dict[str, Any], *,
               schema: str | None = None, source: str = "",
               headers: Mapping[str, str] | None = None, route: str | None = None,
               dedupe: ContentId | None = None,
               check: Callable[[Envelope], None] | None = None) -> Envelope:
        """The checks of ``admit``, the idempotency records, ``check`` (what the case
        must be for this message; it raises ``ApiError``), then ``hand_over``: the
        message is the hub's once this returns. A repeat of a request already answered
        raises ``web.idempotency.Replay`` with that answer instead, and nothing is handed
        over: ``check`` comes after the records, so a repeat gets its first answer even
        once the case has moved on."""
        envelope = self._envelope(req, type_, body, schema=schema, source=source,
                                  headers=headers, dedupe=dedupe)
        try:
            self.idempotency.claim(req, envelope)
        except HubError as exc:
            log.warning("idempotency records unavailable: %s", exc)
            raise unavailable("idempotency_unavailable") from None
        if check is not None:
            check(envelope)
        self.hand_over(req, envelope, route=route)
        return envelope

    # -- the record --------------------------------------------------------------
    def reject(self, req: Request, err: ApiError, request_id: str) -> None:
        """Count and audit a refusal; the audit holds no personal data."""
        self.metrics.reject(req.endpoint, err.code)
        client = req.client
        self.metrics.channel_rejected(client.channel if client else "", err.status, err.code)
        self.count(req, "error" if err.status >= 500 else "refused", err.code)
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
        fields.update(err.audit_fields)
        self.audit("inbound.rejected", fields)

    def count(self, req: Request, outcome: str, code: str = "") -> None:
        """Count the request for its client where every process adds up (the store
        behind ``request_records``; a hub whose records keep no counts has none)."""
        client = req.client
        try:
            counter = getattr(self.hub.request_records(), "count_request", None)
            if counter is not None:
                counter(client=client.name if client else "",
                        channel=client.channel if client else "", tenant=req.tenant or "",
                        outcome=outcome, code=code, at=self.clock())
        except Exception:  # noqa: BLE001 - a count must never cost the answer
            log.exception("inbound request not counted")

    def audit(self, event: str, fields: dict[str, Any]) -> None:
        try:
            # fsynced: on the inbound server's loop a thread waits for the disk.
            greenloop.blocking(self.hub.audit, event, **fields)
        except Exception:  # noqa: BLE001 - the answer must still go out; ops see the log
            log.exception("audit of %s failed", event)


def unavailable(reason: str) -> ApiError:
    """503 ``unavailable`` with Retry-After: the hub could not take the message now
    (its store or broker did not answer) and nothing was accepted; ``reason`` says
    which part, for the audit."""
    return ApiError(503, "unavailable",
                    _("the hub cannot take the message now; nothing was accepted, "
                      "try again later"), reason=reason, headers=[("Retry-After", "5")])


class SignatureWarnings:
    """The log's warnings of refused signatures: the first of a client, address and
    reason at once (a client retrying with a wrong secret is what ops look for), the
    others of the next minute counted into one warning, so a client hammering with a
    bad secret does not flood the log. The audit records every refusal; a count still
    open when refusals stop is written with the next one (``Reports`` windows)."""

    def __init__(self, *, window: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self._lock = threading.Lock()
        self._last: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.reports = Reports(self._emit, window=window, clock=clock)

    def note(self, req: Request, failure: AuthFailure) -> None:
        client = req.client.name if req.client else "-"
        key = (str(req.header("REMOTE_ADDR") or "-"), client, failure.reason or failure.code)
        with self._lock:
            self.reports.flush()
            self._last[key] = {
                "endpoint": req.endpoint or req.path, "client": client, "code": failure.code,
                "reason": failure.reason, "app_key": (req.header("HTTP_X_APP_KEY") or "-")[:128]}
            self.reports.note(*key)
            if len(self._last) > 2 * self.reports.capacity:  # keys whose windows closed
                self._last = {k: v for k, v in self._last.items() if k in self.reports.open}

    def _emit(self, key: tuple[str, str, str], count: int) -> None:
        seen = self._last.get(key) or self._last.get(next(
            (k for k in self._last if k[1:] == key[1:]), key), {})
        text = _("refused the signature of a request to {endpoint} from {address} "
                 "(client {client}, app key {app_key}): {reason}",
                 endpoint=seen.get("endpoint", "-"), address=key[0],
                 client=seen.get("client", key[1]), app_key=seen.get("app_key", "-"),
                 reason=key[2])
        if count > 1:
            text += _(" ({count} times in the last minute)", count=count)
        log.warning(text, extra={"event": "signature.refused", "code": seen.get("code", ""),
                                 "reason": seen.get("reason"), "count": count,
                                 "client": "" if key[1] == "-" else key[1]})


def _nonces_unavailable(exc: HubError) -> ApiError:
    # Without the store a replay cannot be told from a first request: refuse both, for now.
    log.warning("request nonces cannot be checked: %s", exc)
    return unavailable("nonce_store")


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
