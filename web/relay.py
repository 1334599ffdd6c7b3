"""Answers a request/reply endpoint relays from another platform: ones that belong
to a case, and files (``inbound.endpoints[].case`` and ``.file``). The
e-certificate verification and download of the integrated platform (guide
§二(一)6) are such answers: the hub asks on behalf of a one-window platform, and
what it passes on is the holder's.

- ``case``: JMESPath into the route's answer naming the business number of the
  case it belongs to. The answer goes only to a client that may read that case
  (its ``reads``: the case's submitter, a client of its channel, or every case of
  its tenants; ``web.permissions``); any other client, and an answer that names
  no case, gets 404 exactly as for an unknown case, so whether it exists does
  not leak. A JSON answer goes out through the hub's masking block.
- ``file``: the answer carries a file, base64 at ``content``, and at ``sha256``
  the SHA-256 the sender's metadata gives for it (``media_type`` and ``name``
  optional). The file is answered as itself only when its bytes hash to that
  value; otherwise 502 ``file_hash_mismatch``, audited with both digests, and
  nothing is passed on. Each file passed on is audited as ``inbound.file_sent``
  (who, which case, which file by its digest).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

import jmespath

from bdchub.core import greenloop
from bdchub.core.i18n import _
from bdchub.core.masking import Masker

from .http import Answer, ApiError, Request, json_answer
from .ports import HubPort

#: What may reach the Content-Type header from another platform's metadata.
_MEDIA_TYPE = re.compile(r"^[a-z0-9][a-z0-9.+-]*/[a-z0-9][a-z0-9.+-]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_FILE_KEYS = ("content", "sha256", "media_type", "name")


class Relay:
    """The ``case`` and ``file`` rules of one endpoint."""

    def __init__(self, endpoint: Mapping[str, Any], *, hub: HubPort, masker: Masker,
                 read_scope: Callable[[Request], dict[str, str]],
                 audit: Callable[[str, dict[str, Any]], None]):
        self.case = jmespath.compile(endpoint["case"]) if endpoint.get("case") else None
        spec = endpoint.get("file") or {}
        self.file = {key: jmespath.compile(spec[key]) for key in _FILE_KEYS if spec.get(key)}
        self.hub = hub
        self.masker = masker
        self.read_scope = read_scope
        self._audit = audit

    @classmethod
    def of(cls, endpoint: Mapping[str, Any], **parts: Any) -> Relay | None:
        """The endpoint's rules, or None when it has neither ``case`` nor ``file``."""
        if not endpoint.get("case") and not endpoint.get("file"):
            return None
        return cls(endpoint, **parts)

    def answer(self, req: Request, status: int, body: dict[str, Any]) -> Answer:
        business_no = self._readable_case(req, body) if self.case is not None else ""
        if self.file:
            return self._file(req, body, business_no)
        return json_answer(status, self.masker(body) if self.case is not None else body)

    def _readable_case(self, req: Request, body: dict[str, Any]) -> str:
        business_no = self.case.search(body)  # type: ignore[union-attr]
        if isinstance(business_no, str) and business_no:
            scope = self.read_scope(req)
            found = greenloop.blocking(self.hub.progress_by_business_no, req.tenant or "",
                                       business_no, **scope)
            if found:
                return business_no
        # Another client's case answers as an unknown one: its existence does not leak.
        raise ApiError(404, "not_found", _("no such record, or none this client may read"),
                       reason="case_not_readable")

    def _file(self, req: Request, body: dict[str, Any], business_no: str) -> Answer:
        content = self.file["content"].search(body)
        if not isinstance(content, str) or not content:
            raise ApiError(404, "not_found", _("no such record, or none this client may read"),
                           reason="no_file")
        try:
            data = base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):
            raise self._refused(business_no, "", _("the file the platform sent is not "
                                                   "valid base64; nothing was passed on"),
                                "bad_file") from None
        digest = hashlib.sha256(data).digest()
        actual = digest.hex()
        expected = self.file["sha256"].search(body)
        expected = expected.lower() if isinstance(expected, str) else ""
        if not _SHA256.match(expected) or not hmac.compare_digest(actual, expected):
            raise self._refused(business_no, actual, _(
                "the file the platform sent does not match the SHA-256 of its metadata; "
                "nothing was passed on"), "file_hash_mismatch", expected=expected)
        media = self.file["media_type"].search(body) if "media_type" in self.file else None
        if not isinstance(media, str) or not _MEDIA_TYPE.match(media.lower()):
            media = "application/octet-stream"
        name = self.file["name"].search(body) if "name" in self.file else None
        client = req.client
        self._audit("inbound.file_sent", {
            "client": client.name if client else "", "channel": client.channel if client else "",
            "endpoint": req.endpoint, "tenant": req.tenant, "business_no": business_no,
            "sha256": actual, "size": len(data), "media_type": media.lower()})
        return 200, [("Content-Type", media.lower()),
                     ("Content-Disposition", _disposition(name if isinstance(name, str) else "")),
                     ("Repr-Digest", f"sha-256=:{base64.b64encode(digest).decode()}:"),
                     ("X-Content-SHA256", actual), ("Cache-Control", "no-store"),
                     ("X-Content-Type-Options", "nosniff")], data

    @staticmethod
    def _refused(business_no: str, actual: str, message: str, code: str,
                 expected: str = "") -> ApiError:
        return ApiError(502, code, message, reason=code, audit_fields={
            "business_no": business_no, "expected_sha256": expected[:64],
            "actual_sha256": actual})


def _disposition(name: str) -> str:
    """``attachment`` with the file's name (RFC 6266; non-ASCII in ``filename*``)."""
    name = name.strip().replace("\\", "_").replace("/", "_")[:200]
    plain = "".join(c if 32 <= ord(c) < 127 and c not in '"%' else "_" for c in name)
    if not name:
        return "attachment"
    if plain == name:
        return f'attachment; filename="{plain}"'
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(name, safe='')}"
