"""The inbound WSGI application: JSON API, SOAP endpoint, health, metrics, OpenAPI.

``create_app(hub, config)`` builds it once; everything costly (validators, the
OpenAPI document, the WSDL, client tables) is prepared there so a request only
reads, checks, hands over and answers. Order of checks for a submission::

    route (404/405) -> size (413, from Content-Length before reading)
    -> signature and nonce (401) -> known type (404) -> media type (415)
    -> JSON (400) -> schema (422) -> tenant allowed (403) -> hub.publish (202)

Every refusal answers ``{"error": {"code", "message", "violations"?, "request_id"}}``
in the caller's language (``?lang=en`` or ``Accept-Language``; Chinese by
default), is counted, and is audited through ``hub.audit("inbound.rejected", …)``
with no personal data. Nothing is published unless every check passed; the only
hand-off is ``hub.publish``, which is durable or raises.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qs, quote

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bdchub.core import greenloop, i18n
from bdchub.core.envelope import Envelope
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

from . import metrics as metrics_mod
from . import openapi
from .config_schema import endpoint_defaults, with_defaults
from .ports import HubPort
from .signing import (
    AuthFailure,
    Client,
    MemoryNonceStore,
    NonceStore,
    StoreNonceStore,
    Verifier,
)
from .validation import Schemas

try:  # orjson (Apache-2.0/MIT) is several times faster; stdlib json is the fallback
    import orjson

    def dumps(value: Any) -> bytes:
        return orjson.dumps(value, default=str)

    loads = orjson.loads
except ImportError:  # pragma: no cover
    import json

    def dumps(value: Any) -> bytes:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"),
                          default=str).encode("utf-8")

    loads = json.loads

log = logging.getLogger("bdchub.web")

API = "/api/v1"
BUSINESS_NO = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
TENANT = re.compile(r"^\d{6}$")
ENV_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")

JSON_HEADERS = [("Content-Type", "application/json; charset=utf-8"),
                ("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff")]

STATUS_LINES = {200: "200 OK", 202: "202 Accepted", 400: "400 Bad Request",
                401: "401 Unauthorized", 403: "403 Forbidden", 404: "404 Not Found",
                405: "405 Method Not Allowed", 413: "413 Content Too Large",
                415: "415 Unsupported Media Type", 422: "422 Unprocessable Content",
                500: "500 Internal Server Error", 502: "502 Bad Gateway",
                503: "503 Service Unavailable", 504: "504 Gateway Timeout"}


def status_line(status: int) -> str:
    return STATUS_LINES.get(status) or f"{status} Status"


class ApiError(Exception):
    """A refusal. ``message`` is already translated; ``reason`` is a token for the audit."""

    def __init__(self, status: int, code: str, message: str, *,
                 violations: list[dict[str, str]] | None = None, reason: str = "",
                 headers: list[tuple[str, str]] | None = None):
        self.status = status
        self.code = code
        self.message = message
        self.violations = violations
        self.reason = reason or code
        self.headers = headers or []
        super().__init__(message)


class Request:
    """What a handler needs of one request. Built by hand: cheaper than a framework's."""

    __slots__ = ("environ", "method", "path", "query", "endpoint", "params", "client", "tenant",
                 "body", "started", "_args")

    def __init__(self, environ: dict[str, Any], method: str, path: str, started: float):
        self.environ = environ
        self.method = method
        self.path = path
        self.query: str = environ.get("QUERY_STRING") or ""
        self.endpoint = "unmatched"
        self.params: tuple[str, ...] = ()
        self.client: Client | None = None
        self.tenant = ""
        self.body = b""
        self.started = started
        self._args: dict[str, list[str]] | None = None

    def header(self, cgi_name: str) -> str:
        return self.environ.get(cgi_name) or ""

    def arg(self, name: str) -> str:
        if not self.query:
            return ""
        if self._args is None:
            self._args = parse_qs(self.query, keep_blank_values=True)
        values = self._args.get(name)
        return values[0] if values else ""

    def has_arg(self, name: str) -> bool:
        if not self.query:
            return False
        if self._args is None:
            self._args = parse_qs(self.query, keep_blank_values=True)
        return name in self._args

    @property
    def target(self) -> str:
        """The request target as the client sent it: what it signed."""
        # REQUEST_URI keeps the path's percent-encoding as sent; servers differ on
        # whether it holds the query, so the query always comes from QUERY_STRING.
        uri = self.environ.get("REQUEST_URI") or self.environ.get("RAW_URI")
        if uri:
            if uri.startswith(("http://", "https://")):  # absolute-form
                slash = uri.find("/", uri.find("//") + 2)
                uri = uri[slash:] if slash >= 0 else "/"
            path = uri.split("?", 1)[0]
        else:
            path = quote((self.environ.get("SCRIPT_NAME") or "") + self.path,
                         safe="/:@!$&'()*+,;=-._~")
        return path + ("?" + self.query if self.query else "")


