"""HTTP pieces shared by the inbound front doors: the request, the refusal, answers.

A handler takes a ``Request`` and returns an ``Answer`` (status, headers, body)
or raises ``ApiError``; the application turns the error into the front door's
own refusal (a JSON error or a SOAP fault).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qs, quote

from bdchub.core import i18n
from bdchub.core.i18n import _

from .signing import Client

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

Headers = list[tuple[str, str]]
Answer = tuple[int, Headers, bytes]

JSON_HEADERS: Headers = [("Content-Type", "application/json; charset=utf-8"),
                         ("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff")]

#: The signed-request headers (see ``web.signing``) by their WSGI names.
SIGNATURE_HEADERS = {"x-app-key": "HTTP_X_APP_KEY", "x-timestamp": "HTTP_X_TIMESTAMP",
                     "x-nonce": "HTTP_X_NONCE", "x-signature": "HTTP_X_SIGNATURE"}

STATUS_LINES = {200: "200 OK", 202: "202 Accepted", 400: "400 Bad Request",
                401: "401 Unauthorized", 403: "403 Forbidden", 404: "404 Not Found",
                405: "405 Method Not Allowed", 409: "409 Conflict", 413: "413 Content Too Large",
                415: "415 Unsupported Media Type", 422: "422 Unprocessable Content",
                500: "500 Internal Server Error", 502: "502 Bad Gateway",
                503: "503 Service Unavailable", 504: "504 Gateway Timeout"}


def status_line(status: int) -> str:
    return STATUS_LINES.get(status) or f"{status} Status"


class ApiError(Exception):
    """A refusal. ``message`` is already translated; ``reason`` is a token for the audit,
    ``audit_fields`` more of what the audit record says (never personal data)."""

    def __init__(self, status: int, code: str, message: str, *,
                 violations: list[dict[str, str]] | None = None, reason: str = "",
                 headers: Headers | None = None, audit_fields: dict[str, str] | None = None):
        self.status = status
        self.code = code
        self.message = message
        self.violations = violations
        self.reason = reason or code
        self.headers = headers or []
        self.audit_fields = audit_fields or {}
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

    def read_body(self, limit: int) -> bytes:
        """The body, at most ``limit`` bytes: a larger declared one is refused unread."""
        env = self.environ
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
            if n > limit:
                raise ApiError(413, "too_large", _("the body is larger than {limit} bytes",
                                                   limit=limit))
            body = stream.read(n) if n and stream is not None else b""
        elif env.get("wsgi.input_terminated") and stream is not None:
            body = stream.read(limit + 1)  # chunked: cap the read, then judge
            if len(body) > limit:
                raise ApiError(413, "too_large", _("the body is larger than {limit} bytes",
                                                   limit=limit))
        else:
            body = b""
        self.body = body
        return body


Handler = Callable[[Request], Answer]


def json_answer(status: int, value: Any, extra: Headers | None = None) -> Answer:
    headers = list(JSON_HEADERS)
    if extra:
        headers.extend(extra)
    return status, headers, dumps(value)


def read_json(req: Request) -> dict[str, Any]:
    """The body as a JSON object: 415 for another media type or charset, 400 for
    malformed JSON, 422 for JSON that is not an object."""
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


@lru_cache(maxsize=512)
def _accept_language(value: str) -> str | None:
    from werkzeug.datastructures import LanguageAccept
    from werkzeug.http import parse_accept_header

    best = parse_accept_header(value, LanguageAccept).best_match(["zh-CN", "zh", "en"])
    if best is None:
        return None
    return "en" if best.lower().startswith("en") else "zh_CN"


def request_language(req: Request, default: str | None) -> str | None:
    """The language ``req`` asks for (``?lang=``, else ``Accept-Language``), else
    ``default``: what the inbound API and the console answer in."""
    if req.query and req.has_arg("lang"):
        asked = i18n.normalise(req.arg("lang"))
        if asked in ("en", "zh_CN"):
            return asked
    accept = req.environ.get("HTTP_ACCEPT_LANGUAGE")
    if accept:
        found = _accept_language(accept[:200])
        if found:
            return found
    return default
