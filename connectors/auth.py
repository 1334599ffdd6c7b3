"""How the REST connector proves who it is.

``auth: {scheme: ...}`` in a REST block picks one:

- ``none``;
- ``basic``: username and password;
- ``bearer``: a static ``token``, or one fetched from ``token_url`` with the
  OAuth2 client-credentials grant, kept until ``refresh_before`` seconds
  before it expires and fetched again after a 401;
- ``gjgxjhpt``: the national data-exchange platform's signed headers
  ``gjgxjhpt_rid`` (resource id), ``gjgxjhpt_sid`` (calling application id),
  ``gjgxjhpt_rtime`` (request time, ms since the epoch) and ``gjgxjhpt_sign`` =
  lower-case hex HMAC-SHA256, key the app secret, over ``"{rid}\n{sid}\n{rtime}"``
  (``canonical`` changes it). The secret is refreshed from a ``refresh``
  endpoint every ``refresh_every`` seconds (a day by default), shortly before
  the expiry the refresh reply announces, and after a 401;
- ``appkey``: headers ``X-App-Key``, ``X-Timestamp`` (seconds), ``X-Nonce``
  (32 hex characters, new for every request) and ``X-Signature`` = lower-case
  hex HMAC-SHA256, key the app secret, over
  ``"{app_key}\n{timestamp}\n{nonce}\n{METHOD}\n{path?query}\n{sha256_hex(body)}"``.

Both canonical strings are those of ``sandbox/signing.py``.

Canonical strings are ``str.format`` templates over: ``method`` (upper case),
``path`` (URL path), ``query`` (the raw query string), ``path_query`` (path
and ``?query`` when there is one), ``body_sha256`` (hex SHA-256 of the
body bytes, of b"" when there is none), ``body`` (the body as text),
``timestamp``, ``nonce``, ``app_key``, ``rid``, ``sid``, ``rtime``.

Every scheme is an ``Auth`` with ``apply(request)`` (sign one prepared
request) and ``refresh()`` (called after a 401: drop what is cached; return
``True`` if a second try may now succeed).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import string
import threading
import time
import uuid
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import jmespath
import requests

from bdchub.core import greenloop
from bdchub.core.errors import ConfigError, PermanentError, TimeoutError_
from bdchub.core.i18n import _

from .http import classify_requests_error, status_error, timeouts

GJGXJHPT_CANONICAL = "{rid}\n{sid}\n{rtime}"
APPKEY_CANONICAL = "{app_key}\n{timestamp}\n{nonce}\n{method}\n{path_query}\n{body_sha256}"

#: ``secret``: a published default here is refused at start (``core.secrets``).
_SECRET = {"type": "string", "minLength": 1, "secret": True}
DEFAULT_SECRET_PATH = "data.app_secret || app_secret || data.secret || secret"
DEFAULT_EXPIRES_PATH = "data.expires_in || expires_in"
#: Seconds a 401's refresh waits for a fetch in progress before clearing anyway.
REFRESH_WAIT = 30.0

AUTH_SCHEMA: dict[str, Any] = {
    "description": "how requests are authenticated; default none",
    "oneOf": [
        {"type": "object", "additionalProperties": False, "required": ["scheme"],
         "properties": {"scheme": {"const": "none"}}},
        {"type": "object", "additionalProperties": False,
         "required": ["scheme", "username", "password"],
         "properties": {"scheme": {"const": "basic"}, "username": {"type": "string"},
                        "password": {"type": "string", "secret": True}}},
        {"type": "object", "additionalProperties": False, "required": ["scheme"],
         "properties": {
             "scheme": {"const": "bearer"},
             "token": {**_SECRET, "description": "a static token"},
             "token_url": {"type": "string", "description":
                           "OAuth2 token endpoint (client-credentials grant), absolute "
                           "or relative to base_url"},
             "client_id": {"type": "string"},
             "client_secret": _SECRET,
             "scope": {"type": "string"},
             "client_auth": {"enum": ["basic", "body"], "default": "basic",
                             "description": "send client_id/secret as HTTP basic or form fields"},
             "token_path": {"type": "string", "default": "access_token",
                            "description": "JMESPath of the token in the reply"},
             "expires_path": {"type": "string", "default": "expires_in",
                              "description": "JMESPath of its lifetime in seconds"},
             "refresh_before": {"type": "number", "minimum": 0, "default": 60,
                                "description": "seconds before expiry to fetch a new one"}},
         "oneOf": [{"required": ["token"]},
                   {"required": ["token_url", "client_id", "client_secret"]}]},
        {"type": "object", "additionalProperties": False, "required": ["scheme", "rid", "sid"],
         "properties": {
             "scheme": {"const": "gjgxjhpt"},
             "rid": {"type": "string", "description": "requester id (gjgxjhpt_rid)"},
             "sid": {"type": "string", "description": "service id (gjgxjhpt_sid)"},
             "secret": {**_SECRET, "description": "app secret; fetched from refresh if absent"},
             "canonical": {"type": "string", "default": GJGXJHPT_CANONICAL,
                           "description": "template of the signed string"},
             "encoding": {"enum": ["hex", "base64"], "default": "hex"},
             "refresh_every": {"type": "number", "exclusiveMinimum": 0, "default": 86400,
                               "description": "seconds a secret is used before it is "
                                              "refreshed (the platform rotates daily)"},
             "refresh_before": {"type": "number", "minimum": 0, "default": 300,
                                "description": "seconds before the secret's expiry to refresh"},
             "refresh": {
                 "type": "object", "additionalProperties": False, "required": ["url"],
                 "description": "where a new app secret is fetched; the request carries the "
                                "gjgxjhpt headers signed with the newest secret (or key)",
                 "properties": {
                     "url": {"type": "string", "description": "absolute or relative to base_url"},
                     "method": {"enum": ["GET", "POST"], "default": "POST"},
                     "key": {**_SECRET, "description": "signs refresh requests when no "
                                                       "secret is known yet"},
                     "body": {"type": "object", "additionalProperties": {"type": "string"},
                              "description": "fields sent (JSON for POST, query for GET); "
                                             "templates over rid, sid, rtime, sign, app_key; "
                                             "default: no body"},
                     "app_key": {"type": "string", "description": "{app_key} in body"},
                     "secret_path": {"type": "string", "default": DEFAULT_SECRET_PATH,
                                     "description": "JMESPath of the new secret in the reply"},
                     "expires_path": {"type": "string", "default": DEFAULT_EXPIRES_PATH,
                                      "description": "JMESPath of its lifetime in seconds"},
                 }}},
         "anyOf": [{"required": ["secret"]}, {"required": ["refresh"]}]},
        {"type": "object", "additionalProperties": False,
         "required": ["scheme", "app_key", "app_secret"],
         "properties": {
             "scheme": {"const": "appkey"},
             "app_key": {"type": "string"},
             "app_secret": _SECRET,
             "key_header": {"type": "string", "default": "X-App-Key"},
             "timestamp_header": {"type": "string", "default": "X-Timestamp"},
             "nonce_header": {"type": "string", "default": "X-Nonce"},
             "signature_header": {"type": "string", "default": "X-Signature"},
             "timestamp_unit": {"enum": ["s", "ms"], "default": "s"},
             "canonical": {"type": "string", "default": APPKEY_CANONICAL},
             "encoding": {"enum": ["hex", "base64"], "default": "hex"}}},
    ],
}


def hmac_sha256(secret: str | bytes, message: str, encoding: str = "hex") -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    # hmac.digest by name: OpenSSL's one-shot HMAC, no HMAC object per signature.
    digest = hmac.digest(key, message.encode("utf-8"), "sha256")
    return digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()


FIELDS = frozenset({"method", "path", "query", "path_query", "body_sha256", "body"})


def request_fields(request: requests.PreparedRequest,
                   names: Collection[str] = FIELDS) -> dict[str, str]:
    """The template fields a canonical string may use for one request; only
    ``names`` among them are worked out (a body is hashed or decoded only for a
    template that uses it)."""
    fields: dict[str, str] = {}
    if "method" in names:
        fields["method"] = (request.method or "GET").upper()
    if "path" in names or "query" in names:
        parts = urlsplit(request.url or "")
        fields["path"] = parts.path or "/"
        fields["query"] = parts.query
    if "path_query" in names:
        fields["path_query"] = request.path_url  # the request target exactly as on the wire
    if "body_sha256" in names or "body" in names:
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode("utf-8")
        fields["body_sha256"] = hashlib.sha256(body).hexdigest()
        if "body" in names:
            fields["body"] = body.decode("utf-8", errors="replace")
    return fields


@lru_cache(maxsize=64)
def template_fields(template: str) -> frozenset[str]:
    """The request fields ``template`` uses (all of them when it cannot be read:
    filling it then fails with the error ``_fill`` reports)."""
    try:
        names = {re.split(r"[.\[!:]", name, maxsplit=1)[0]
                 for _text, name, _spec, _conv in string.Formatter().parse(template)
                 if name is not None}
    except ValueError:
        return FIELDS
    return frozenset(names & FIELDS)


def _fill(template: str, fields: dict[str, str], connector: str) -> str:
    try:
        return template.format(**fields)
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(_("connector {name}: bad canonical template {template!r}: {error}",
                            name=connector, template=template, error=exc)) from exc


class Auth:
    """No authentication. Subclasses sign requests."""

    def __init__(self, connector: str, config: dict[str, Any]):
        self.connector = connector
        self.config = config

    def apply(self, request: requests.PreparedRequest, timeout: float) -> None:
        """Add credentials to ``request`` (may fetch a token within ``timeout``)."""

    def refresh(self) -> bool:
        """Forget cached credentials after a 401; ``True`` if trying again may help."""
        return False


class BasicAuth(Auth):
    def apply(self, request: requests.PreparedRequest, timeout: float) -> None:
        raw = f"{self.config['username']}:{self.config['password']}".encode()
        request.headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()


class _Cached:
    """A value fetched from an endpoint and kept until shortly before expiry.
    One fetch at a time: concurrent callers wait for it instead of stampeding."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.value: str | None = None
        self.fresh_until = 0.0

    def valid(self) -> str | None:
        if self.value is not None and time.monotonic() < self.fresh_until:
            return self.value
        return None

    def set(self, value: str, lifetime: float) -> None:
        self.value = value
        self.fresh_until = time.monotonic() + lifetime

    def clear(self) -> None:
        self.value = None
        self.fresh_until = 0.0


