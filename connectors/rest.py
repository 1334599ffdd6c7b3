"""REST/JSON endpoints: departments' sharing APIs, e-licences, one-window platforms.

A block names the endpoint and its operations; the route calls an operation
with a payload (the canonical JSON of the message or a part of it)::

    tax:
      type: rest
      base_url: https://tax.example.gov.cn/api
      auth: {scheme: appkey, app_key: K, app_secret: S}
      tls: {ca_bundle: certs/gov-ca.pem, client_cert: certs/hub.pem, client_key: certs/hub.key}
      operations:
        get_contract:
          method: GET
          path: /contracts/{contract_no}        # {JMESPath over the payload}
          query: {page: paging.page}            # name -> JMESPath
          response: data                        # JMESPath over the reply
        submit_tax:
          method: POST
          path: /tax/declarations
          body: {unit_code: unit.code, price: deal.price}   # or "@" / any JMESPath
          expect: [200, 201]
          success: {path: code, ok: ["0"], message_path: msg}

Replies: the body is parsed as JSON (``reply: json``, the default), kept as
text (``reply: text``) or ignored (``reply: none``). An empty body is
``None``. A 2xx reply that is not valid JSON is a **permanent** error: the
endpoint broke its contract, the same request would get the same answer, and
for a POST the side effect may already have happened, so blind retries are
the wrong reflex. A reply cut off in transit is a connection error and is
recoverable. HTTP statuses are classified as in ``connectors.http``.

``success`` handles APIs that answer HTTP 200 with an error code inside the
body (common on government platforms): when the value at ``path`` is not in
``ok`` the call fails, recoverable if the value is in ``recoverable``, else
permanent, with the text at ``message_path``. It, ``payload``, ``reply``
(a mapping; or ``json``/``text``/``none`` as above), ``response`` and
``records`` are the profile keys SOAP and AMQP blocks share
(``connectors.profile``): ``payload`` maps the canonical payload before
``path``, ``query`` and ``body`` read it.

Each request carries ``context.idempotency_key`` in the ``idempotency_header``
(default ``Idempotency-Key``) so a retried POST is not applied twice.
"""

from __future__ import annotations

import functools
import json
import re
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import jmespath
import requests
from jmespath.exceptions import JMESPathError
from requests.models import PreparedRequest

from bdchub.core import tracing
from bdchub.core.errors import (
    ConfigError,
    ConnectorError,
    PermanentError,
    TimeoutError_,
)
from bdchub.core.i18n import _

from . import profile
from .auth import AUTH_SCHEMA, Auth, make_auth
from .base import CallContext, Connector, Health
from .http import (
    HEADERS_SCHEMA,
    POOL_SCHEMA,
    TLS_SCHEMA,
    RequestShape,
    classify_requests_error,
    make_session,
    parse_retry_after,
    prepare,
    send,
    status_error,
    timeouts,
)

#: The body that is the whole payload (``@``, the default of POST, PUT and PATCH):
#: the payload itself, as JMESPath's ``@`` answers it, without a search.
_WHOLE = object()
_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]
_WITH_BODY = {"POST", "PUT", "PATCH"}

_MAPPING: dict[str, Any] = {
    "type": "object",
    "additionalProperties": {"anyOf": [{"type": "string"}, {"$ref": "#/$defs/mapping"}]},
}

