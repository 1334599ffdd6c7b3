"""``market`` — market regulation business-licence check, app-key HMAC auth.

``GET /api/market/license?uscc=...`` or ``POST /api/market/license/query`` with
``{"uscc": ...}`` → ``{uscc, company_name, legal_rep, status (存续|注销|吊销),
reg_date, reg_capital, address, reg_authority}``; 404 NOT_FOUND for a valid
but unknown code, 400 INVALID_USCC for a bad check character.
"""

from __future__ import annotations

from typing import Any

from bdchub.core.i18n import _

from ..data import valid_uscc
from ..rest import AppKeyAuth, RestEndpoint, require, route
from ..server import HttpError, Request


class MarketEndpoint(RestEndpoint):
    protocol = "REST/JSON + app-key HMAC"

    def __init__(self, sandbox: Any, name: str):
        super().__init__(sandbox, name)
        creds = sandbox.data["secrets"]["market"]
        self.auth = AppKeyAuth(creds["app_key"], creds["app_secret"])
        self.companies = {c["uscc"]: c for c in sandbox.data["companies"]}

    def authenticate(self, req: Request) -> None:
        self.auth.check(req)

    def _lookup(self, uscc: str) -> dict[str, Any]:
        uscc = uscc.strip().upper()
        if not valid_uscc(uscc):
            raise HttpError(400, "INVALID_USCC",
                            _("{value} is not a valid unified social credit code", value=uscc))
        company = self.companies.get(uscc)
        if company is None:
            raise HttpError(404, "NOT_FOUND", _("no business licence for {value}", value=uscc))
        return {k: v for k, v in company.items() if k != "legal_rep_cert_num"}

    @route("GET", "/api/market/license", "license.check")
    def license_get(self, req: Request) -> Any:
        require(req.query, "uscc")
        return self._lookup(req.query["uscc"])

    @route("POST", "/api/market/license/query", "license.check")
    def license_post(self, req: Request) -> Any:
        body = req.json_object()
        require(body, "uscc")
        return self._lookup(str(body["uscc"]))
