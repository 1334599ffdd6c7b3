"""``requests`` errors in the hub's error tree, for the threaded HTTP path
(``connectors.http``) and the event-loop path (``connectors.loophttp``) alike.

TLS failures and bad URLs are configuration problems no retry fixes
(permanent); refused, reset or cut-off connections are recoverable; no
answer in time is a ``TimeoutError_`` (recoverable).
"""

from __future__ import annotations

import requests

from bdchub.core.errors import ConnectorError, PermanentError, RecoverableError, TimeoutError_
from bdchub.core.i18n import _


def classify_requests_error(exc: BaseException, *, connector: str,
                            operation: str = "") -> ConnectorError:
    """A ``requests`` exception in the hub's tree (the caller chains it)."""
    if isinstance(exc, ConnectorError):
        return exc
    detail = short_error(exc)
    if isinstance(exc, requests.exceptions.SSLError):
        return PermanentError(_("connector {name}: TLS failed: {error}", name=connector,
                                error=detail), connector=connector, operation=operation)
    if isinstance(exc, requests.exceptions.Timeout | TimeoutError):
        return TimeoutError_(_("connector {name}: no answer in time: {error}", name=connector,
                               error=detail), connector=connector, operation=operation)
    if isinstance(exc, requests.exceptions.ConnectionError | requests.exceptions.ChunkedEncodingError
                  | requests.exceptions.ContentDecodingError | ConnectionError):
        return RecoverableError(_("connector {name}: connection failed: {error}", name=connector,
                                  error=detail), connector=connector, operation=operation)
    if isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema
                  | requests.exceptions.InvalidSchema):
        return PermanentError(_("connector {name}: bad URL: {error}", name=connector,
                                error=detail), connector=connector, operation=operation)
    if isinstance(exc, OSError):
        return RecoverableError(_("connector {name}: connection failed: {error}", name=connector,
                                  error=detail), connector=connector, operation=operation)
    return PermanentError(_("connector {name}: {error}", name=connector, error=detail),
                          connector=connector, operation=operation)


def short_error(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."
