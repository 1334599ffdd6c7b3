"""``trade`` — housing trade management (交易管理): contract filings (网签备案).

OAuth 2 client credentials: ``POST /oauth/token`` with form fields
``grant_type=client_credentials`` and ``client_id``/``client_secret`` (or HTTP
Basic with them) → ``{"access_token", "token_type": "Bearer", "expires_in"}``.
Tokens live ``token_lifetime`` seconds (default 300; ``Sandbox.configure``
changes it, ``Sandbox.expire_tokens`` ends every token now). A missing, unknown
or expired token gets 401 with ``WWW-Authenticate: Bearer error="invalid_token"``
and ``{"code": "invalid_token", "error": "invalid_token", ...}``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import random
import threading
import time
from typing import Any
from urllib.parse import parse_qs

from bdchub.core.i18n import _

from ..data import valid_unit_code
from ..rest import RestEndpoint, require, route
from ..server import HttpError, Request, Response


class TradeEndpoint(RestEndpoint):
    protocol = "REST/JSON + OAuth2 client credentials"

    def __init__(self, sandbox: Any, name: str):
        super().__init__(sandbox, name)
        creds = sandbox.data["secrets"]["trade"]
        self.client_id, self.client_secret = creds["client_id"], creds["client_secret"]
        self.tokens: dict[str, float] = {}
        self._tokens_lock = threading.Lock()
        self._rng = random.Random(f"{sandbox.seed}:trade:tokens")
        self.filings = {f["filing_no"]: dict(f) for f in sandbox.data["contract_filings"]}
        self.results: list[dict[str, Any]] = []

    def expire_tokens(self) -> None:
        with self._tokens_lock:
            for token in self.tokens:
                self.tokens[token] = 0.0

    def authenticate(self, req: Request) -> None:
        header = req.header("Authorization") or ""
        token = header[7:].strip() if header.lower().startswith("bearer ") else ""
        with self._tokens_lock:
            expires = self.tokens.get(token) if token else None
        if expires is None or expires <= time.time():
            why = (_("a bearer token is required") if not token else
                   _("the access token is unknown") if expires is None else
                   _("the access token has expired"))
            raise HttpError(401, "invalid_token", why,
                            headers={"WWW-Authenticate":
                                     f'Bearer realm="trade", error="invalid_token", '
                                     f'error_description="{"expired" if expires else "invalid"}"'},
                            extra={"error": "invalid_token", "error_description": why})

    @route("POST", "/oauth/token", "oauth.token", auth=False)
    def token(self, req: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs(req.body.decode("utf-8", "replace")).items()}
        if not form and req.body:
            try:
                form = {k: str(v) for k, v in req.json_object().items()}
            except HttpError:
                form = {}
        client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
        header = req.header("Authorization") or ""
        if header.lower().startswith("basic "):
            try:
                client_id, _sep, client_secret = (
                    base64.b64decode(header[6:].strip(), validate=True).decode().partition(":"))
            except (binascii.Error, UnicodeDecodeError, ValueError):
                client_id = client_secret = ""
        if form.get("grant_type") != "client_credentials":
            return Response.json({"error": "unsupported_grant_type", "code": "unsupported_grant_type",
                                  "error_description": _("only client_credentials is supported")}, 400)
        if not (hmac.compare_digest(client_id.encode(), self.client_id.encode())
                and hmac.compare_digest(client_secret.encode(), self.client_secret.encode())):
            return Response.json({"error": "invalid_client", "code": "invalid_client",
                                  "error_description": _("authentication failed")}, 401,
                                 {"WWW-Authenticate": 'Basic realm="trade"'})
        lifetime = float(self.sandbox.options["token_lifetime"])
        with self._tokens_lock:
            token = "".join(self._rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789")
                            for _ in range(40))
            now = time.time()
            for old in [t for t, e in self.tokens.items() if e < now - 3600]:
                del self.tokens[old]
            self.tokens[token] = now + lifetime
        return Response.json({"access_token": token, "token_type": "Bearer",
                              "expires_in": int(lifetime) if lifetime >= 1 else lifetime},
                             headers={"Cache-Control": "no-store"})

    @route("GET", r"/api/contract-filings/(?P<filing_no>[^/]+)", "filing.get")
    def filing_get(self, req: Request, filing_no: str) -> Any:
        with self.lock:
            filing = self.filings.get(filing_no)
        if filing is None:
            raise HttpError(404, "NOT_FOUND", _("no contract filing {id}", id=filing_no))
        return dict(filing)

    @route("GET", "/api/contract-filings", "filing.search")
    def filing_search(self, req: Request) -> Any:
        unit, cert = req.query.get("unit_code"), req.query.get("cert_num")
        if not unit and not cert:
            raise HttpError(400, "MISSING_FIELD", _("missing required field(s): {names}",
                                                     names="unit_code | cert_num"))
        with self.lock:
            rows = [dict(f) for f in self.filings.values()
                    if (not unit or f["unit_code"] == unit)
                    and (not cert or any(p["cert_num"] == cert
                                         for p in f["sellers"] + f["buyers"]))]
        return {"total": len(rows), "rows": rows}

    @route("POST", "/api/contract-filings", "filing.push")
    def filing_push(self, req: Request) -> Response:
        body = req.json_object()
        require(body, "filing_no", "unit_code", "price", "buyers", "sellers")
        if not valid_unit_code(str(body["unit_code"])):
            raise HttpError(400, "INVALID_UNIT_CODE", _("{value} is not a valid unit code",
                                                         value=body["unit_code"]))
        for side in ("buyers", "sellers"):
            if not isinstance(body[side], list) or not all(
                    isinstance(p, dict) and p.get("name") and p.get("cert_num") for p in body[side]):
                raise HttpError(400, "BAD_PARTIES",
                                _("{side} must be a list of objects with name and cert_num", side=side))
        record = {"filing_no": str(body["filing_no"]), "unit_code": body["unit_code"],
                  "location": body.get("location"), "area": body.get("area"),
                  "price": body["price"], "sellers": body["sellers"], "buyers": body["buyers"],
                  "sign_date": body.get("sign_date"), "filing_date": body.get("filing_date"),
                  "status": body.get("status") or "已备案"}
        with self.lock:
            existing = self.filings.get(record["filing_no"])
            if existing is not None:
                if existing == record:
                    return Response.json({"code": "0", "message": "ok",
                                          "data": {**existing, "duplicate": True}})
                raise HttpError(409, "CONFLICT", _("contract filing {id} exists with other content",
                                                   id=record["filing_no"]))
            self.filings[record["filing_no"]] = record
        return Response.json({"code": "0", "message": "ok", "data": {**record, "duplicate": False}},
                             201)

    @route("POST", "/api/registration-results", "registration.result")
    def registration_result(self, req: Request) -> Any:
        body = req.json_object()
        require(body, "business_no")
        with self.lock:
            self.results.append(body)
            receipt = f"TR{len(self.results):08d}"
        return {"receipt_id": receipt}
