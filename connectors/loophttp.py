"""The HTTP call of ``connectors.http.send`` when it runs on the inbound server's
event loop (``core.greenloop``): the same request, sent with aiohttp so that the
request waits for the department's answer without holding a thread.

Only the transport differs from the threaded path. The request is the
``PreparedRequest`` that ``connectors.http.prepare`` built and the
authentication schemes signed; the answer is a ``requests.Response`` read in
full; failures become the ``requests`` errors the threaded path would have met
and are classified by ``classify_requests_error``, so retries, the circuit
breaker and the error texts are the same on both paths. The session's TLS
settings (``verify``, ``ca_bundle``, ``client_cert``) become one
``ssl.SSLContext``; its cookie jar gets the cookies the answer sets.

Each event loop has its own aiohttp sessions (they cannot cross loops): one
per ``requests`` session, with the same pool size. ``close_loop`` closes a
loop's sessions when its server stops.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import ssl
import weakref
from http.cookies import CookieError, SimpleCookie
from urllib.parse import urlsplit

import aiohttp
import requests
from multidict import CIMultiDict, CIMultiDictProxy
from requests.cookies import RequestsCookieJar, cookiejar_from_dict
from requests.models import PreparedRequest
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers

from bdchub.core import greenloop

from .http_errors import classify_requests_error

#: loop -> {id(requests session): (the requests session, its aiohttp session)}
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop,
                                    dict[int, tuple[requests.Session, aiohttp.ClientSession]]]
_clients = weakref.WeakKeyDictionary()


def send(session: requests.Session, request: PreparedRequest, timeout: tuple[float, float],
         *, connector: str, operation: str = "") -> requests.Response:
    """``connectors.http.send`` on the loop: suspends the calling greenlet meanwhile."""
    try:
        return greenloop.await_(_send(session, request, timeout))
    except requests.RequestException as exc:
        raise classify_requests_error(exc, connector=connector, operation=operation) from exc


async def _send(session: requests.Session, request: PreparedRequest,
                timeout: tuple[float, float]) -> requests.Response:
    client = _client(session)
    url = request.url or ""
    limits = aiohttp.ClientTimeout(total=None, sock_connect=timeout[0], sock_read=timeout[1])
    # Exactly the prepared headers, handed over as aiohttp's own multidict so that
    # it takes them as they are instead of converting a dict.
    headers = CIMultiDict(request.headers._store.values())  # (name as given, value)
    # aiohttp adds User-Agent, Accept, Accept-Encoding and a body's Content-Type
    # only where they are missing; requests' prepared ones always have the first
    # three, so the skip list (which aiohttp sorts and copies on every request it
    # is given) is given only to a request that lacks one of them.
    skip = None if _has_auto_headers(headers, request.body) else _AUTO_HEADERS
    try:
        async with client.request(request.method or "GET", url, data=request.body,
                                  headers=headers, allow_redirects=False,
                                  skip_auto_headers=skip,
                                  timeout=limits, ssl=_tls(session, url)) as answer:
            content = await answer.read()
    except Exception as exc:
        raise _as_requests_error(exc, request) from exc
    raw = answer.headers
    if "Set-Cookie" in raw:
        _keep_cookies(session, url, raw.getall("Set-Cookie"))
    return _Answer(answer.status, answer.reason or "", url, request, content, raw)


#: The headers aiohttp would add of its own: the request's headers are exactly the
#: prepared ones (requests' defaults included), never one of aiohttp's.
_AUTO_HEADERS = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")


def _has_auto_headers(headers: CIMultiDict[str], body: object) -> bool:
    """Whether ``headers`` already has each header aiohttp would add to this request."""
    return ("User-Agent" in headers and "Accept" in headers and "Accept-Encoding" in headers
            and (body is None or "Content-Type" in headers))


class _Answer(requests.Response):
    """The ``requests.Response`` of an answer read in full, as ``Session.send``
    would give it, made at the cost of what the caller reads: the header
    dictionary, the encoding and the (empty) cookie jar that ``Response.__init__``
    builds for every answer are built here the first time they are read. A call
    that takes a 2xx JSON answer reads only the encoding."""

    def __init__(self, status: int, reason: str, url: str, request: PreparedRequest,
                 content: bytes, raw: CIMultiDictProxy[str]):
        # Response.__init__'s attributes, but headers, encoding and cookies.
        self._content = content  # read already: .content, .text and .json() answer from it
        self._content_consumed = True
        self._next = None
        self.status_code = status
        self.raw = None
        self.url = url
        self.history = []
        self.reason = reason
        self.elapsed = datetime.timedelta(0)
        self.request = request
        self._raw_headers = raw

    @property  # type: ignore[override]
    def headers(self) -> CaseInsensitiveDict[str]:
        found = self.__dict__.get("_headers")
        if found is None:
            found = self.__dict__["_headers"] = CaseInsensitiveDict(self._raw_headers)
        return found

    @headers.setter
    def headers(self, value: CaseInsensitiveDict[str]) -> None:
        self.__dict__["_headers"] = value

    @property  # type: ignore[override]
    def encoding(self) -> str | None:
        if "_encoding" not in self.__dict__:
            types = (self.headers.get("Content-Type") if "_headers" in self.__dict__
                     else _last(self._raw_headers, "Content-Type"))
            self.__dict__["_encoding"] = _encoding_of(types)
        return self.__dict__["_encoding"]

    @encoding.setter
    def encoding(self, value: str | None) -> None:
        self.__dict__["_encoding"] = value

    @property  # type: ignore[override]
    def cookies(self) -> RequestsCookieJar:
        found = self.__dict__.get("_cookies")
        if found is None:
            found = self.__dict__["_cookies"] = cookiejar_from_dict({})
        return found

    @cookies.setter
    def cookies(self, value: RequestsCookieJar) -> None:
        self.__dict__["_cookies"] = value


def _last(headers: CIMultiDictProxy[str], name: str) -> str | None:
    """The value ``CaseInsensitiveDict(headers)[name]`` holds: the last one sent."""
    values = headers.getall(name, ())
    return values[-1] if values else None


@functools.lru_cache(maxsize=256)
def _encoding_of(content_type: str | None) -> str | None:
    """``get_encoding_from_headers`` of one Content-Type value (a handful per department)."""
    return get_encoding_from_headers({"content-type": content_type} if content_type else {})


def _client(session: requests.Session) -> aiohttp.ClientSession:
    loop = asyncio.get_running_loop()
    # The last loop's client is kept on the session itself: one attribute read a
    # call, not a weak dictionary. The session is its connector's own, so the
    # aiohttp session (pool, TLS) is never another connector's.
    last = session.__dict__.get("_bdchub_loop_client")
    if last is not None and last[0]() is loop and not last[1].closed:
        return last[1]
    per_loop = _clients.setdefault(loop, {})
    entry = per_loop.get(id(session))
    if entry is None or entry[0] is not session or entry[1].closed:
        adapter = session.get_adapter("http://")
        size = int(getattr(adapter, "_pool_maxsize", 10) or 10)
        client = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, limit_per_host=size, ttl_dns_cache=300),
            # The requests session's jar supplies the Cookie header (prepare); no second jar.
            cookie_jar=aiohttp.DummyCookieJar(),
            # Departments may answer gzip or deflate: requests asks for them
            # (Accept-Encoding) and so the answer is decompressed here too.
            auto_decompress=True, trust_env=False)
        entry = per_loop[id(session)] = (session, client)
    session._bdchub_loop_client = (weakref.ref(loop), entry[1])  # type: ignore[attr-defined]
    return entry[1]


def _tls(session: requests.Session, url: str) -> ssl.SSLContext | bool:
    if not url.startswith("https:"):
        return True
    key = (repr(session.verify), repr(session.cert))
    cached = getattr(session, "_bdchub_tls", None)
    if cached is not None and cached[0] == key:
        return cached[1]
    verify, cert = session.verify, session.cert
    context = ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)
    if verify is False:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if cert:
        certfile, keyfile = (cert, None) if isinstance(cert, str) else cert
        context.load_cert_chain(certfile, keyfile)
    session._bdchub_tls = (key, context)  # type: ignore[attr-defined]
    return context


def _keep_cookies(session: requests.Session, url: str, values: list[str]) -> None:
    """As ``Session.send``: cookies the answer sets go with the session's next requests."""
    host = urlsplit(url).hostname or ""
    for value in values:
        try:
            parsed = SimpleCookie(value)
        except CookieError:
            continue
        for name, morsel in parsed.items():
            session.cookies.set(name, morsel.value, domain=morsel["domain"] or host,
                                path=morsel["path"] or "/")