class _Fetching(Auth):
    """A scheme that fetches a credential over HTTP with the connector's session."""

    def __init__(self, connector: str, config: dict[str, Any], session: requests.Session,
                 base_url: str):
        super().__init__(connector, config)
        self.session = session
        self.base_url = base_url
        self.cache = _Cached()
        self.fetches = 0  # for tests and logs

    def url(self, target: str) -> str:
        if target.startswith(("http://", "https://")):
            return target
        return self.base_url.rstrip("/") + "/" + target.lstrip("/")

    def _send(self, method: str, url: str, timeout: float, what: str, **kwargs: Any) -> Any:
        self.fetches += 1
        try:
            # Rare (a token or secret runs out) and through requests: on the
            # inbound server's loop a thread waits for it, not the loop.
            reply = greenloop.blocking(self.session.request, method, url,
                                       timeout=timeouts(timeout), **kwargs)
        except requests.RequestException as exc:
            raise classify_requests_error(exc, connector=self.connector) from exc
        if reply.status_code != 200:
            raise status_error(reply.status_code,
                               _("connector {name}: {what} refused with HTTP {status}",
                                 name=self.connector, what=what, status=reply.status_code),
                               connector=self.connector, operation=what)
        try:
            return reply.json()
        except ValueError as exc:
            raise PermanentError(_("connector {name}: {what} reply is not JSON",
                                   name=self.connector, what=what),
                                 connector=self.connector, operation=what) from exc

    def _pick(self, data: Any, path: str, what: str) -> Any:
        value = jmespath.search(path, data)
        if value in (None, ""):
            raise PermanentError(_("connector {name}: {what} reply has no {path}",
                                   name=self.connector, what=what, path=path),
                                 connector=self.connector, operation=what)
        return value

    def refresh(self) -> bool:
        with self._fetching(REFRESH_WAIT, required=False):
            self.cache.clear()
        return True

    @contextmanager
    def _fetching(self, timeout: float, *, required: bool = True) -> Iterator[None]:
        """Hold the cache's lock: one fetch at a time. On the inbound server's event
        loop the holder may be another request of the same thread, suspended in
        its fetch, so the wait must not block the loop (``greenloop.acquire``)."""
        held = greenloop.acquire(self.cache.lock, timeout)
        if not held and required:
            raise TimeoutError_(_("connector {name}: waited {seconds:.1f} s for another "
                                  "request's credential fetch", name=self.connector,
                                  seconds=timeout), connector=self.connector)
        try:
            yield
        finally:
            if held:
                self.cache.lock.release()


