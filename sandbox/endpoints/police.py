"""``police`` — public security household-register check, HTTP Basic auth.

``GET /api/police/household?cert_num=...`` or ``POST /api/police/household/query``
with ``{"cert_num": ...}`` → the household (户) the person is registered in:
``{"cert_num", "found", "household_no", "entries": [{household_no, relation,
name, cert_num, gender, birth_date, address, division_code, police_station}]}``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import Any

from bdchub.core.i18n import _

from ..data import valid_resident_id
from ..rest import RestEndpoint, require, route
from ..server import HttpError, Request


class PoliceEndpoint(RestEndpoint):
    protocol = "REST/JSON + HTTP Basic"

    def __init__(self, sandbox: Any, name: str):
        super().__init__(sandbox, name)
        creds = sandbox.data["secrets"]["police"]
        self.username, self.password = creds["username"], creds["password"]
        self.by_cert = {e["cert_num"]: h for h in sandbox.data["households"] for e in h["entries"]}

    def authenticate(self, req: Request) -> None:
        challenge = {"WWW-Authenticate": 'Basic realm="police", charset="UTF-8"'}
        header = req.header("Authorization") or ""
        if not header.lower().startswith("basic "):
            raise HttpError(401, "AUTH_REQUIRED", _("HTTP Basic authentication is required"),
                            headers=challenge)
        try:
            user, _sep, password = base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise HttpError(401, "AUTH_FAILED", _("authentication failed"), headers=challenge) from None
        if not (hmac.compare_digest(user.encode(), self.username.encode())
                and hmac.compare_digest(password.encode(), self.password.encode())):
            raise HttpError(401, "AUTH_FAILED", _("authentication failed"), headers=challenge)

    def _lookup(self, cert: str) -> dict[str, Any]:
        cert = cert.strip().upper()
        if not valid_resident_id(cert):
            raise HttpError(400, "INVALID_CERT_NUM",
                            _("{value} is not a valid resident ID number", value=cert))
        household = self.by_cert.get(cert)
        if household is None:
            return {"cert_num": cert, "found": False, "household_no": None, "entries": []}
        return {"cert_num": cert, "found": True, "household_no": household["household_no"],
                "entries": [dict(e) for e in household["entries"]]}

    @route("GET", "/api/police/household", "household.check")
    def household_get(self, req: Request) -> Any:
        require(req.query, "cert_num")
        return self._lookup(req.query["cert_num"])

    @route("POST", "/api/police/household/query", "household.check")
    def household_post(self, req: Request) -> Any:
        body = req.json_object()
        require(body, "cert_num")
        return self._lookup(str(body["cert_num"]))
