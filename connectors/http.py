"""What the HTTP-based connectors (REST, SOAP) share: a pooled ``requests``
session with TLS settings, ``Retry-After`` parsing and the classification of
HTTP statuses and ``requests`` errors into the hub's error tree.

The REST connector's calls skip ``requests``' per-call machinery (settings
merged again for every request, hooks, redirect bookkeeping, the body read
through generators) but not its behaviour: ``prepare`` builds the same
``PreparedRequest`` as ``Session.prepare_request`` and ``send`` hands it to
the session's mounted ``HTTPAdapter`` pool exactly as ``HTTPAdapter.send``
would (same TLS settings, no proxies, no redirects, no urllib3 retries) and
answers a ``requests.Response`` read in full. Its errors are classified as
the ``requests`` errors ``Session.send`` would have raised for them.

Classification (the same for REST and SOAP):

- connection refused/reset, DNS failure, a reply cut off mid-body: recoverable;
- no answer within the attempt's time: ``TimeoutError_`` (recoverable);
- 429, 500, 502, 503, 504: recoverable, with ``retry_after`` from the header;
- any other 4xx (and 501, 505+): permanent;
- TLS failures (untrusted certificate, client certificate refused, wrong
  host name): permanent, because they are configuration problems that no
  retry fixes.
"""

from __future__ import annotations

import email.utils
import time
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from requests.compat import json as complexjson
from requests.cookies import extract_cookies_to_jar
from requests.exceptions import InvalidJSONError
from requests.models import PreparedRequest
from requests.sessions import merge_setting
from requests.structures import CaseInsensitiveDict
from requests.utils import check_header_validity, get_encoding_from_headers
from urllib3 import Timeout
from urllib3 import exceptions as u3

from bdchub.core import greenloop
from bdchub.core.errors import (
    ConfigError,
    ConnectorError,
    PermanentError,
    RecoverableError,
)
from bdchub.core.i18n import _

from .base import Connector
from .http_errors import classify_requests_error

RECOVERABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})

TLS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": "TLS settings for https endpoints; paths are relative to the config file",
    "properties": {
        "verify": {"type": "boolean", "default": True,
                   "description": "check the server's certificate (never turn off in production)"},
        "ca_bundle": {"type": "string",
                      "description": "PEM file of the CAs to trust instead of the system ones "
                                     "(e.g. the provincial e-government CA)"},
        "client_cert": {"type": "string",
                        "description": "PEM client certificate for mutual TLS"},
        "client_key": {"type": "string",
                       "description": "PEM private key of client_cert (unencrypted), if it "
                                      "is not in the same file"},
    },
    "dependentRequired": {"client_key": ["client_cert"]},
}

POOL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": "HTTP connection pool; default size: limits.concurrency, else 10",
    "properties": {
        "connections": {"type": "integer", "minimum": 1,
                        "description": "hosts to keep pools for (default 4)"},
        "maxsize": {"type": "integer", "minimum": 1,
                    "description": "kept-alive connections per host"},
    },
}

HEADERS_SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": {"type": "string"},
    "description": "headers sent with every request",
}


def make_session(connector: Connector, *, user_agent: str = "bdc-hub") -> requests.Session:
    """A pooled session with the block's TLS settings. No urllib3 retries: the
    hub's retry policy is the only one, so attempts are counted once."""
    config = connector.config
    limits = config.get("limits") or {}
    pool = config.get("pool") or {}
    maxsize = int(pool.get("maxsize") or limits.get("concurrency") or 10)
    adapter = HTTPAdapter(pool_connections=int(pool.get("connections") or 4),
                          pool_maxsize=maxsize, max_retries=0, pool_block=False)
    session = requests.Session()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    # Proxies from the environment must not silently reroute department traffic.
    session.trust_env = False
    session.headers["User-Agent"] = user_agent
    session.headers.update(config.get("headers") or {})
    tls = config.get("tls") or {}
    if tls.get("ca_bundle"):
        session.verify = str(_existing(connector, tls["ca_bundle"], "tls.ca_bundle"))
    if tls.get("verify") is False:
        session.verify = False
    if tls.get("client_cert"):
        cert = str(_existing(connector, tls["client_cert"], "tls.client_cert"))
        if tls.get("client_key"):
            session.cert = (cert, str(_existing(connector, tls["client_key"], "tls.client_key")))
        else:
            session.cert = cert
    return session


