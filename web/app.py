"""The inbound WSGI application: JSON API, SOAP endpoint, health, metrics, OpenAPI.

``create_app(hub, config)`` builds it once; everything costly (validators, the
OpenAPI document, the WSDL, client tables) is prepared there so a request only
reads, checks, hands over and answers. The application routes a request to its
front door (this module's JSON handlers, ``web.soap``), which reads its wire
format and passes the message through ``web.intake``, the one way into the hub.
Order of checks for a submission::

    route (404/405) -> size (413, from Content-Length before reading)
    -> signature and nonce (401) -> known type (404) -> media type (415)
    -> JSON (400) -> the client may send the type (403) -> schema (422)
    -> tenant allowed (403) -> idempotency records (409; a repeat gets the first
    answer again, ``web.idempotency``) -> hub.publish (202)

Queries of the register (endpoints of type ``query.…``) must say their purpose, are
answered masked and audited (``web.queries``).

Progress is answered only for cases the client may read (``inbound.clients.*.reads``,
``web.permissions``); any other answers 404, as an unknown one does. So are the
electronic notices of a case (``…/notices``, the PDF the routes rendered).

Corrected materials (``application.materials_updated``) are taken only for a case
the client may read that the registration agency sent back for correction
(stage ``correction``): an unknown case answers 404, a closed one 409
``case_closed``, one at another stage 409 ``not_awaiting_correction``, one past
the deadline its correction notice stated 409 ``correction_deadline_passed``; materials
marked classified answer 422 ``classified_material`` (only on site). The case
is looked at after the idempotency records, so a repeat of a correction that was
taken still gets its first answer once the case has moved on.

Every refusal answers ``{"error": {"code", "message", "violations"?, "request_id"}}``
(a SOAP fault on the SOAP endpoint) in the caller's language (``?lang=en`` or
``Accept-Language``; Chinese by default), is counted, and is audited through
``hub.audit("inbound.rejected", …)`` with no personal data. So is a refusal a
request/reply route answers itself (status 4xx, its own body; ``Intake.answered``):
the audit carries the route, the message type and the route's error code; the
answer stays the body the route made. Nothing is published
unless every check passed; the only hand-off is ``hub.publish``, which is
durable or raises.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST

from bdchub.connectors.profile import record_mapping
from bdchub.core import i18n, tracing
from bdchub.core import metrics as core_metrics
from bdchub.core.envelope import new_id
from bdchub.core.errors import (
    ConfigError,
    HubError,
    MessageError,
    PermanentError,
    RecoverableError,
    TimeoutError_,
)
from bdchub.core.i18n import _
from bdchub.core.masking import Masker
from bdchub.routes.tenants import blocks as tenant_blocks
from bdchub.routes.tenants import runtime_name, served

from . import metrics as metrics_mod
from . import openapi
from .config_schema import endpoint_defaults, with_defaults
from .dedupe import ContentId
from .federation import Federation
from .health import Health, Readiness
from .http import (
    Answer,
    ApiError,
    Handler,
    Request,
    dumps,
    json_answer,
    read_json,
    request_language,
    status_line,
)
from .idempotency import Replay
from .intake import Intake
from .mounts import mounted
from .ports import HubPort
from .queries import Queries, is_query
from .relay import Relay
from .signing import NonceStore
from .soap import SoapEndpoint

log = logging.getLogger("bdchub.web")

API = "/api/v1"
BUSINESS_NO = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
NOTICE_ID = re.compile(r"^[0-9a-f-]{36}$")
MATERIALS = "application.materials_updated"
APPOINTMENT = "appointment.requested"
#: Stages after which a case takes nothing more (it ended refused or archived).
CLOSED_STAGES = frozenset({"refusal", "refusal_to_register", "archive"})


def builtin_endpoints(*, metrics: bool = True) -> list[tuple[str, str, str, str]]:
    """(method, path, handler, what) of what every hub serves besides its routes'
    endpoints: the table ``InboundApp`` is built from, and what ``hub run`` lists."""
    found = [
        ("POST", f"{API}/applications", "post_application",
         _("submit an application (application.submitted)")),
        ("POST", f"{API}/applications/{{business_no}}/materials", "post_materials",
         _("corrected or added materials of an application (application.materials_updated)")),
        ("POST", f"{API}/appointments", "post_appointment",
         _("book an appointment (appointment.requested)")),
        ("POST", f"{API}/messages/{{type}}", "post_message", _("a message of a known type")),
        ("GET", f"{API}/progress/{{business_no}}", "get_progress_by_business_no",
         _("progress of one case")),
        ("GET", f"{API}/progress", "get_progress_by_applicant",
         _("progress of one applicant's cases (?id_number=)")),
        ("POST", f"{API}/hub/envelopes", "federation.post_envelope",
         _("an envelope from a peer hub (federation), taken under its own id")),
        ("GET", f"{API}/applications/{{business_no}}/notices", "get_notices",
         _("the electronic notices of one case (acceptance, refusal, correction)")),
        ("GET", f"{API}/applications/{{business_no}}/notices/{{notice_id}}", "get_notice",
         _("one electronic notice, as its PDF file")),
        ("GET", "/healthz", "health.alive", _("liveness: the process answers")),
        ("GET", "/readyz", "health.ready",
         _("readiness: store, broker, route workers and pollers answer (else 503)")),
        ("GET", f"{API}/health", "health.alive", _("liveness (the same as /healthz)")),
        ("GET", "/openapi.json", "get_openapi", _("this API as OpenAPI 3.1")),
        ("GET", "/soap/inbound", "soap.get_wsdl", _("WSDL of the SOAP endpoint (?wsdl)")),
        ("POST", "/soap/inbound", "soap.post",
         _("SOAP 1.1 for the registration system: ReportStageChange, SubmitResult")),
    ]
    if metrics:
        found.append(("GET", "/metrics", "get_metrics", _("Prometheus metrics")))
    return found


class InboundApp:
    def __init__(self, hub: HubPort, config: dict[str, Any], *,
                 metrics: metrics_mod.InboundMetrics | None = None,
                 nonce_store: NonceStore | None = None,
                 clock: Callable[[], float] = time.time,
                 readiness: Readiness | None = None):
        self.hub = hub
        self.config = cfg = with_defaults(config.get("inbound"))
        self.connectors_config = config.get("connectors") or {}
        self.metrics = metrics or metrics_mod.default()
        self.intake = Intake(hub, str(config.get("tenant") or ""), cfg, metrics=self.metrics,
                             nonce_store=nonce_store, clock=clock, routes=_all_routes(config),
                             served=served(config))
        self.tenant = self.intake.tenant
        self.max_body = self.intake.max_body
        self.nonces = self.intake.nonces
        self.schemas = self.intake.schemas
        self.language = cfg.get("language")
        self.masker = Masker.from_config(config.get("masking"))
        self.queries = Queries(self.masker, self.intake.audit)
        self._openapi: bytes | None = None
        self.public_url = cfg.get("public_url")
        self.soap = SoapEndpoint(self.intake, public_url=self.public_url)
        self.readiness = readiness if readiness is not None else getattr(hub, "readiness", None)
        self.health = Health(self.tenant, self.readiness)

        # Handlers that wait only through core.greenloop: the inbound server runs
        # them on its event loop; the others (publishing, store queries, SOAP) in threads.
        self._inline: set[Handler] = {self.health.alive}
        # Exact paths, then templates with {param} segments (compiled once).
        self.exact: dict[str, tuple[str, dict[str, Handler]]] = {}
        self.patterns: list[tuple[re.Pattern[str], str, dict[str, Handler]]] = []
        owners: dict[str, Any] = {"soap": self.soap, "health": self.health,
                                  "federation": Federation(self.intake, hub)}
        for method, path, name, _what in builtin_endpoints(metrics=cfg.get("metrics", True)):
            owner: Any = owners.get(name.partition(".")[0], self) if "." in name else self
            self._serve(method, path, getattr(owner, name.rpartition(".")[2]))
        self.endpoints = list(cfg["endpoints"])
        seen = {(e["method"], e["path"]): e["route"] for e in self.endpoints}
        for endpoint in hub.endpoints():
            endpoint = endpoint_defaults(endpoint)
            if seen.get((endpoint["method"], endpoint["path"])) == endpoint["route"]:
                continue  # also listed under inbound.endpoints (perhaps with a schema)
            self.endpoints.append(endpoint)
        for endpoint in self.endpoints:
            self._add_endpoint(endpoint)
        # Applications of parts above web under a prefix (the console): (prefix, app).
        self.mounts = mounted(hub, dict(config))

    # -- set-up ----------------------------------------------------------------
    def _add_endpoint(self, endpoint: dict[str, Any]) -> None:
        path, method = endpoint["path"], endpoint["method"]
        schema = endpoint.get("schema")
        if schema:
            try:
                self.schemas.load(schema)
            except HubError as exc:
                raise ConfigError(_("inbound endpoint {method} {path}: {error}",
                                    method=method, path=path, error=exc)) from exc
        self._serve(method, path, self._sync_handler(endpoint))

    def _serve(self, method: str, path: str, handler: Handler) -> None:
        if "{" not in path:
            template, methods = self.exact.setdefault(path, (path, {}))
        else:
            regex = "^" + re.sub(r"\\\{[^}]+\\\}", "([^/]+)", re.escape(path)) + "$"
            pattern = re.compile(regex)
            same = [entry for entry in self.patterns if entry[0].pattern == regex]
            if same:
                _pattern, template, methods = same[0]
            else:
                template, methods = path, {}
                self.patterns.insert(0, (pattern, template, methods))
        if method in methods:
            raise ConfigError(_("inbound endpoint {method} {path} is defined twice or clashes "
                                "with a built-in one", method=method, path=path))
        methods[method] = handler

    def runs_inline(self, method: str, path: str) -> bool:
        """Whether ``method path`` may run on the inbound server's event loop
        (``core.greenloop``): request/reply routes and the health check."""
        found = self._lookup(path)
        handler = found[1].get(method) if found else None
        return handler is not None and handler in self._inline

    def _lookup(self, path: str) -> tuple[str, dict[str, Handler], tuple[str, ...]] | None:
        """(endpoint template, handlers by method, path parameters) for ``path``."""
        entry = self.exact.get(path)
        if entry is not None:
            return entry[0], entry[1], ()
        for pattern, template, methods in self.patterns:
            m = pattern.match(path)
            if m:
                return template, methods, m.groups()
        return None

    # -- WSGI ------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        if self.mounts:
            path = environ.get("PATH_INFO") or "/"
            for prefix, app in self.mounts:
                if path == prefix or path.startswith(prefix + "/"):
                    return app(environ, start_response)
        traced = tracing.ACTIVE
        if traced is not None:
            return self._traced(traced, environ, start_response)
        return self._respond(environ, start_response)

    def _respond(self, environ: dict[str, Any], start_response: Callable,
                 span: Any = None) -> Iterable[bytes]:
        started = time.perf_counter()
        req = Request(environ, environ.get("REQUEST_METHOD", "GET"),
                      environ.get("PATH_INFO") or "/", started)
        lang = self._language(req)
        if lang:
            with i18n.use_language(lang):
                status, headers, body = self._dispatch(req)
        else:
            status, headers, body = self._dispatch(req)
        headers.append(("Content-Length", str(len(body))))
        start_response(status_line(status), headers)
        self.metrics.observe(req.endpoint, status, time.perf_counter() - started)
        if span is not None:
            # The endpoint's template, not the path: a path may hold a business number.
            span.update_name(f"inbound {req.method} {req.endpoint or '-'}")
            span.set_attribute("http.route", req.endpoint or "")
            span.set_attribute("http.response.status_code", status)
            if req.client is not None:
                span.set_attribute("bdchub.client", req.client.name)
        return [body]

    def _traced(self, traced: Any, environ: dict[str, Any],
                start_response: Callable) -> Iterable[bytes]:
        """The request in a server span, child of the caller's ``traceparent`` if it
        sent one; what the request hands the hub carries this span's (``routes.runtime``)."""
        caller = {key: environ[name] for key, name in ((tracing.TRACEPARENT, "HTTP_TRACEPARENT"),
                                                       (tracing.TRACESTATE, "HTTP_TRACESTATE"))
                  if name in environ}
        method = environ.get("REQUEST_METHOD", "GET")
        span = traced.start(f"inbound {method}", "server", {"http.request.method": method},
                            parent=caller)
        with traced.current(span):
            return self._respond(environ, start_response, span)

    def _language(self, req: Request) -> str | None:
        return request_language(req, self.language)

    def _dispatch(self, req: Request) -> Answer:
        records = self.intake.idempotency
        try:
            handler = self._match(req)
            answer = handler(req)
        except Replay as replay:
            self._replayed(req, replay)
            return replay.answer
        except ApiError as err:
            records.abandon(req)
            return self._refuse(req, err)
        except Exception:  # noqa: BLE001 - one bad request must never take the server down
            records.abandon(req)
            log.exception("inbound request failed: %s %s", req.method, req.endpoint)
            return self._refuse(req, ApiError(500, "internal_error",
                                              _("internal error; the request was not accepted"),
                                              reason="exception"))
        records.settle(req, answer)
        return answer

    def _replayed(self, req: Request, replay: Replay) -> None:
        client = req.client
        self.intake.audit("inbound.replayed", {
            "message_id": replay.message_id, "by": replay.scope, "tenant": req.tenant,
            "client": client.name if client else "", "channel": client.channel if client else "",
            "endpoint": req.endpoint})

    def _match(self, req: Request) -> Handler:
        found = self._lookup(req.path)
        if found is None:
            raise ApiError(404, "not_found", _("no such resource"), reason="no_route")
        req.endpoint, methods, req.params = found
        handler = methods.get(req.method)
        if handler is None:
            allow = ", ".join(sorted(methods))
            raise ApiError(405, "method_not_allowed",
                           _("method {method} is not allowed here; use {allowed}",
                             method=req.method, allowed=allow),
                           headers=[("Allow", allow)])
        return handler

    # -- answers ---------------------------------------------------------------
    def _refuse(self, req: Request, err: ApiError) -> Answer:
        request_id = new_id()
        self.intake.reject(req, err, request_id)
        if req.endpoint.startswith("/soap/"):
            return self.soap.fault_answer(err, request_id)
        error: dict[str, Any] = {"code": err.code, "message": err.message, "request_id": request_id}
        if err.violations is not None:
            error["violations"] = err.violations
        return json_answer(err.status, {"error": error}, err.headers)

    def business_no_param(self, req: Request, value: str) -> str:
        if not BUSINESS_NO.match(value):
            raise ApiError(400, "bad_request", _("'{value}' is not a valid business number",
                                                 value=value[:40]), reason="bad_business_no")
        return value

    # -- submissions -----------------------------------------------------------
    def post_application(self, req: Request) -> Answer:
        return self.submit(req, "application.submitted")

    def post_appointment(self, req: Request) -> Answer:
        return self.submit(req, "appointment.requested")

    def post_message(self, req: Request) -> Answer:
        return self.submit(req, req.params[0])

    def post_materials(self, req: Request) -> Answer:
        return self.submit(req, "application.materials_updated", business_no=req.params[0])

    def submit(self, req: Request, type_: str, *, business_no: str | None = None) -> Answer:
        intake = self.intake
        intake.read_body(req)
        intake.authenticate(req)
        schema = self.schemas.schema_for(type_)
        if schema is None:
            raise ApiError(404, "unknown_type", _("unknown message type '{type}'",
                                                  type=type_[:80]))
        if business_no is not None:
            self.business_no_param(req, business_no)
        body = read_json(req)
        if business_no is not None:
            in_body = body.setdefault("business_no", business_no)
            if in_body != business_no:
                raise ApiError(422, "schema_violation", _("the message does not match its schema"),
                               violations=[{"path": "$.business_no", "keyword": "const",
                                            "message": _("does not match the business number "
                                                         "in the URL")}])
        if type_ == APPOINTMENT and body.get("business_no"):
            self._case_of_appointment(req, body, schema)
        if type_ == MATERIALS:
            envelope = self._accept_correction(req, body, schema)
        else:
            envelope = intake.accept(req, type_, body, schema=schema)
        answer = {"id": envelope.id, "business_no": envelope.business_no, "type": type_,
                  "status": "accepted"}
        extra = ([("Location", f"{API}/progress/{envelope.business_no}")]
                 if envelope.business_no else None)
        return json_answer(202, answer, extra)

    def _accept_correction(self, req: Request, body: dict[str, Any], schema: str) -> Any:
        """``Intake.accept`` for corrected materials, with the case looked at between
        the idempotency records and the hand-over (the order the module's text gives)."""
        def check(envelope: Any) -> None:
            self._awaiting_correction(req, envelope.tenant, envelope.business_no)
            _no_classified_material(envelope.body)

        return self.intake.accept(req, MATERIALS, body, schema=schema, check=check)

    def _awaiting_correction(self, req: Request, tenant: str, business_no: str) -> None:
        """The case takes corrected materials now, or the ApiError saying why not."""
        client = req.client
        try:
            scope = self.intake.read_scope(req)
        except ApiError:  # a client that reads nothing may still correct its own cases
            scope = {"client": client.name} if client is not None else {}
        found = self.hub.progress_by_business_no(tenant, business_no, **scope)
        records = [found] if isinstance(found, dict) else list(found or [])
        if not records:
            raise ApiError(404, "not_found", _("no business {business_no} in tenant {tenant}",
                                               business_no=business_no, tenant=tenant),
                           reason="correction_unknown_case")
        stage = str(records[-1].get("stage") or "")
        if stage in CLOSED_STAGES or records[-1].get("status") == "completed":
            raise ApiError(409, "case_closed", _(
                "case {business_no} is closed (stage {stage}) and takes no more materials; "
                "make a new application", business_no=business_no, stage=stage or "-"),
                reason="correction_closed_case", audit_fields={"stage": stage})
        if stage != "correction":
            raise ApiError(409, "not_awaiting_correction", _(
                "case {business_no} is at stage {stage}, not awaiting correction; materials "
                "are taken after a correction notice", business_no=business_no,
                stage=stage or "-"), reason="correction_out_of_stage",
                audit_fields={"stage": stage})
        deadline = self.hub.correction_deadline(tenant, business_no)
        today = time.strftime("%Y-%m-%d", time.localtime(self.intake.clock()))
        if deadline is not None and today > deadline:
            # The notice said by when; the case is not reopened by materials after it.
            raise ApiError(409, "correction_deadline_passed", _(
                "the correction of case {business_no} was due by {deadline}; materials are "
                "no longer taken: make a new application", business_no=business_no,
                deadline=deadline), reason="correction_deadline_passed",
                audit_fields={"deadline": deadline})

    def _case_of_appointment(self, req: Request, body: dict[str, Any], schema: str) -> None:
        """An appointment for a case (to collect the certificate, bring materials …)
        names one the client may read: another's, or an unknown one, answers 404 as
        its progress would; one that ended refused, 409 ``case_closed``. Checked before
        anything is handed over, after the checks every submission gets."""
        envelope = self.intake.admit(req, APPOINTMENT, body, schema=schema)
        found = self.hub.progress_by_business_no(envelope.tenant, envelope.business_no,
                                                 **self.intake.read_scope(req))
        records = [found] if isinstance(found, dict) else list(found or [])
        if not records:
            raise ApiError(404, "not_found", _("no business {business_no} in tenant {tenant}",
                                               business_no=envelope.business_no,
                                               tenant=envelope.tenant),
                           reason="appointment_unknown_case")
        stage = str(records[-1].get("stage") or "")
        if stage in ("refusal", "refusal_to_register"):
            raise ApiError(409, "case_closed", _(
                "case {business_no} ended refused (stage {stage}); an appointment for it "
                "cannot be made", business_no=envelope.business_no, stage=stage),
                reason="appointment_closed_case", audit_fields={"stage": stage})

    # -- notices -----------------------------------------------------------------
    def _notice_scope(self, req: Request) -> tuple[str, str, dict[str, str]]:
        intake = self.intake
        intake.read_body(req)
        intake.authenticate(req)
        business_no = self.business_no_param(req, req.params[0])
        return business_no, intake.choose_tenant(req), intake.read_scope(req)

    def get_notices(self, req: Request) -> Answer:
        business_no, tenant, scope = self._notice_scope(req)
        found = self.hub.notices(tenant, business_no, **scope)
        if not found:  # another client's case is as unknown as a missing one
            raise ApiError(404, "not_found", _("no notice of business {business_no} in "
                                               "tenant {tenant}", business_no=business_no,
                                               tenant=tenant))
        return json_answer(200, {"business_no": business_no, "tenant": tenant, "notices": [
            {**{k: n[k] for k in ("id", "kind", "name", "media_type", "sha256", "size",
                                  "created_at")},
             "url": f"{API}/applications/{business_no}/notices/{n['id']}"} for n in found]})

    def get_notice(self, req: Request) -> Answer:
        business_no, tenant, scope = self._notice_scope(req)
        notice_id = req.params[1]
        found = (self.hub.notice(tenant, business_no, notice_id, **scope)
                 if NOTICE_ID.match(notice_id) else None)
        self.intake.audit("inbound.notice_fetched", {
            "client": req.client.name if req.client else "", "tenant": tenant,
            "business_no": business_no, "notice_id": notice_id[:40], "found": bool(found)})
        if not found:
            raise ApiError(404, "not_found", _("no notice {notice_id} of business {business_no}",
                                               notice_id=notice_id[:40],
                                               business_no=business_no))
        data = base64.b64decode(found["content"])
        digest = hashlib.sha256(data).digest()
        return 200, [("Content-Type", found["media_type"]),
                     ("Content-Disposition", f'attachment; filename="{found["name"]}"'),
                     ("Repr-Digest", f"sha-256=:{base64.b64encode(digest).decode()}:"),
                     ("X-Content-SHA256", digest.hex()),
                     ("Cache-Control", "no-store")], data

    # -- progress --------------------------------------------------------------
    def get_progress_by_business_no(self, req: Request) -> Answer:
        intake = self.intake
        intake.read_body(req)
        intake.authenticate(req)
        business_no = self.business_no_param(req, req.params[0])
        tenant = intake.choose_tenant(req)
        found = self.hub.progress_by_business_no(tenant, business_no,
                                                 **intake.read_scope(req))
        records = [found] if isinstance(found, dict) else list(found or [])
        intake.audit("inbound.progress_query", {
            "client": req.client.name if req.client else "", "tenant": tenant,
            "business_no": business_no, "found": len(records)})
        if not records:  # another client's case is as unknown as a missing one
            raise ApiError(404, "not_found", _("no business {business_no} in tenant {tenant}",
                                               business_no=business_no, tenant=tenant))
        return json_answer(200, {"business_no": business_no, "tenant": tenant,
                                 "progress": self.masker(records)})

    def get_progress_by_applicant(self, req: Request) -> Answer:
        intake = self.intake
        intake.read_body(req)
        intake.authenticate(req)
        id_number = req.arg("id_number").strip()
        if not id_number or len(id_number) > 64:
            raise ApiError(400, "bad_request", _("give the applicant's ID number as ?id_number="),
                           reason="missing_id_number")
        tenant = intake.choose_tenant(req)
        records = self.hub.progress_by_applicant(tenant, id_number, **intake.read_scope(req))
        masked_id = self.masker.id_number(id_number)
        intake.audit("inbound.progress_query", {
            "client": req.client.name if req.client else "", "tenant": tenant,
            "id_number": masked_id, "found": len(records)})
        if not records:  # no case the client may read: whether others exist does not leak
            raise ApiError(404, "not_found", _("no application of this applicant in tenant "
                                               "{tenant}", tenant=tenant))
        return json_answer(200, {"id_number": masked_id, "tenant": tenant,
                                 "progress": self.masker(records)})

    # -- endpoints of routes ---------------------------------------------------
    def _sync_handler(self, endpoint: dict[str, Any]) -> Handler:
        route = endpoint["route"]
        type_ = endpoint["type"]
        reply = endpoint.get("reply", True)
        schema = endpoint.get("schema")
        signed = endpoint.get("auth", "signature") != "none"
        names = re.findall(r"\{([^}]+)\}", endpoint["path"])
        has_body = endpoint["method"] in ("POST", "PUT", "PATCH")
        intake = self.intake
        # A queued request is a callback its sender retries when unsure: the same
        # content must come out as the same message (web.dedupe).
        dedupe = (ContentId(endpoint.get("dedupe_key"),
                            where=f"inbound endpoint {endpoint['method']} {endpoint['path']}")
                  if not reply and endpoint.get("dedupe", "body") != "none" else None)
        # A system calling back in its own field names: canonical before anything reads it.
        canonical = (record_mapping(self.connectors_config, endpoint["profile"])
                     if endpoint.get("profile") else None)
        query = is_query(type_) and reply
        # An answer of another platform that belongs to a case, or is a file (web.relay).
        relay = Relay.of(endpoint, hub=self.hub, masker=self.masker,
                         read_scope=intake.read_scope, audit=intake.audit) if reply else None

        def handle(req: Request) -> Answer:
            intake.read_body(req)
            if signed:
                intake.authenticate(req)
            body = read_json(req) if has_body else {}
            if canonical is not None:
                body = canonical(body)
            headers = {f"path.{n}": v for n, v in zip(names, req.params, strict=True)}
            if req.query:
                headers["http.query"] = req.query
            if not reply:
                envelope = intake.accept(req, type_, body, schema=schema, headers=headers,
                                         route=route, dedupe=dedupe)
                return json_answer(202, {"id": envelope.id, "business_no": envelope.business_no,
                                         "type": type_, "status": "accepted"})
            if query:
                self.queries.require_purpose(body)
            envelope = intake.admit(req, type_, body, schema=schema, headers=headers)
            try:
                result = self.hub.run_sync(route, envelope)
            except MessageError as exc:
                # The route refused what the request says (a payment notice that does not
                # match its order …): the audit names the case it claimed to be about.
                raise ApiError(422, "schema_violation", str(exc),
                               violations=[{"path": p, "message": m} for p, m in exc.violations],
                               audit_fields={"type": type_, "route": route,
                                             "business_no": envelope.business_no}) from None
            except TimeoutError_ as exc:
                raise ApiError(504, "timeout", str(exc), reason="route_timeout") from None
            except RecoverableError as exc:
                raise ApiError(503, "unavailable", str(exc), reason="route_unavailable",
                               headers=[("Retry-After", "5")]) from None
            except PermanentError as exc:
                raise ApiError(502, "upstream_error", str(exc), reason="route_failed") from None
            except HubError as exc:
                log.warning("route %s failed: %s", route, exc)
                raise ApiError(500, "internal_error", str(exc), reason="route_error") from None
            status = result.headers.get("http.status") if result.headers else None
            code = int(status) if status and status.isdigit() else 200
            answer = dict(result.body)
            intake.answered(req, code, route, envelope, answer)
            if query:
                answer = self.queries.answer(req, envelope, code, answer)
            if relay is not None:
                return relay.answer(req, code, answer)
            return json_answer(code, answer)

        if reply:
            self._inline.add(handle)
        return handle

    # -- plain resources -------------------------------------------------------
    def get_metrics(self, req: Request) -> Answer:
        # The hub's whole exposition: the state read now and, with several
        # processes, every process's counts (core.metrics).
        data = core_metrics.exposition(self.metrics.registry)
        return 200, [("Content-Type", CONTENT_TYPE_LATEST)], data

    def get_openapi(self, req: Request) -> Answer:
        if self._openapi is None:  # built on first ask, then served as bytes
            self._openapi = dumps(openapi.build(self.schemas, endpoints=self.endpoints,
                                                server_url=self.public_url))
        return 200, [("Content-Type", "application/json; charset=utf-8")], self._openapi