Handler = Callable[[Request], tuple[int, list[tuple[str, str]], bytes]]


@lru_cache(maxsize=512)
def _accept_language(value: str) -> str | None:
    from werkzeug.datastructures import LanguageAccept
    from werkzeug.http import parse_accept_header

    best = parse_accept_header(value, LanguageAccept).best_match(["zh-CN", "zh", "en"])
    if best is None:
        return None
    return "en" if best.lower().startswith("en") else "zh_CN"


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


class InboundApp:
    def __init__(self, hub: HubPort, config: dict[str, Any], *,
                 metrics: metrics_mod.InboundMetrics | None = None,
                 nonce_store: NonceStore | None = None,
                 clock: Callable[[], float] = time.time):
        self.hub = hub
        self.tenant = str(config.get("tenant") or "")
        if not TENANT.match(self.tenant):
            raise ConfigError(_("tenant '{tenant}' must be the county's 6-digit division code",
                                tenant=self.tenant))
        self.config = cfg = with_defaults(config.get("inbound"))
        self.max_body = int(cfg["max_body_bytes"])
        self.language = cfg.get("language")
        self.metrics = metrics or metrics_mod.default()
        self.clock = clock
        self.clients = {
            name: Client(name=name, app_key=c["app_key"], app_secret=_secret(c["app_secret"], name),
                         tenants=tuple(c["tenants"]), channel=c.get("channel", "other"))
            for name, c in cfg["clients"].items() if c.get("enabled", True)
        }
        keys = [c.app_key for c in self.clients.values()]
        if len(keys) != len(set(keys)):
            raise ConfigError(_("inbound clients must not share an app_key"))
        if nonce_store is None:
            store = getattr(hub, "store", None)
            if int(cfg["listen"].get("processes", 1)) > 1 and store is not None:
                # Several processes take requests: a replay may reach another one.
                nonce_store = StoreNonceStore(store)
            else:
                nonce_store = MemoryNonceStore(int(cfg["nonce_capacity"]))
        self.nonces = nonce_store
        self.verifier = Verifier(self.clients, self.nonces, clock_skew=float(cfg["clock_skew"]),
                                 nonce_ttl=float(cfg["nonce_ttl"]), clock=clock)
        self.schemas = Schemas(cfg.get("message_types"))
        self.masker = Masker.from_config(config.get("masking"))
        self._openapi: bytes | None = None
        self.public_url = cfg.get("public_url")

        from .soap import SoapEndpoint  # after the JSON side is set up: it reuses it
        self.soap = SoapEndpoint(self)

        # Handlers that wait only through core.greenloop: the inbound server runs
        # them on its event loop; the others (publishing, store queries, SOAP) in threads.
        self._inline: set[Handler] = {self.get_health}
        # Exact paths, then templates with one {param} (compiled once).
        self.exact: dict[str, tuple[str, dict[str, Handler]]] = {
            f"{API}/applications": (f"{API}/applications", {"POST": self.post_application}),
            f"{API}/appointments": (f"{API}/appointments", {"POST": self.post_appointment}),
            f"{API}/progress": (f"{API}/progress", {"GET": self.get_progress_by_applicant}),
            f"{API}/health": (f"{API}/health", {"GET": self.get_health}),
            "/openapi.json": ("/openapi.json", {"GET": self.get_openapi}),
            "/soap/inbound": ("/soap/inbound", {"GET": self.soap.get_wsdl, "POST": self.soap.post}),
        }
        if cfg.get("metrics", True):
            self.exact["/metrics"] = ("/metrics", {"GET": self.get_metrics})
        self.patterns: list[tuple[re.Pattern[str], str, dict[str, Handler]]] = [
            (re.compile(rf"^{API}/applications/([^/]+)/materials$"),
             f"{API}/applications/{{business_no}}/materials", {"POST": self.post_materials}),
            (re.compile(rf"^{API}/messages/([^/]+)$"), f"{API}/messages/{{type}}",
             {"POST": self.post_message}),
            (re.compile(rf"^{API}/progress/([^/]+)$"), f"{API}/progress/{{business_no}}",
             {"GET": self.get_progress_by_business_no}),
        ]
        self.endpoints = list(cfg["endpoints"])
        seen = {(e["method"], e["path"]): e["route"] for e in self.endpoints}
        # Routes with ``from: {endpoint: …}`` declare their own endpoints.
        for endpoint in (hub.endpoints() if callable(getattr(hub, "endpoints", None)) else []):
            endpoint = endpoint_defaults(endpoint)
            if seen.get((endpoint["method"], endpoint["path"])) == endpoint["route"]:
                continue  # also listed under inbound.endpoints (perhaps with a schema)
            self.endpoints.append(endpoint)
        for endpoint in self.endpoints:
            self._add_endpoint(endpoint)

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
        handler = self._sync_handler(endpoint)
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
        return [body]

    def _language(self, req: Request) -> str | None:
        if req.query and req.has_arg("lang"):
            asked = i18n.normalise(req.arg("lang"))
            if asked in ("en", "zh_CN"):
                return asked
        accept = req.environ.get("HTTP_ACCEPT_LANGUAGE")
        if accept:
            found = _accept_language(accept[:200])
            if found:
                return found
        return self.language

    def _dispatch(self, req: Request) -> tuple[int, list[tuple[str, str]], bytes]:
        try:
            handler = self._match(req)
            return handler(req)
        except ApiError as err:
            return self._refuse(req, err)
        except Exception:  # noqa: BLE001 - one bad request must never take the server down
            log.exception("inbound request failed: %s %s", req.method, req.endpoint)
            return self._refuse(req, ApiError(500, "internal_error",
                                              _("internal error; the request was not accepted"),
                                              reason="exception"))

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
    @staticmethod
    def json(status: int, value: Any, extra: list[tuple[str, str]] | None = None
             ) -> tuple[int, list[tuple[str, str]], bytes]:
        headers = list(JSON_HEADERS)
        if extra:
            headers.extend(extra)
        return status, headers, dumps(value)

    def _refuse(self, req: Request, err: ApiError) -> tuple[int, list[tuple[str, str]], bytes]:
        from bdchub.core.envelope import new_id

        request_id = new_id()
        self.audit_rejection(req, err, request_id)
        error: dict[str, Any] = {"code": err.code, "message": err.message, "request_id": request_id}
        if err.violations is not None:
            error["violations"] = err.violations
        if req.endpoint.startswith("/soap/"):
            return self.soap.fault_answer(err, request_id)
        return self.json(err.status, {"error": error}, err.headers)

    def audit_rejection(self, req: Request, err: ApiError, request_id: str) -> None:
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
        self._audit("inbound.rejected", fields)

    def _audit(self, event: str, fields: dict[str, Any]) -> None:
        try:
            # fsynced: on the inbound server's loop a thread waits for the disk.
            greenloop.blocking(self.hub.audit, event, **fields)
        except Exception:  # noqa: BLE001 - the answer must still go out; ops see the log
            log.exception("audit of %s failed", event)

    # -- request pieces --------------------------------------------------------
    def read_body(self, req: Request) -> bytes:
        env = req.environ
        length = env.get("CONTENT_LENGTH") or ""
        stream = env.get("wsgi.input")
        if length:
            try:
                n = int(length)
            except ValueError:
                raise ApiError(400, "bad_request", _("Content-Length is not a number"),
                               reason="bad_content_length") from None
            if n < 0:
                raise ApiError(400, "bad_request", _("Content-Length is not a number"),
                               reason="bad_content_length")
            if n > self.max_body:
                raise ApiError(413, "too_large", _("the body is larger than {limit} bytes",
                                                   limit=self.max_body))
            body = stream.read(n) if n and stream is not None else b""
        elif env.get("wsgi.input_terminated") and stream is not None:
            body = stream.read(self.max_body + 1)  # chunked: cap the read, then judge
            if len(body) > self.max_body:
                raise ApiError(413, "too_large", _("the body is larger than {limit} bytes",
                                                   limit=self.max_body))
        else:
            body = b""
        req.body = body
        return body

    def authenticate(self, req: Request) -> Client:
        env = req.environ
        headers = {"x-app-key": env.get("HTTP_X_APP_KEY"),
                   "x-timestamp": env.get("HTTP_X_TIMESTAMP"),
                   "x-nonce": env.get("HTTP_X_NONCE"),
                   "x-signature": env.get("HTTP_X_SIGNATURE")}
        try:
            client = self.verifier.verify(req.method, req.target, headers, req.body)
        except AuthFailure as failure:
            if failure.client:
                req.client = self.clients.get(failure.client)
            raise self.auth_error(failure) from None
        req.client = client
        return client

    @staticmethod
    def auth_error(failure: AuthFailure) -> ApiError:
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

    def parse_json(self, req: Request) -> dict[str, Any]:
        ctype = req.environ.get("CONTENT_TYPE") or ""
        media, _sep, params = ctype.partition(";")
        if media.strip().lower() != "application/json":
            raise ApiError(415, "unsupported_media_type",
                           _("the body must be application/json"), reason="content_type")
        if "charset" in params.lower():
            charset = params.lower().split("charset=", 1)[1].split(";")[0].strip().strip('"')
            if charset not in ("utf-8", "utf8"):
                raise ApiError(415, "unsupported_media_type",
                               _("JSON must be encoded as UTF-8"), reason="charset")
        try:
            value = loads(req.body)
        except ValueError as exc:
            raise ApiError(400, "malformed_json", _("the body is not valid JSON: {error}",
                                                    error=str(exc)[:200])) from None
        if not isinstance(value, dict):
            raise ApiError(422, "schema_violation", _("the message does not match its schema"),
                           violations=[{"path": "$", "message": _("must be a JSON object"),
                                        "keyword": "type"}])
        return value

    def check_schema(self, name: str, body: dict[str, Any]) -> None:
        found = self.schemas.validate(name, body)
        if found:
            raise ApiError(422, "schema_violation", _("the message does not match its schema"),
                           violations=[{"path": v.path, "message": v.message,
                                        "keyword": v.keyword} for v in found])

    def choose_tenant(self, req: Request, body: dict[str, Any] | None = None) -> str:
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

    def business_no_param(self, req: Request, value: str) -> str:
        if not BUSINESS_NO.match(value):
            raise ApiError(400, "bad_request", _("'{value}' is not a valid business number",
                                                 value=value[:40]), reason="bad_business_no")
        return value

    # -- submissions -----------------------------------------------------------
    def post_application(self, req: Request):
        return self.submit(req, "application.submitted")

    def post_appointment(self, req: Request):
        return self.submit(req, "appointment.requested")

    def post_message(self, req: Request):
        return self.submit(req, req.params[0], generic=True)

    def post_materials(self, req: Request):
        business_no = req.params[0]
        return self.submit(req, "application.materials_updated", business_no=business_no)

    def submit(self, req: Request, type_: str, *, generic: bool = False,
               business_no: str | None = None):
        self.read_body(req)
        self.authenticate(req)
        schema = self.schemas.schema_for(type_)
        if schema is None:
            raise ApiError(404, "unknown_type", _("unknown message type '{type}'",
                                                  type=type_[:80]))
        if business_no is not None:
            self.business_no_param(req, business_no)
        body = self.parse_json(req)
        if business_no is not None:
            in_body = body.setdefault("business_no", business_no)
            if in_body != business_no:
                raise ApiError(422, "schema_violation", _("the message does not match its schema"),
                               violations=[{"path": "$.business_no", "keyword": "const",
                                            "message": _("does not match the business number "
                                                         "in the URL")}])
        self.check_schema(schema, body)
        tenant = self.choose_tenant(req, body)
        envelope = self.envelope(req, type_, tenant, body)
        self.publish(req, envelope)
        self._audit_accepted(req, envelope)
        answer = {"id": envelope.id, "business_no": envelope.business_no, "type": type_,
                  "status": "accepted"}
        extra = ([("Location", f"{API}/progress/{envelope.business_no}")]
                 if envelope.business_no else None)
        return self.json(202, answer, extra)

    def _audit_accepted(self, req: Request, envelope: Envelope) -> None:
        client = req.client
        self._audit("inbound.accepted", {
            "message_id": envelope.id, "type": envelope.type, "tenant": envelope.tenant,
            "business_no": envelope.business_no, "client": client.name if client else "",
            "channel": client.channel if client else "", "endpoint": req.endpoint})

    def envelope(self, req: Request, type_: str, tenant: str, body: dict[str, Any],
                 *, source: str = "") -> Envelope:
        client = req.client
        business_no = body.get("business_no")
        headers = {"inbound.endpoint": req.endpoint}
        if client is not None:
            headers["inbound.client"] = client.name
            headers["inbound.channel"] = client.channel
        return Envelope(type=type_, tenant=tenant, body=body,
                        business_no=business_no if isinstance(business_no, str) else "",
                        source=source or (f"web:{client.name}" if client else "web"),
                        headers=headers)

    def publish(self, req: Request, envelope: Envelope) -> None:
        try:
            self.hub.publish(envelope)
        except HubError as exc:
            log.warning("publish of %s failed: %s", envelope.type, exc)
            raise ApiError(503, "unavailable",
                           _("the hub cannot take the message now; nothing was accepted, "
                             "try again later"), reason="publish_failed",
                           headers=[("Retry-After", "5")]) from None

    # -- progress --------------------------------------------------------------
    def get_progress_by_business_no(self, req: Request):
        self.read_body(req)
        self.authenticate(req)
        business_no = self.business_no_param(req, req.params[0])
        tenant = self.choose_tenant(req)
        found = self.hub.progress_by_business_no(tenant, business_no)
        records = [found] if isinstance(found, dict) else list(found or [])
        self._audit("inbound.progress_query", {
            "client": req.client.name if req.client else "", "tenant": tenant,
            "business_no": business_no, "found": len(records)})
        if not records:
            raise ApiError(404, "not_found", _("no business {business_no} in tenant {tenant}",
                                               business_no=business_no, tenant=tenant))
        return self.json(200, {"business_no": business_no, "tenant": tenant,
                               "progress": self.masker(records)})

    def get_progress_by_applicant(self, req: Request):
        self.read_body(req)
        self.authenticate(req)
        id_number = req.arg("id_number").strip()
        if not id_number or len(id_number) > 64:
            raise ApiError(400, "bad_request", _("give the applicant's ID number as ?id_number="),
                           reason="missing_id_number")
        tenant = self.choose_tenant(req)
        records = self.hub.progress_by_applicant(tenant, id_number)
        masked_id = self.masker.id_number(id_number)
        self._audit("inbound.progress_query", {
            "client": req.client.name if req.client else "", "tenant": tenant,
            "id_number": masked_id, "found": len(records)})
        return self.json(200, {"id_number": masked_id, "tenant": tenant,
                               "progress": self.masker(records)})

    # -- request/reply routes --------------------------------------------------
    def _sync_handler(self, endpoint: dict[str, Any]) -> Handler:
        route = endpoint["route"]
        type_ = endpoint["type"]
        reply = endpoint.get("reply", True)
        schema = endpoint.get("schema")
        signed = endpoint.get("auth", "signature") != "none"
        names = re.findall(r"\{([^}]+)\}", endpoint["path"])
        has_body = endpoint["method"] in ("POST", "PUT", "PATCH")

        def handle(req: Request):
            self.read_body(req)
            if signed:
                self.authenticate(req)
            body = self.parse_json(req) if has_body else {}
            if schema:
                self.check_schema(schema, body)
            tenant = self.choose_tenant(req, body)
            envelope = self.envelope(req, type_, tenant, body)
            if names:
                envelope = envelope.with_headers(**{f"path.{n}": v for n, v in zip(names, req.params,
                                                                                   strict=True)})
            if req.query:
                envelope = envelope.with_headers(**{"http.query": req.query})
            if not reply:
                try:
                    self.hub.submit(route, envelope)
                except HubError as exc:
                    log.warning("submit to route %s failed: %s", route, exc)
                    raise ApiError(503, "unavailable",
                                   _("the hub cannot take the message now; nothing was accepted, "
                                     "try again later"), reason="publish_failed",
                                   headers=[("Retry-After", "5")]) from None
                self._audit_accepted(req, envelope)
                return self.json(202, {"id": envelope.id, "business_no": envelope.business_no,
                                       "type": type_, "status": "accepted"})
            try:
                result = self.hub.run_sync(route, envelope)
            except MessageError as exc:
                raise ApiError(422, "schema_violation", str(exc),
                               violations=[{"path": p, "message": m} for p, m in exc.violations]
                               ) from None
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
            return self.json(int(status) if status and status.isdigit() else 200, dict(result.body))

        if reply:
            self._inline.add(handle)
        return handle

    # -- plain resources -------------------------------------------------------
    def get_health(self, req: Request):
        return self.json(200, {"status": "ok", "tenant": self.tenant})

    def get_metrics(self, req: Request):
        data = generate_latest(self.metrics.registry)
        return 200, [("Content-Type", CONTENT_TYPE_LATEST)], data

    def get_openapi(self, req: Request):
        if self._openapi is None:  # built on first ask, then served as bytes
            self._openapi = dumps(openapi.build(self.schemas, endpoints=self.endpoints,
                                                server_url=self.public_url))
        return 200, [("Content-Type", "application/json; charset=utf-8")], self._openapi


def create_app(hub: HubPort, config: dict[str, Any], **options: Any) -> InboundApp:
    """The inbound WSGI application.

    ``config`` holds ``tenant`` (6-digit division code) and ``inbound`` (see
    ``web.config_schema.INBOUND_SCHEMA``). ``options``: ``metrics`` (an
    ``InboundMetrics``, default on the process registry), ``nonce_store`` (a
    ``NonceStore``, default bounded memory), ``clock`` (for tests).
    """
    return InboundApp(hub, config, **options)