def _existing(connector: Connector, path: str, key: str):
    resolved = connector.resolve_path(path)
    if not resolved.is_file():
        raise ConfigError(_("connector {name}: {key} file {path} not found",
                            name=connector.name, key=key, path=resolved))
    return resolved


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP-date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now if now is not None else time.time()
    return max(0.0, when.timestamp() - current)


def http_date(seconds_from_now: float) -> str:
    """An HTTP-date, for tests and sandboxes."""
    return email.utils.format_datetime(
        datetime.fromtimestamp(time.time() + seconds_from_now, tz=UTC), usegmt=True)


def status_error(status: int, message: str, *, connector: str, operation: str,
                 retry_after: float | None = None) -> ConnectorError:
    """The error for an HTTP status the operation did not expect."""
    cls = RecoverableError if status in RECOVERABLE_STATUSES else PermanentError
    return cls(message, connector=connector, operation=operation, status=status,
               retry_after=retry_after)


def prepare(session: requests.Session, request: requests.Request) -> PreparedRequest:
    """``session.prepare_request(request)`` for a session from ``make_session``,
    without copying the cookie jar and re-merging unchanging settings per call.
    Anything that session never has (request auth or cookies, session auth,
    params or hooks) takes the general path."""
    if (request.auth or request.cookies or session.auth or session.params
            or session.trust_env or any(session.hooks.values())):
        return session.prepare_request(request)
    headers = CaseInsensitiveDict(session.headers)
    if request.headers:
        headers.update(request.headers)
    for key in [k for k, v in headers.items() if v is None]:
        del headers[key]
    params = merge_setting(request.params, session.params) if request.params else None
    prepared = PreparedRequest()
    # PreparedRequest.prepare's steps in its order, with two shortcuts: a URL
    # without params is normalised once per distinct URL, and an empty cookie
    # jar (the usual case) adds no Cookie header, so it is not consulted.
    prepared.prepare_method(request.method.upper())
    if params:
        prepared.prepare_url(request.url, params)
    else:
        prepared.url = _prepared_url(request.url)
    prepared.prepare_headers(headers)
    if len(session.cookies):
        prepared.prepare_cookies(session.cookies)  # read, not kept: the Cookie header
    else:
        prepared._cookies = session.cookies
    prepared.prepare_body(request.data, request.files, request.json)
    prepared.prepare_auth(None, request.url)
    prepared.prepare_hooks(request.hooks)
    return prepared


