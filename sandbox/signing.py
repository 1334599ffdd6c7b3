"""The two request-signing schemes the sandbox checks, with client-side helpers.

National data exchange (``gov``, ``civil``)
-------------------------------------------
Headers on every call::

    gjgxjhpt_rid    resource id of the department   (credentials[name]["rid"])
    gjgxjhpt_sid    the calling application's id    (credentials[name]["sid"])
    gjgxjhpt_rtime  request time, integer milliseconds since the Unix epoch
    gjgxjhpt_sign   lower-case hex HMAC-SHA256, key = the current app secret
                    (UTF-8), message = f"{rid}\\n{sid}\\n{rtime}" (UTF-8)

Refused with HTTP 401 and a JSON error when a header is missing, rid or sid
is unknown, ``|now - rtime| > 300 s``, or the signature matches no secret in
force. The secret rotates: see ``sandbox.endpoints.exchange``.

App-key HMAC (``market``, ``window_*``, and the sandbox's own pushes)
-------------------------------------------------------------------
Headers::

    X-App-Key     credentials[name]["app_key"]
    X-Timestamp   integer seconds since the Unix epoch
    X-Nonce       8 to 64 characters [A-Za-z0-9_-], never reused
    X-Signature   lower-case hex HMAC-SHA256, key = app_secret (UTF-8), message =
                  f"{app_key}\\n{timestamp}\\n{nonce}\\n{METHOD}\\n{path}\\n{sha256_hex(body)}"

``METHOD`` is upper case; ``path`` is the request target exactly as sent on
the wire: path plus ``?query`` when there is one (what ``requests`` calls
``PreparedRequest.path_url``); ``sha256_hex(body)`` is the lower-case hex
SHA-256 of the raw body bytes (of ``b""`` when there is none). Refused with
401 when the key is unknown, the signature is wrong, ``|now - timestamp| >
300 s`` or the nonce was already used within the last 600 s.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

EXCHANGE_HEADERS = ("gjgxjhpt_rid", "gjgxjhpt_sid", "gjgxjhpt_rtime", "gjgxjhpt_sign")
EXCHANGE_MAX_SKEW_S = 300.0
APPKEY_MAX_SKEW_S = 300.0
NONCE_TTL_S = 600.0


def exchange_string(rid: str, sid: str, rtime: str | int) -> str:
    return f"{rid}\n{sid}\n{rtime}"


def exchange_sign(secret: str, rid: str, sid: str, rtime: str | int) -> str:
    return hmac.new(secret.encode(), exchange_string(rid, sid, rtime).encode(),
                    hashlib.sha256).hexdigest()


def exchange_headers(rid: str, sid: str, secret: str, rtime: int | None = None) -> dict[str, str]:
    """Headers a client sends to a data-exchange endpoint."""
    rtime = int(time.time() * 1000) if rtime is None else rtime
    return {"gjgxjhpt_rid": rid, "gjgxjhpt_sid": sid, "gjgxjhpt_rtime": str(rtime),
            "gjgxjhpt_sign": exchange_sign(secret, rid, sid, rtime)}


def appkey_string(app_key: str, timestamp: str | int, nonce: str, method: str, path: str,
                  body: bytes | None) -> str:
    digest = hashlib.sha256(body or b"").hexdigest()
    return f"{app_key}\n{timestamp}\n{nonce}\n{method.upper()}\n{path}\n{digest}"


def appkey_sign(secret: str, app_key: str, timestamp: str | int, nonce: str, method: str,
                path: str, body: bytes | None) -> str:
    message = appkey_string(app_key, timestamp, nonce, method, path, body)
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def appkey_headers(app_key: str, secret: str, method: str, path: str, body: bytes | None = b"",
                   *, timestamp: int | None = None, nonce: str | None = None) -> dict[str, str]:
    """Headers a client sends to an app-key endpoint. ``path`` includes ``?query``."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    nonce = nonce or secrets.token_hex(16)
    return {"X-App-Key": app_key, "X-Timestamp": str(timestamp), "X-Nonce": nonce,
            "X-Signature": appkey_sign(secret, app_key, timestamp, nonce, method, path, body)}