OPERATION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["path"],
    "properties": {
        "method": {"enum": _METHODS, "default": "GET"},
        "path": {"type": "string", "description":
                 "path under base_url; {expr} is filled from the payload (JMESPath), URL-quoted"},
        "query": {"type": "object", "additionalProperties": {"type": "string"},
                  "description": "query parameter -> JMESPath over the payload (null: left out)"},
        "body": {"anyOf": [{"type": "string"}, {"$ref": "#/$defs/mapping"}, {"type": "null"}],
                 "description": "JMESPath over the payload ('@' = all of it) or an object "
                                "of JMESPaths; default: the whole payload for POST/PUT/PATCH, "
                                "none otherwise; null: no body"},
        "body_format": {"enum": ["json", "form"], "default": "json"},
        "headers": HEADERS_SCHEMA,
        "expect": {"type": "array", "items": {"type": "integer", "minimum": 100, "maximum": 599},
                   "minItems": 1, "description": "statuses that mean success; default any 2xx"},
        **profile.OPERATION_PROPERTIES,
        # The profile's reply mapping, or (as before profiles) how the body is read.
        "reply": {"anyOf": [{"enum": ["json", "text", "none"]},
                            profile.OPERATION_PROPERTIES["reply"]],
                  "default": "json",
                  "description": "json (the default), text or none: how the body is read; "
                                 "a mapping: canonical field -> JMESPath over the JSON reply"},
    },
}