class BearerAuth(_Fetching):
    def token(self, timeout: float) -> str:
        if self.config.get("token"):
            return str(self.config["token"])
        value = self.cache.valid()
        if value is not None:
            return value
        with self._fetching(timeout):
            value = self.cache.valid()
            if value is None:
                value = self._fetch(timeout)
        return value

    def _fetch(self, timeout: float) -> str:
        cfg = self.config
        form = {"grant_type": "client_credentials"}
        if cfg.get("scope"):
            form["scope"] = cfg["scope"]
        kwargs: dict[str, Any] = {"data": form}
        if cfg.get("client_auth", "basic") == "basic":
            kwargs["auth"] = (cfg["client_id"], cfg["client_secret"])
        else:
            form.update(client_id=cfg["client_id"], client_secret=cfg["client_secret"])
        data = self._send("POST", self.url(cfg["token_url"]), timeout, "token", **kwargs)
        token = str(self._pick(data, cfg.get("token_path", "access_token"), "token"))
        lifetime = jmespath.search(cfg.get("expires_path", "expires_in"), data)
        try:
            lifetime = float(lifetime) if lifetime is not None else 3600.0
        except (TypeError, ValueError):
            lifetime = 3600.0
        self.cache.set(token, max(0.0, lifetime - float(cfg.get("refresh_before", 60))))
        return token

    def apply(self, request: requests.PreparedRequest, timeout: float) -> None:
        request.headers["Authorization"] = "Bearer " + self.token(timeout)

    def refresh(self) -> bool:
        if self.config.get("token"):
            return False  # a static token will not get better
        return super().refresh()