def _as_requests_error(exc: BaseException, request: PreparedRequest) -> BaseException:
    """The ``requests`` error the threaded path raises for the same failure."""
    rq = requests.exceptions
    if isinstance(exc, rq.RequestException):
        return exc
    if isinstance(exc, aiohttp.ClientSSLError | aiohttp.ServerFingerprintMismatch | ssl.SSLError):
        return rq.SSLError(str(exc) or type(exc).__name__, request=request)
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return rq.ConnectTimeout(str(exc) or "connect timed out", request=request)
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return rq.ReadTimeout(str(exc) or "read timed out", request=request)
    if isinstance(exc, aiohttp.InvalidURL | ValueError):
        return rq.InvalidURL(str(exc) or type(exc).__name__, request=request)
    if isinstance(exc, aiohttp.ClientPayloadError):
        return rq.ChunkedEncodingError(str(exc) or type(exc).__name__, request=request)
    if isinstance(exc, aiohttp.ClientError | OSError):
        return rq.ConnectionError(str(exc) or type(exc).__name__, request=request)
    return exc


async def close_loop(loop: asyncio.AbstractEventLoop | None = None) -> None:
    """Close the aiohttp sessions of ``loop`` (default: the running one). Never raises."""
    loop = loop or asyncio.get_running_loop()
    for _session, client in (_clients.pop(loop, None) or {}).values():
        try:
            await client.close()
        except Exception:  # noqa: BLE001 - closing must not fail a shutdown
            pass