class RestConnector(Connector):
    type_name = "rest"
    loop_ready = True  # connectors.http.send goes through loophttp on the loop
    config_schema: dict[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["base_url"],
        "$defs": {"mapping": _MAPPING, **profile.DEFS},
        "properties": {
            "base_url": {"type": "string", "pattern": "^https?://",
                         "description": "http(s)://host[:port][/prefix]"},
            "auth": AUTH_SCHEMA,
            "tls": TLS_SCHEMA,
            "pool": POOL_SCHEMA,
            "headers": HEADERS_SCHEMA,
            "idempotency_header": {"type": "string", "default": "Idempotency-Key",
                                   "description": "header carrying context.idempotency_key; "
                                                  "empty string: not sent"},
            **profile.BLOCK_PROPERTIES,
            "health": {
                "type": "object", "additionalProperties": False,
                "description": "probe; default HEAD base_url (up if it answers below 500)",
                "properties": {
                    "path": {"type": "string", "default": "/"},
                    "method": {"enum": ["GET", "HEAD"], "default": "GET"},
                    "expect": {"type": "array", "items": {"type": "integer"}, "minItems": 1},
                    "auth": {"type": "boolean", "default": True,
                             "description": "sign the probe like a call"},
                },
            },
            "operations": {"type": "object", "additionalProperties": OPERATION_SCHEMA,
                           "description": "operation name -> request and reply mapping"},
        },
    }

    def __init__(self, name: str, config: dict[str, Any], **kwargs: Any):
        super().__init__(name, config, **kwargs)
        self.base_url = str(config["base_url"]).rstrip("/")
        self.session: requests.Session | None = None
        self.auth: Auth | None = None
        self._ops: dict[str, dict[str, Any]] = {}
        self._profile: profile.Profile | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------- lifecycle
    def open(self) -> None:
        with self._lock:
            if self.session is not None:
                return
            self._profile = profile.Profile(self.name, self.config)
            self._ops = {op: self._compile(op, spec)
                         for op, spec in (self.config.get("operations") or {}).items()}
            session = make_session(self)
            for spec in self._ops.values():
                spec["_shape"] = RequestShape(session, spec["method"], spec.get("headers"))
            self.auth = make_auth(self.name, self.config.get("auth"), session, self.base_url)
            self.session = session

    def close(self) -> None:
        with self._lock:
            session, self.session = self.session, None
        if session is not None:
            try:
                session.close()
            except Exception:  # noqa: BLE001 - close never raises
                pass

    def _compile(self, op: str, spec: dict[str, Any]) -> dict[str, Any]:
        """JMESPath expressions compiled once, so a typo fails at open, not per message."""
        def expr(text: str, where: str) -> Any:
            try:
                return jmespath.compile(text)
            except JMESPathError as exc:
                raise ConfigError(_("connector {name}: operation {op}: bad JMESPath in "
                                    "{where}: {error}", name=self.name, op=op, where=where,
                                    error=exc)) from exc

        def mapping(value: Any, where: str) -> Any:
            if isinstance(value, dict):
                return {k: mapping(v, f"{where}.{k}") for k, v in value.items()}
            return expr(value, where)

        method = spec.get("method", "GET").upper()
        compiled = dict(spec, method=method)
        compiled["_path"] = [(m.group(0), expr(m.group(1), "path"))
                             for m in _PLACEHOLDER.finditer(spec["path"])]
        compiled["_query"] = {k: expr(v, f"query.{k}") for k, v in (spec.get("query") or {}).items()}
        if "body" in spec:
            compiled["_body"] = (None if spec["body"] is None
                                 else _WHOLE if spec["body"] == "@"
                                 else mapping(spec["body"], "body"))
        else:
            compiled["_body"] = _WHOLE if method in _WITH_BODY else None
        return compiled

    def operations(self) -> list[str]:
        return sorted(self.config.get("operations") or {})

    # ------------------------------------------------------------------ call
    def call(self, operation: str, payload: Any, context: CallContext | None = None) -> Any:
        context = context or CallContext()
        if self.session is None:
            self.open()
        spec = self._ops.get(operation)
        if spec is None:
            raise PermanentError(_("connector {name} has no operation {op}; known: {known}",
                                   name=self.name, op=operation,
                                   known=", ".join(self.operations()) or "-"),
                                 connector=self.name, operation=operation)
        assert self._profile is not None
        op = self._profile.operation(operation)
        request = self._request(operation, spec, op.request(payload), context)
        reply = self._send(operation, request, context, sign=True)
        return self._result(operation, spec, reply, op)

    def _request(self, operation: str, spec: dict[str, Any], payload: Any,
                 context: CallContext) -> Callable[[], PreparedRequest]:
        """What builds the call's request, once per attempt (signing changes it):
        the operation's ``RequestShape`` with this payload's URL, query and body."""
        path = spec["path"]
        for placeholder, expr in spec["_path"]:
            value = expr.search(payload)
            if value is None or isinstance(value, dict | list):
                raise PermanentError(
                    _("connector {name}: operation {op}: the payload has no value for "
                      "{placeholder} in the path", name=self.name, op=operation,
                      placeholder=placeholder), connector=self.name, operation=operation)
            path = path.replace(placeholder, quote(_scalar(value), safe=""), 1)
        params = {}
        for key, expr in spec["_query"].items():
            value = expr.search(payload)
            if value is not None:
                params[key] = [_scalar(v) for v in value] if isinstance(value, list) else _scalar(value)
        header = self.config.get("idempotency_header", "Idempotency-Key")
        headers = ({header: context.idempotency_key}
                   if header and context.idempotency_key else None)
        kwargs: dict[str, Any] = {}
        if spec["_body"] is not None:
            body = _apply(spec["_body"], payload)
            kwargs["data" if spec.get("body_format") == "form" else "json"] = body
        shape: RequestShape = spec["_shape"]
        return functools.partial(shape.prepare, self.base_url + path, params=params,
                                 headers=headers, **kwargs)

    def _send(self, operation: str, request: Callable[[], PreparedRequest],
              context: CallContext, *, sign: bool) -> requests.Response:
        assert self.session is not None and self.auth is not None
        for attempt in (1, 2):
            remaining = context.remaining(self.timeout)
            if remaining <= 0:
                raise TimeoutError_(_("connector {name}: the call's deadline has passed",
                                      name=self.name), connector=self.name, operation=operation)
            prepared = request()
            traced = tracing.ACTIVE
            if traced is not None:  # before signing: a signature may cover the headers
                traced.inject(prepared.headers)
            try:
                if sign:
                    self.auth.apply(prepared, remaining)
                reply = send(self.session, prepared, timeouts(context.remaining(self.timeout)),
                             connector=self.name, operation=operation)
                if traced is not None:
                    traced.note("http.response.status_code", reply.status_code)
            except ConnectorError as exc:
                exc.operation = exc.operation or operation
                raise
            except requests.RequestException as exc:
                raise classify_requests_error(exc, connector=self.name,
                                              operation=operation) from exc
            # One new credential after a 401 (expired token, rotated secret), not a loop.
            if reply.status_code == 401 and sign and attempt == 1 and self.auth.refresh():
                reply.close()
                continue
            return reply
        return reply

    def _result(self, operation: str, spec: dict[str, Any], reply: requests.Response,
                op: profile.Operation) -> Any:
        status = reply.status_code
        expected = spec.get("expect")
        if (status not in expected) if expected else not (200 <= status < 300):
            raise status_error(
                status, _("connector {name}: operation {op} answered HTTP {status}: {text}",
                          name=self.name, op=operation, status=status, text=_snippet(reply)),
                connector=self.name, operation=operation,
                retry_after=parse_retry_after(reply.headers.get("Retry-After")))
        kind = spec.get("reply", "json") if isinstance(spec.get("reply", "json"), str) else "json"
        try:
            content = reply.content
        except requests.RequestException as exc:
            raise classify_requests_error(exc, connector=self.name, operation=operation) from exc
        if kind == "none" or not content or content.isspace():
            return None
        if kind == "text":
            return reply.text
        try:
            data = _json(reply, content)
        except ValueError as exc:
            raise PermanentError(
                _("connector {name}: operation {op} answered HTTP {status} with a body that "
                  "is not valid JSON: {text}", name=self.name, op=operation, status=status,
                  text=_snippet(reply)),
                connector=self.name, operation=operation, status=status) from exc
        return op.result(data, connector=self.name, status=status)

    # ---------------------------------------------------------------- health
    def health(self) -> Health:
        started = time.monotonic()
        try:
            if self.session is None:
                self.open()
            probe = self.config.get("health")
            if probe is None:
                request = requests.Request("HEAD", self.base_url + "/")
                reply = self._send("health", functools.partial(prepare, self.session, request),
                                   CallContext(), sign=False)
                up = reply.status_code < 500
            else:
                request = requests.Request(probe.get("method", "GET"),
                                           self.base_url + probe.get("path", "/"))
                reply = self._send("health", functools.partial(prepare, self.session, request),
                                   CallContext(),
                                   sign=probe.get("auth", True))
                expected = probe.get("expect")
                up = (reply.status_code in expected) if expected else 200 <= reply.status_code < 300
            reply.close()
            return Health(up=up, latency_ms=(time.monotonic() - started) * 1000,
                          detail=f"HTTP {reply.status_code}")
        except Exception as exc:  # noqa: BLE001 - a probe reports, it does not raise
            error = exc if isinstance(exc, ConnectorError) else self.classify(exc)
            return Health(up=False, latency_ms=(time.monotonic() - started) * 1000,
                          detail=str(error))

    def classify(self, exc: BaseException) -> ConnectorError:
        return classify_requests_error(exc, connector=self.name)

    @classmethod
    def config_check(cls, name: str, block: Any, base_dir: Any) -> profile.ProfileCheck:
        """``hub check`` of the block's profile (the hook of ``connectors.registry``)."""
        return profile.ProfileCheck(name, block)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _apply(mapping: Any, payload: Any) -> Any:
    if mapping is _WHOLE:
        return payload
    if isinstance(mapping, dict):
        return {key: _apply(value, payload) for key, value in mapping.items()}
    return mapping.search(payload)


def _json(reply: requests.Response, content: bytes) -> Any:
    """``reply.json()``; a body whose charset is UTF-8 (declared, or JSON's default
    as ``requests`` takes it) is decoded straight from its bytes, without
    ``Response.text``'s copy and ``Response.json``'s guessing."""
    if reply.encoding in _UTF8:
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError:
            return reply.json()  # replaced characters, as requests reads it
        return json.loads(text)
    return reply.json()


_UTF8 = frozenset({"utf-8", "UTF-8", "utf8", "UTF8"})


def _snippet(reply: requests.Response, limit: int = 200) -> str:
    try:
        text = reply.text
    except Exception:  # noqa: BLE001 - only for the message
        return ""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."
