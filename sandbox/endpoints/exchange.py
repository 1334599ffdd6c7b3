"""``gov`` (integrated government platform) and ``civil`` (civil affairs), both
reached through the national data-exchange platform's signed headers.

Secret rotation (each of ``gov`` and ``civil`` keeps its own secret line):

- the first secret is ``credentials[name]["initial_secret"]``, valid for
  ``secret_lifetime`` seconds (default 86400) from sandbox start;
- ``POST {url}/api/exchange/refresh-secret`` (signed like any call; JSON body
  ``{"app_key": ...}`` optional, must match when given) issues a new secret
  valid for ``secret_lifetime``; the previous one keeps working for calls for
  ``secret_grace`` seconds (default 300) and no longer after;
- the newest secret may always sign a refresh, even once expired, so a hub
  that slept through the expiry can recover; it cannot sign calls then
  (401 ``SECRET_EXPIRED``).

401 codes: MISSING_SIGNATURE, UNKNOWN_RID, UNKNOWN_SID, BAD_RTIME,
STALE_TIMESTAMP, SECRET_EXPIRED, SECRET_ROTATED (an old secret past its
grace), INVALID_SIGNATURE.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import random
import threading
import time
from typing import Any

from bdchub.core.i18n import _

from ..data import valid_resident_id
from ..rest import RestEndpoint, require, route
from ..server import HttpError, Request, Response
from ..signing import EXCHANGE_MAX_SKEW_S, exchange_sign


class ExchangeAuth:
    def __init__(self, name: str, creds: dict[str, str], lifetime: float, grace: float,
                 rng: random.Random):
        self.name = name
        self.rid = creds["rid"]
        self.sid = creds["sid"]
        self.app_key = creds["app_key"]
        self.lifetime = lifetime
        self.grace = grace
        self._rng = rng
        self._lock = threading.Lock()
        now = time.time()
        # newest last; each: secret, expires (epoch s), retired (epoch s or None)
        self._secrets: list[dict[str, Any]] = [
            {"secret": creds["initial_secret"], "expires": now + lifetime, "retired": None}]

    def current(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._secrets[-1])

    def expire_now(self) -> None:
        with self._lock:
            self._secrets[-1]["expires"] = time.time() - 1

    def _headers(self, req: Request) -> tuple[str, str, str, str]:
        values = [req.header(h) for h in ("gjgxjhpt_rid", "gjgxjhpt_sid", "gjgxjhpt_rtime",
                                          "gjgxjhpt_sign")]
        if not all(values):
            raise HttpError(401, "MISSING_SIGNATURE",
                            _("the gjgxjhpt_rid, gjgxjhpt_sid, gjgxjhpt_rtime and gjgxjhpt_sign headers are required"))
        rid, sid, rtime, sign = (v.strip() for v in values)  # type: ignore[union-attr]
        if rid != self.rid:
            raise HttpError(401, "UNKNOWN_RID", _("unknown resource id gjgxjhpt_rid"))
        if sid != self.sid:
            raise HttpError(401, "UNKNOWN_SID", _("unknown application id gjgxjhpt_sid"))
        try:
            stamp_ms = int(rtime)
        except ValueError:
            raise HttpError(401, "BAD_RTIME",
                            _("gjgxjhpt_rtime must be integer milliseconds since the epoch")) from None
        if abs(time.time() * 1000 - stamp_ms) > EXCHANGE_MAX_SKEW_S * 1000:
            raise HttpError(401, "STALE_TIMESTAMP",
                            _("gjgxjhpt_rtime is more than {n} seconds away from server time",
                              n=int(EXCHANGE_MAX_SKEW_S)))
        return rid, sid, rtime, sign.lower()

    def verify(self, req: Request, *, refresh: bool = False) -> None:
        rid, sid, rtime, sign = self._headers(req)
        now = time.time()
        with self._lock:
            for index, entry in enumerate(reversed(self._secrets)):
                expected = exchange_sign(entry["secret"], rid, sid, rtime)
                if not hmac.compare_digest(expected, sign):
                    continue
                newest = index == 0
                if refresh and newest:
                    return
                if entry["expires"] <= now:
                    raise HttpError(401, "SECRET_EXPIRED",
                                    _("the app secret has expired; refresh it"))
                if entry["retired"] is not None and now - entry["retired"] > self.grace:
                    raise HttpError(401, "SECRET_ROTATED",
                                    _("the app secret was replaced and its grace period is over"))
                return
        raise HttpError(401, "INVALID_SIGNATURE", _("signature does not match"))

    def refresh(self) -> dict[str, Any]:
        with self._lock:
            now = time.time()
            self._secrets[-1]["retired"] = now
            secret = "".join(self._rng.choice("0123456789abcdef") for _ in range(40))
            self._secrets.append({"secret": secret, "expires": now + self.lifetime, "retired": None})
            del self._secrets[:-5]
            expires = dt.datetime.fromtimestamp(now + self.lifetime).astimezone()
            return {"app_secret": secret, "expires_in": int(self.lifetime),
                    "expires_at": expires.replace(microsecond=0).isoformat(),
                    "previous_valid_for": int(self.grace)}


class ExchangeEndpoint(RestEndpoint):
    def __init__(self, sandbox: Any, name: str):
        super().__init__(sandbox, name)
        creds = sandbox.data["secrets"][name]
        self.exchange = ExchangeAuth(name, creds, sandbox.options["secret_lifetime"],
                                     sandbox.options["secret_grace"],
                                     random.Random(f"{sandbox.seed}:{name}:secrets"))

    def authenticate(self, req: Request) -> None:
        self.exchange.verify(req)

    @route("POST", "/api/exchange/refresh-secret", "exchange.refresh_secret", auth=False)
    def refresh_secret(self, req: Request) -> Any:
        self.exchange.verify(req, refresh=True)
        if req.body:
            body = req.json_object()
            if body.get("app_key") not in (None, self.exchange.app_key):
                raise HttpError(401, "UNKNOWN_APP_KEY", _("unknown app key"))
        return self.exchange.refresh()


def _person_index(sandbox: Any) -> dict[str, dict[str, Any]]:
    return {p["cert_num"]: p for p in sandbox.data["people"]}


class GovEndpoint(ExchangeEndpoint):
    """Identity verification, face comparison, e-licence issue and query."""

    protocol = "REST/JSON + data-exchange signature"
    FACE_THRESHOLD = 80.0

    def __init__(self, sandbox: Any, name: str):
        super().__init__(sandbox, name)
        self.people = _person_index(sandbox)
        self.mismatch = set(sandbox.data["identity_mismatch"])
        self.face_mismatch = set(sandbox.data["face_mismatch"])
        self.licences: dict[str, dict[str, Any]] = {}
        self.licence_by_no: dict[str, str] = {}
        self._licence_seq = 0

    @route("POST", "/api/identity/verify", "identity.verify")
    def identity_verify(self, req: Request) -> Any:
        body = req.json_object()
        require(body, "name", "cert_num")
        name, cert = str(body["name"]).strip(), str(body["cert_num"]).strip().upper()
        if not valid_resident_id(cert):
            code, match = "02", False
        elif cert in self.mismatch:
            code, match = "01", False
        elif cert in self.people and self.people[cert]["name"] != name:
            code, match = "01", False
        else:
            code, match = "00", True
        text = {"00": "一致", "01": "不一致", "02": "证件号码无效"}[code]
        return {"name": name, "cert_num": cert, "match": match, "result_code": code,
                "result_msg": text}

    @route("POST", "/api/face/compare", "face.compare")
    def face_compare(self, req: Request) -> Any:
        body = req.json_object()
        require(body, "name", "cert_num", "image")
        cert = str(body["cert_num"]).strip().upper()
        if not valid_resident_id(cert):
            raise HttpError(400, "INVALID_CERT_NUM", _("cert_num is not a valid resident ID number"))
        try:
            image = base64.b64decode(str(body["image"]), validate=True)
        except (binascii.Error, ValueError):
            raise HttpError(400, "BAD_IMAGE", _("image must be base64")) from None
        if not image:
            raise HttpError(400, "BAD_IMAGE", _("image must be base64"))
        digest = hashlib.sha256(f"{self.sandbox.seed}:{cert}:".encode() + image).digest()
        fraction = int.from_bytes(digest[:4], "big") / 2**32
        low, high = (20.0, 60.0) if cert in self.face_mismatch else (85.0, 99.5)
        score = round(low + (high - low) * fraction, 2)
        return {"cert_num": cert, "score": score, "threshold": self.FACE_THRESHOLD,
                "passed": score >= self.FACE_THRESHOLD}

    @route("POST", "/api/elicense/issue", "elicense.issue")
    def elicense_issue(self, req: Request) -> Any:
        body = req.json_object()
        require(body, "license_no", "holder_name", "holder_cert_num")
        with self.lock:
            existing = self.licence_by_no.get(str(body["license_no"]))
            if existing:
                return {**self.licences[existing], "duplicate": True}
            self._licence_seq += 1
            code = self.sandbox.data["county"]["code"]
            licence_id = f"1.2.156.3005.2.{code}.{self.sandbox.seed % 1000:03d}{self._licence_seq:08d}"
            record = {"license_id": licence_id,
                      "license_type": body.get("license_type") or "不动产权证书",
                      "license_no": str(body["license_no"]),
                      "holder_name": body["holder_name"],
                      "holder_cert_num": str(body["holder_cert_num"]).upper(),
                      "unit_code": body.get("unit_code"), "business_no": body.get("business_no"),
                      "issue_date": body.get("issue_date") or dt.date.today().isoformat(),
                      "issuer": body.get("issuer") or f"{self.sandbox.data['county']['name']}自然资源和规划局",
                      "has_file": bool(body.get("file_ofd")), "status": "issued",
                      "duplicate": False}
            self.licences[licence_id] = record
            self.licence_by_no[record["license_no"]] = licence_id
            return dict(record)

    @route("POST", "/api/elicense/query", "elicense.query")
    def elicense_query(self, req: Request) -> Any:
        body = req.json_object()
        keys = ("license_id", "license_no", "holder_cert_num")
        if not any(body.get(k) for k in keys):
            raise HttpError(400, "MISSING_FIELD", _("missing required field(s): {names}",
                                                     names=" | ".join(keys)))
        with self.lock:
            rows = [dict(r) for r in self.licences.values()
                    if all(not body.get(k) or str(body[k]).upper() == str(r[k]).upper()
                           for k in keys)]
        return {"total": len(rows), "rows": rows}

    @route("GET", r"/api/elicense/(?P<licence_id>[^/]+)", "elicense.get")
    def elicense_get(self, req: Request, licence_id: str) -> Any:
        with self.lock:
            record = self.licences.get(licence_id)
        if record is None:
            raise HttpError(404, "NOT_FOUND", _("no e-licence {id}", id=licence_id))
        return dict(record)


class CivilEndpoint(ExchangeEndpoint):
    """Marriage registration check."""

    protocol = "REST/JSON + data-exchange signature"

    @route("POST", "/api/civil/marriage/query", "marriage.query")
    def marriage_query(self, req: Request) -> Any:
        body = req.json_object()
        man = str(body.get("cert_num_man") or "").strip().upper()
        woman = str(body.get("cert_num_woman") or "").strip().upper()
        if not man and not woman:
            raise HttpError(400, "MISSING_FIELD", _("missing required field(s): {names}",
                                                     names="cert_num_man | cert_num_woman"))
        for value in (man, woman):
            if value and not valid_resident_id(value):
                raise HttpError(400, "INVALID_CERT_NUM",
                                _("{value} is not a valid resident ID number", value=value))
        try:
            start = int(body.get("start", 0))
            limit = int(body.get("limit", 20))
        except (TypeError, ValueError):
            raise HttpError(400, "BAD_PAGING", _("start and limit must be integers")) from None
        if start < 0 or not 1 <= limit <= 100:
            raise HttpError(400, "BAD_PAGING", _("start must be >= 0 and limit 1 to 100"))
        names = {"name_man": body.get("name_man"), "name_woman": body.get("name_woman")}
        rows = []
        for row in self.sandbox.data["marriages"]:
            if man and row["cert_num_man"] != man:
                continue
            if woman and row["cert_num_woman"] != woman:
                continue
            if any(v and row[k] != v for k, v in names.items()):
                continue
            rows.append(dict(row))
        rows.sort(key=lambda r: (r["op_date"], r["op_type"]))
        return {"total": len(rows), "start": start, "limit": limit,
                "rows": rows[start:start + limit]}


def secret_for(endpoint: ExchangeEndpoint) -> str:
    return endpoint.exchange.current()["secret"]


__all__ = ["CivilEndpoint", "ExchangeAuth", "GovEndpoint", "Response", "secret_for"]