def _no_classified_material(body: dict[str, Any]) -> None:
    """Classified spatial data is handled only on site (guide §五(一)): corrected
    materials marked ``classified`` are refused (422 ``classified_material``) with the
    instruction the refusal of an application holding one gives, and nothing of the
    correction is taken; the case keeps waiting for its materials."""
    materials = body.get("materials")
    found = [m for m in materials if isinstance(m, dict) and m.get("classified") is True] \
        if isinstance(materials, list) else []
    if not found:
        return
    names = "、".join(str(m.get("name") or "") for m in found)
    raise ApiError(422, "classified_material", _(
        "{names}: classified spatial data is handled only on site; bring it to the real "
        "estate registration hall and submit it there. Nothing of this correction was "
        "taken", names=names[:200]), reason="classified_material",
        violations=[{"path": f"$.materials[{materials.index(m)}].classified",
                     "keyword": "const", "message": _("classified spatial data is handled "
                                                      "only on site")} for m in found])


def create_app(hub: HubPort, config: dict[str, Any], **options: Any) -> InboundApp:
    """The inbound WSGI application.

    ``config`` holds ``tenant`` (6-digit division code) and ``inbound`` (see
    ``web.config_schema.INBOUND_SCHEMA``). ``options``: ``metrics`` (an
    ``InboundMetrics``, default on the process registry), ``nonce_store`` (a
    ``NonceStore``, default bounded memory), ``clock`` (for tests), ``readiness``
    (what ``/readyz`` asks, ``web.health``; default the hub's own ``readiness``).
    """
    return InboundApp(hub, config, **options)


def _all_routes(config: Mapping[str, Any]) -> dict[str, Any]:
    """The shared routes and the tenants' own (``tenants:``): what any of them
    publishes is a hub event no client may forge (``web.permissions``)."""
    found = dict(config.get("routes") or {})
    for code, block in tenant_blocks(config).items():
        for name, spec in (block.get("routes") or {}).items():
            found[runtime_name(name, code)] = spec
    return found