class RequestShape:
    """What every request of one operation of one connector shares, prepared once:
    its method and its headers (the session's merged with the operation's, each
    checked as ``prepare_headers`` checks it). ``prepare`` then builds the same
    ``PreparedRequest`` as ``prepare(session, Request(...))`` without a
    ``Request``, without merging and checking the unchanging headers again.

    The shape belongs to one connector's session, taken when the connector opens
    (``make_session`` sets the session's headers once; nothing changes them
    later): it is never shared between connectors, whose headers, cookies and
    TLS settings differ."""

    __slots__ = ("method", "headers", "_session")

    def __init__(self, session: requests.Session, method: str,
                 headers: dict[str, str | None] | None = None):
        merged = CaseInsensitiveDict(session.headers)
        if headers:
            merged.update(headers)
        checked = PreparedRequest()
        checked.prepare_method(method)
        checked.prepare_headers({k: v for k, v in merged.items() if v is not None})
        self.method: str = checked.method or method.upper()
        self.headers: CaseInsensitiveDict = checked.headers
        self._session = session

    def prepare(self, url: str, *, params: dict[str, Any] | None = None,
                headers: dict[str, str] | None = None, data: Any = None,
                json: Any = None) -> PreparedRequest:
        """The request to ``url`` (``params`` as its query) with ``headers`` added
        to the shape's and ``data`` or ``json`` as its body."""
        session = self._session
        if session.auth or session.params or session.trust_env or any(session.hooks.values()):
            return prepare(session, requests.Request(
                self.method, url, params=params, data=data, json=json,
                headers={**self.headers, **(headers or {})}))
        prepared = PreparedRequest()
        prepared.method = self.method
        if params:
            prepared.prepare_url(url, params)
        else:
            prepared.url = _prepared_url(url)
        prepared.headers = self.headers.copy()
        for header in (headers or {}).items():
            check_header_validity(header)  # a value from the message may carry a newline
            prepared.headers[header[0]] = header[1]
        if len(session.cookies):
            prepared.prepare_cookies(session.cookies)  # read, not kept: the Cookie header
        else:
            prepared._cookies = session.cookies
        if json is not None and not data:
            _json_body(prepared, json)
        else:
            prepared.prepare_body(data, None, json)
        if "@" in url:  # credentials in the URL become basic auth, as prepare_auth does
            prepared.prepare_auth(None, url)
        return prepared


#: ``complexjson.dumps(body, allow_nan=False)`` as ``prepare_body`` calls it, but
#: built once: a ``dumps`` with any argument builds a new encoder every call.
_JSON_ENCODER = complexjson.JSONEncoder(allow_nan=False)


def _json_body(prepared: PreparedRequest, body: Any) -> None:
    """``prepared.prepare_body(None, None, body)``: the same bytes and headers."""
    try:
        text = _JSON_ENCODER.encode(body)
    except ValueError as exc:
        raise InvalidJSONError(exc, request=prepared) from exc
    encoded = text.encode("utf-8")
    prepared.headers["Content-Length"] = str(len(encoded))
    if "content-type" not in prepared.headers:
        prepared.headers["Content-Type"] = "application/json"
    prepared.body = encoded


@lru_cache(maxsize=4096)
def _prepared_url(url: str) -> str:
    """``url`` as ``PreparedRequest.prepare_url`` normalises it (IDNA, quoting).
    Raises what that raises (``InvalidURL``, ``MissingSchema`` …), uncached."""
    prepared = PreparedRequest()
    prepared.prepare_url(url, None)
    return prepared.url or url


def send(session: requests.Session, request: PreparedRequest,
         timeout: tuple[float, float], *, connector: str, operation: str = ""
         ) -> requests.Response:
    """``session.send(request, timeout=timeout, allow_redirects=False)`` for a
    session from ``make_session`` (no proxies), straight through the mounted
    ``HTTPAdapter``'s urllib3 pool: the reply is read in full before it is
    answered; the connection goes back to the pool. Failures raise the hub's
    errors (``classify_transport_error``).

    On the inbound server's event loop (``core.greenloop``) the same request
    goes out through ``connectors.loophttp`` and the loop serves other
    requests until the answer is in."""
    if greenloop.on_loop():
        return _loophttp().send(session, request, timeout, connector=connector,
                                operation=operation)
    url = request.url or ""
    adapter = session.get_adapter(url)
    verify, cert = session.verify, session.cert
    try:
        try:
            pool = adapter.get_connection_with_tls_context(request, verify, None, cert)
        except u3.LocationValueError as exc:
            raise requests.exceptions.InvalidURL(exc, request=request) from exc
        adapter.cert_verify(pool, url, verify, cert)
    except (requests.RequestException, OSError) as exc:
        raise classify_requests_error(exc, connector=connector, operation=operation) from exc
    chunked = not (request.body is None or "Content-Length" in request.headers)
    try:
        raw = pool.urlopen(method=request.method, url=request.path_url, body=request.body,
                           headers=request.headers, redirect=False, assert_same_host=False,
                           preload_content=False, decode_content=True,
                           retries=adapter.max_retries,
                           timeout=Timeout(connect=timeout[0], read=timeout[1]), chunked=chunked)
    except Exception as exc:
        raise classify_transport_error(exc, connector=connector,
                                       operation=operation) from exc
    try:
        content = raw.read()
    except Exception as exc:
        raise classify_transport_error(exc, connector=connector, operation=operation,
                                       reading=True) from exc
    reply = requests.Response()
    reply.status_code = raw.status
    reply.headers = CaseInsensitiveDict(raw.headers)
    reply.encoding = get_encoding_from_headers(reply.headers)
    reply.raw = raw
    reply.reason = raw.reason
    reply.url = url
    reply.request = request
    reply.connection = adapter
    reply._content = content  # read already: .content, .text and .json() answer from it
    reply._content_consumed = True
    if "Set-Cookie" in raw.headers or "Set-Cookie2" in raw.headers:
        # As Session.send: the reply's cookies, kept for the session's next requests.
        extract_cookies_to_jar(reply.cookies, request, raw)
        extract_cookies_to_jar(session.cookies, request, raw)
    return reply