class GjgxjhptAuth(_Fetching):
    """The national data-exchange platform's signed headers, with the app
    secret rotated: refreshed ``refresh_before`` seconds before it expires
    (after ``refresh_every`` seconds at most, a day by default) and after a
    401. The refresh request is itself signed with the newest secret known,
    which platforms accept even once it expired, so a hub that was down
    over the rotation recovers on its own."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if self.config.get("secret"):
            # The configured secret's age is unknown: use it until the platform says no.
            self.cache.set(str(self.config["secret"]), float(self.config.get("refresh_every",
                                                                             86400)))
        self._newest = self.config.get("secret") or (self.config.get("refresh") or {}).get("key")

    def secret(self, timeout: float) -> str:
        value = self.cache.valid()
        if value is not None:
            return value
        if not self.config.get("refresh"):
            return str(self.config["secret"])
        with self._fetching(timeout):
            value = self.cache.valid()
            if value is None:
                value = self._fetch(timeout)
        return value

    def _headers(self, secret: str, fields: dict[str, str]) -> dict[str, str]:
        cfg = self.config
        rtime = str(int(time.time() * 1000))
        fields = {**fields, "rid": cfg["rid"], "sid": cfg["sid"], "rtime": rtime}
        canonical = _fill(cfg.get("canonical", GJGXJHPT_CANONICAL), fields, self.connector)
        return {"gjgxjhpt_rid": cfg["rid"], "gjgxjhpt_sid": cfg["sid"], "gjgxjhpt_rtime": rtime,
                "gjgxjhpt_sign": hmac_sha256(secret, canonical, cfg.get("encoding", "hex"))}

    def _fetch(self, timeout: float) -> str:
        cfg = self.config
        ref = cfg["refresh"]
        method = ref.get("method", "POST")
        url = self.url(ref["url"])
        prepared = requests.Request(method, url).prepare()
        headers = self._headers(str(self._newest or ""), request_fields(prepared))
        kwargs: dict[str, Any] = {"headers": headers}
        if ref.get("body"):
            fields = {"rid": cfg["rid"], "sid": cfg["sid"], "rtime": headers["gjgxjhpt_rtime"],
                      "sign": headers["gjgxjhpt_sign"], "app_key": ref.get("app_key", "")}
            body = {k: _fill(v, fields, self.connector) for k, v in ref["body"].items()}
            kwargs["json" if method == "POST" else "params"] = body
        data = self._send(method, url, timeout, "secret refresh", **kwargs)
        secret = str(self._pick(data, ref.get("secret_path", DEFAULT_SECRET_PATH),
                                "secret refresh"))
        lifetime = float(cfg.get("refresh_every", 86400))
        found = jmespath.search(ref.get("expires_path", DEFAULT_EXPIRES_PATH), data)
        try:
            lifetime = min(lifetime, float(found) - float(cfg.get("refresh_before", 300)))
        except (TypeError, ValueError):
            pass
        self.cache.set(secret, max(0.0, lifetime))
        self._newest = secret
        return secret

    def apply(self, request: requests.PreparedRequest, timeout: float) -> None:
        secret = self.secret(timeout)
        template = self.config.get("canonical", GJGXJHPT_CANONICAL)
        request.headers.update(self._headers(secret, request_fields(
            request, template_fields(template))))

    def refresh(self) -> bool:
        if not self.config.get("refresh"):
            return False
        return super().refresh()


class AppKeyAuth(Auth):
    def apply(self, request: requests.PreparedRequest, timeout: float) -> None:
        cfg = self.config
        now = time.time()
        timestamp = str(int(now * 1000) if cfg.get("timestamp_unit", "s") == "ms" else int(now))
        nonce = uuid.uuid4().hex
        template = cfg.get("canonical", APPKEY_CANONICAL)
        fields = request_fields(request, template_fields(template))
        fields.update(timestamp=timestamp, nonce=nonce, app_key=cfg["app_key"])
        canonical = _fill(template, fields, self.connector)
        request.headers[cfg.get("key_header", "X-App-Key")] = cfg["app_key"]
        request.headers[cfg.get("timestamp_header", "X-Timestamp")] = timestamp
        request.headers[cfg.get("nonce_header", "X-Nonce")] = nonce
        request.headers[cfg.get("signature_header", "X-Signature")] = hmac_sha256(
            cfg["app_secret"], canonical, cfg.get("encoding", "hex"))


SCHEMES: dict[str, type[Auth]] = {
    "none": Auth, "basic": BasicAuth, "bearer": BearerAuth,
    "gjgxjhpt": GjgxjhptAuth, "appkey": AppKeyAuth,
}


def make_auth(connector: str, config: dict[str, Any] | None, session: requests.Session,
              base_url: str) -> Auth:
    config = config or {"scheme": "none"}
    cls = SCHEMES.get(config.get("scheme", "none"))
    if cls is None:
        raise ConfigError(_("connector {name}: unknown auth scheme {scheme}",
                            name=connector, scheme=config.get("scheme")))
    if issubclass(cls, _Fetching):
        return cls(connector, config, session, base_url)
    return cls(connector, config)


__all__ = ["AUTH_SCHEMA", "Auth", "hmac_sha256", "make_auth"]