@lru_cache(maxsize=1)
def _loophttp() -> Any:
    """``connectors.loophttp``, imported the first time a call runs on a loop (it
    brings in aiohttp, which a worker without the inbound server never needs)."""
    from . import loophttp

    return loophttp


def classify_transport_error(exc: BaseException, *, connector: str, operation: str = "",
                             reading: bool = False) -> ConnectorError:
    """An exception from ``send``'s urllib3 pool (``reading``: while reading the
    body) in the hub's tree: classified as ``classify_requests_error`` classifies
    the ``requests`` error that ``HTTPAdapter.send`` (or, for the body,
    ``Response.content``) raises for it, with the same text."""
    return classify_requests_error(_as_requests_error(exc, reading), connector=connector,
                                   operation=operation)


def _as_requests_error(exc: BaseException, reading: bool) -> BaseException:
    rq = requests.exceptions
    if isinstance(exc, ConnectorError | rq.RequestException):
        return exc
    if reading:  # Response.iter_content
        if isinstance(exc, u3.ProtocolError):
            return rq.ChunkedEncodingError(exc)
        if isinstance(exc, u3.DecodeError):
            return rq.ContentDecodingError(exc)
        if isinstance(exc, u3.ReadTimeoutError):
            return rq.ConnectionError(exc)
        if isinstance(exc, u3.SSLError):
            return rq.SSLError(exc)
        return exc
    # HTTPAdapter.send
    if isinstance(exc, u3.ProtocolError | OSError):
        return rq.ConnectionError(exc)
    if isinstance(exc, u3.MaxRetryError):
        reason = exc.reason
        if isinstance(reason, u3.ConnectTimeoutError) and not isinstance(
                reason, u3.NewConnectionError):
            return rq.ConnectTimeout(exc)
        if isinstance(reason, u3.ResponseError):
            return rq.RetryError(exc)
        if isinstance(reason, u3.ProxyError):
            return rq.ProxyError(exc)
        if isinstance(reason, u3.SSLError):
            return rq.SSLError(exc)
        return rq.ConnectionError(exc)
    if isinstance(exc, u3.ClosedPoolError):
        return rq.ConnectionError(exc)
    if isinstance(exc, u3.ProxyError):
        return rq.ProxyError(exc)
    if isinstance(exc, u3.SSLError):
        return rq.SSLError(exc)
    if isinstance(exc, u3.ReadTimeoutError):
        return rq.ReadTimeout(exc)
    if isinstance(exc, u3.InvalidHeader):
        return rq.InvalidHeader(exc)
    return exc


def timeouts(remaining: float) -> tuple[float, float]:
    """(connect, read) timeouts for requests from the time left."""
    remaining = max(0.001, remaining)
    return (remaining, remaining)
