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
import contextlib
import datetime as dt
import hashlib
import hmac
import html
import io
import random
import re
import threading
import time
import zipfile
from typing import Any

from bdchub.core.i18n import _

from ..data import valid_resident_id, valid_uscc
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


#: GB 32100-2015 registering departments (first character of a credit code).
USCC_DEPARTMENTS = {"1": "机构编制", "2": "外交", "3": "司法行政", "4": "文化", "5": "民政",
                    "6": "旅游", "7": "宗教", "8": "工会", "9": "市场监管",
                    "A": "中央军委改革和编制办公室", "N": "农业农村", "Y": "其他"}
#: Organisation types (the second character) under each department.
ORG_TYPES = {"11": "机关", "12": "事业单位", "13": "群众团体", "31": "律师执业机构",
             "32": "公证处", "51": "社会团体", "52": "民办非企业单位", "53": "基金会",
             "71": "宗教活动场所", "81": "基层工会", "91": "企业", "92": "个体工商户",
             "93": "农民专业合作社", "N1": "组级集体经济组织", "N2": "村级集体经济组织",
             "N3": "乡镇级集体经济组织"}


def uscc_of(body: dict[str, Any]) -> str:
    """The body's ``uscc``, upper-cased; 400 when missing or not a valid credit code."""
    require(body, "uscc")
    uscc = str(body["uscc"]).strip().upper()
    if not valid_uscc(uscc):
        raise HttpError(400, "INVALID_USCC",
                        _("{value} is not a valid unified social credit code", value=uscc))
    return uscc


def _person_index(sandbox: Any) -> dict[str, dict[str, Any]]:
    return {p["cert_num"]: p for p in sandbox.data["people"]}


class GovEndpoint(ExchangeEndpoint):
    """Identity verification, face comparison (with liveness, kept for later
    queries), e-signature verification, the national credit-code base,
    e-licence issue and query."""

    protocol = "REST/JSON + data-exchange signature"
    FACE_THRESHOLD = 80.0

    def __init__(self, sandbox: Any, name: str):
        super().__init__(sandbox, name)
        self.people = _person_index(sandbox)
        self.mismatch = set(sandbox.data["identity_mismatch"])
        self.face_mismatch = set(sandbox.data["face_mismatch"])
        self.face_spoof = set(sandbox.data["face_spoof"])
        self.signature_revoked = set(sandbox.data["signature_revoked"])
        self.faces: dict[str, dict[str, Any]] = {}
        self._face_seq = 0
        self.licences: dict[str, dict[str, Any]] = {}
        self.licence_by_no: dict[str, str] = {}
        self._licence_seq = 0
        # license_id -> {"ofd": bytes, "pdf": bytes} and their metadata as issued
        self.licence_files: dict[str, dict[str, Any]] = {}

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
        return self.compare_face(str(body["name"]).strip(), cert, image)

    def compare_face(self, name: str, cert: str, image: bytes) -> dict[str, Any]:
        """Compare a live face with the ID photo and keep the result under a new
        ``verification_id`` (what a one-window app does before it submits)."""
        digest = hashlib.sha256(f"{self.sandbox.seed}:{cert}:".encode() + image).digest()
        fraction = int.from_bytes(digest[:4], "big") / 2**32
        low, high = (20.0, 60.0) if cert in self.face_mismatch else (85.0, 99.5)
        score = round(low + (high - low) * fraction, 2)
        live = int.from_bytes(digest[4:8], "big") / 2**32
        liveness = round((5.0 + 30.0 * live) if cert in self.face_spoof else (90.0 + 9.5 * live), 2)
        with self.lock:
            self._face_seq += 1
            verification_id = f"FACE{self.sandbox.data['county']['code']}{self._face_seq:010d}"
            record = {"verification_id": verification_id, "name": name, "cert_num": cert,
                      "score": score, "threshold": self.FACE_THRESHOLD,
                      "passed": score >= self.FACE_THRESHOLD, "liveness_score": liveness,
                      "liveness_passed": liveness >= self.FACE_THRESHOLD,
                      "compared_at": dt.datetime.now().astimezone().replace(microsecond=0).isoformat()}
            self.faces[verification_id] = record
        return dict(record)

    @route("POST", "/api/face/verifications/query", "face.verification_query")
    def face_verifications(self, req: Request) -> Any:
        """What became of earlier comparisons: each row says whether the comparison
        is on file and of that person (``consistent``), and its outcome."""
        body = req.json_object()
        asked = body.get("verifications")
        if not isinstance(asked, list) or not asked or len(asked) > 20 or not all(
                isinstance(a, dict) and a.get("verification_id") and a.get("cert_num")
                for a in asked):
            raise HttpError(400, "BAD_FIELD", _("verifications must be a list of 1 to 20 "
                                                "{verification_id, cert_num}"))
        rows = []
        with self.lock:
            for item in asked:
                record = self.faces.get(str(item["verification_id"]))
                cert = str(item["cert_num"]).strip().upper()
                if record is None:
                    rows.append({"verification_id": item["verification_id"], "cert_num": cert,
                                 "found": False, "consistent": False, "passed": False,
                                 "liveness_passed": False})
                    continue
                rows.append({**record, "cert_num": cert, "found": True,
                             "consistent": record["cert_num"] == cert})
        return {"total": len(rows), "rows": rows}

    # -- e-signatures (电子签名): the platform's CA issues each person one certificate.
    # The sandbox's signature is an HMAC under a key only the platform knows: it
    # stands in for SM2, which the hub never computes (it asks the platform).
    def signature_certificate(self, cert_num: str) -> str:
        """The serial of the signature certificate issued to ``cert_num``."""
        seed = f"{self.sandbox.seed}:esign:{cert_num.strip().upper()}"
        return hashlib.sha256(seed.encode()).hexdigest()[:20].upper()

    def _signature(self, serial: str, digest: str) -> str:
        key = f"{self.sandbox.seed}:esign-key:{serial}".encode()
        return base64.b64encode(hmac.new(key, digest.lower().encode(), hashlib.sha256).digest()
                                ).decode()

    def sign(self, cert_num: str, digest: str) -> dict[str, str]:
        """What the signer's app sends with a signed document: the certificate serial,
        the signature value over the document's SHA-256, the algorithm."""
        serial = self.signature_certificate(cert_num)
        return {"certificate_serial": serial, "signature_value": self._signature(serial, digest),
                "algorithm": "SM2"}

    @route("POST", "/api/signature/sign", "signature.sign")
    def signature_sign(self, req: Request) -> Any:
        body = req.json_object()
        require(body, "cert_num", "digest")
        cert = str(body["cert_num"]).strip().upper()
        if not valid_resident_id(cert):
            raise HttpError(400, "INVALID_CERT_NUM", _("cert_num is not a valid resident ID number"))
        return {"cert_num": cert, **self.sign(cert, str(body["digest"]))}

    @route("POST", "/api/signature/verify", "signature.verify")
    def signature_verify(self, req: Request) -> Any:
        body = req.json_object()
        asked = body.get("signatures")
        if not isinstance(asked, list) or not asked or len(asked) > 20 or not all(
                isinstance(a, dict) for a in asked):
            raise HttpError(400, "BAD_FIELD", _("signatures must be a list of 1 to 20 objects"))
        rows = []
        for item in asked:
            require(item, "signer_cert_num", "certificate_serial", "digest", "signature_value")
            cert = str(item["signer_cert_num"]).strip().upper()
            serial = str(item["certificate_serial"]).strip().upper()
            known = serial == self.signature_certificate(cert)
            revoked = known and cert in self.signature_revoked
            good = known and hmac.compare_digest(
                self._signature(serial, str(item["digest"])), str(item["signature_value"]))
            code = ("04" if not known else "02" if revoked else "01" if not good else "00")
            rows.append({"certificate_serial": serial, "signer_cert_num": cert,
                         "signer_matches": known,
                         "certificate_status": "已吊销" if revoked else "有效" if known else "未知",
                         "valid": code == "00", "result_code": code,
                         "result_msg": {"00": "验证通过", "01": "签名值与文件摘要不符",
                                        "02": "签名证书已吊销",
                                        "04": "签名证书不属于该签名人"}[code]})
        return {"total": len(rows), "valid": all(r["valid"] for r in rows), "rows": rows}

    # -- the national credit-code base (全国统一社会信用代码信息): every registering
    # department's codes, for those whose own registry the county has not connected.
    @route("POST", "/api/credit-codes/query", "credit_code.query")
    def credit_code_query(self, req: Request) -> Any:
        uscc = uscc_of(req.json_object())
        market = self.sandbox.endpoint("market")
        with market.lock:
            companies = [dict(c) for c in market.companies.values()]
        found = [{"uscc": c["uscc"], "name": c["company_name"], "status": c["status"],
                  "reg_authority": c["reg_authority"]} for c in companies if c["uscc"] == uscc]
        found += [{k: r[k] for k in ("uscc", "name", "status", "reg_authority")}
                  for key in ("institutions", "social_organisations")
                  for r in self.sandbox.data[key] if r["uscc"] == uscc]
        rows = [{**r, "dept_code": uscc[0], "dept_name": USCC_DEPARTMENTS.get(uscc[0], "其他"),
                 "org_type": ORG_TYPES.get(uscc[:2], "其他")} for r in found]
        return {"total": len(rows), "rows": rows}

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
                      "verify_code": _verify_code(self.sandbox.seed, licence_id),
                      "duplicate": False}
            self.licences[licence_id] = record
            self.licence_by_no[record["license_no"]] = licence_id
            self.licence_files[licence_id] = _render_files(record, body.get("file_ofd"))
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

    # -- e-licence verification and files (guide §二(一)6) ---------------------------
    # Each issued licence has an OFD and a PDF rendering; verification answers the
    # licence with each file's size and SHA-256 (the metadata a relay checks the
    # download against), the download the file itself, base64. ``tamper_file``
    # changes a stored file but not its metadata: what a relay must refuse.

    @route("POST", "/api/elicense/verify", "elicense.verify")
    def elicense_verify(self, req: Request) -> Any:
        body = req.json_object()
        if not (body.get("license_no") or body.get("verify_code")):
            raise HttpError(400, "MISSING_FIELD", _("missing required field(s): {names}",
                                                     names="license_no | verify_code"))
        with self.lock:
            record = self._licence(body.get("license_no"), body.get("verify_code"))
            if record is None:
                return {"valid": False, "result_msg": "未找到该电子证照"}
            files = self.licence_files[record["license_id"]]["meta"]
            return {**{k: v for k, v in record.items() if k != "duplicate"},
                    "valid": record["status"] == "issued", "result_msg": "证照有效",
                    "files": [dict(f) for f in files]}

    @route("POST", "/api/elicense/download", "elicense.download")
    def elicense_download(self, req: Request) -> Any:
        body = req.json_object()
        require(body, "license_id")
        fmt = str(body.get("format") or "ofd").lower()
        with self.lock:
            stored = self.licence_files.get(str(body["license_id"]))
            if stored is None:
                raise HttpError(404, "NOT_FOUND", _("no e-licence {id}", id=body["license_id"]))
            if fmt not in stored["data"]:
                raise HttpError(400, "BAD_FORMAT", _("format must be ofd or pdf"))
            data = stored["data"][fmt]
            meta = next(f for f in stored["meta"] if f["format"] == fmt)
        return {"license_id": str(body["license_id"]), "format": fmt,
                "media_type": meta["media_type"], "name": meta["name"],
                "content": base64.b64encode(data).decode("ascii")}

    def _licence(self, license_no: Any, verify_code: Any) -> dict[str, Any] | None:
        if license_no:
            licence_id = self.licence_by_no.get(str(license_no))
            record = self.licences.get(licence_id) if licence_id else None
            return record if record and (not verify_code or
                                         record["verify_code"] == verify_code) else None
        return next((r for r in self.licences.values()
                     if r["verify_code"] == str(verify_code).upper()), None)

    def tamper_file(self, ref: str, fmt: str = "ofd") -> None:
        """Change one byte of a licence's stored file (by id or number), leaving the
        metadata verification answers as issued."""
        with self.lock:
            licence_id = ref if ref in self.licence_files else self.licence_by_no[ref]
            data = bytearray(self.licence_files[licence_id]["data"][fmt])
            data[len(data) // 2] ^= 0x01
            self.licence_files[licence_id]["data"][fmt] = bytes(data)

    def control(self, action: str, req: Request) -> Response | None:
        if action == "tamper-elicense":
            body = req.json_object()
            try:
                self.tamper_file(str(body.get("license_id") or body.get("license_no")),
                                 str(body.get("format") or "ofd"))
            except KeyError:
                raise HttpError(404, "NOT_FOUND", _("no e-licence {id}",
                                                    id=body.get("license_id"))) from None
            return Response.json({"tampered": True})
        return None


class CivilEndpoint(ExchangeEndpoint):
    """Marriage registration check, social organisations, standard place names."""

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

    @route("POST", "/api/civil/social-organisations/query", "social_organisation.query")
    def social_organisation_query(self, req: Request) -> Any:
        """Social organisations (社会团体、民办非企业单位、基金会), GB 32100 department 5."""
        uscc = uscc_of(req.json_object())
        rows = [dict(r) for r in self.sandbox.data["social_organisations"] if r["uscc"] == uscc]
        return {"total": len(rows), "rows": rows}

    @route("POST", "/api/civil/addresses/verify", "address.verify")
    def address_verify(self, req: Request) -> Any:
        """标准地名地址: is the location a standard address, and in which division.
        A location in the county names one of its streets (and a house number);
        one naming a neighbouring district or county is matched there."""
        body = req.json_object()
        require(body, "address")
        text = str(body["address"]).strip()
        county = self.sandbox.data["county"]
        names = self.sandbox.data["place_names"]
        rest = text
        for prefix in (county["province"], county["city"]):
            rest = rest.removeprefix(prefix)
        for other, division in names["neighbours"].items():
            if rest.startswith(other):
                return {"address": text, "matched": True, "division_code": division,
                        "division_name": other, "standard_address": text,
                        "place_name_code": None}
        base = county["name"][:-1]  # 海门市 / 海门区 (撤市设区) name one place
        rest = re.sub(f"^{base}[市区县]", "", rest)
        town = next((t for t in names["towns"] if rest.startswith(t)), None)
        rest = rest.removeprefix(town or "")
        street = next((s for s in names["streets"] if rest.startswith(s)), None)
        number = re.match(r"(\d+)号", rest.removeprefix(street or ""))
        if street is None or number is None:
            return {"address": text, "matched": False, "division_code": None,
                    "division_name": None, "standard_address": None, "place_name_code": None}
        town = town or names["towns"][0]
        code = county["code"]
        return {"address": text, "matched": True, "division_code": code,
                "division_name": county["name"],
                "standard_address": f"{county['province']}{county['city']}{county['name']}"
                                    f"{town}{street}{number.group(1)}号",
                "place_name_code": f"{code}{names['towns'].index(town):03d}"
                                   f"{names['streets'].index(street):03d}{int(number.group(1)):05d}"}


_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
_OFD_NS = "http://www.ofdspec.org/2016"


def _verify_code(seed: int, licence_id: str) -> str:
    """The 16-character code printed on a licence, by which it can be verified."""
    digest = hashlib.sha256(f"{seed}:{licence_id}:verify".encode()).digest()
    return "".join(_CODE_ALPHABET[b % len(_CODE_ALPHABET)] for b in digest[:16])


def _render_files(record: dict[str, Any], given_ofd: Any) -> dict[str, Any]:
    """The licence's OFD (the issuer's own when it sent one, base64) and PDF, with
    the metadata (name, media type, size, SHA-256) the platform keeps of each."""
    ofd = None
    if isinstance(given_ofd, str) and given_ofd:
        with contextlib.suppress(binascii.Error, ValueError):
            ofd = base64.b64decode(given_ofd, validate=True) or None
    data = {"ofd": ofd or _render_ofd(record), "pdf": _render_pdf(record)}
    stem = record["license_id"]
    meta = [{"format": fmt, "media_type": media, "name": f"{stem}.{fmt}",
             "size": len(data[fmt]), "sha256": hashlib.sha256(data[fmt]).hexdigest()}
            for fmt, media in (("ofd", "application/ofd"), ("pdf", "application/pdf"))]
    return {"data": data, "meta": meta}


def _render_ofd(record: dict[str, Any]) -> bytes:
    """A minimal OFD package (GB/T 33190: a ZIP of OFD.xml, the document and a page)."""
    esc = html.escape
    lines = [f"{record['license_type']} {record['license_no']}",
             f"权利人 {record['holder_name']}", f"不动产单元号 {record.get('unit_code') or ''}",
             f"登簿机构 {record['issuer']} {record['issue_date']}",
             f"证照标识 {record['license_id']} 核验码 {record['verify_code']}"]
    text = "".join(f'<ofd:TextObject ID="{10 + i}" Boundary="10 {20 + 12 * i} 190 10" '
                   f'Font="2" Size="4.2"><ofd:TextCode X="0" Y="4">{esc(line)}</ofd:TextCode>'
                   f"</ofd:TextObject>" for i, line in enumerate(lines))
    parts = {
        "OFD.xml": f'<?xml version="1.0" encoding="UTF-8"?><ofd:OFD xmlns:ofd="{_OFD_NS}" '
                   f'Version="1.0" DocType="OFD"><ofd:DocBody><ofd:DocInfo><ofd:DocID>'
                   f"{esc(record['license_id'])}</ofd:DocID><ofd:Title>{esc(record['license_type'])}"
                   f"</ofd:Title><ofd:CreationDate>{esc(record['issue_date'])}</ofd:CreationDate>"
                   "</ofd:DocInfo><ofd:DocRoot>Doc_0/Document.xml</ofd:DocRoot></ofd:DocBody>"
                   "</ofd:OFD>",
        "Doc_0/Document.xml": f'<?xml version="1.0" encoding="UTF-8"?><ofd:Document '
                              f'xmlns:ofd="{_OFD_NS}"><ofd:CommonData><ofd:MaxUnitID>20'
                              "</ofd:MaxUnitID><ofd:PageArea><ofd:PhysicalBox>0 0 210 297"
                              "</ofd:PhysicalBox></ofd:PageArea></ofd:CommonData><ofd:Pages>"
                              '<ofd:Page ID="1" BaseLoc="Pages/Page_0/Content.xml"/>'
                              "</ofd:Pages></ofd:Document>",
        "Doc_0/Pages/Page_0/Content.xml": f'<?xml version="1.0" encoding="UTF-8"?><ofd:Page '
                                          f'xmlns:ofd="{_OFD_NS}"><ofd:Content><ofd:Layer ID="3">'
                                          f"{text}</ofd:Layer></ofd:Content></ofd:Page>",
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as package:
        for name, xml in parts.items():
            package.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)),
                             xml.encode("utf-8"))
    return out.getvalue()


def _render_pdf(record: dict[str, Any]) -> bytes:
    """A one-page PDF naming the licence (ASCII: the sandbox embeds no CJK font)."""
    text = (f"Real estate e-licence {record['license_id']}  verify code "
            f"{record['verify_code']}  issued {record['issue_date']}")
    text = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    stream = f"BT /F1 11 Tf 40 780 Td ({text}) Tj ET".encode("ascii", errors="replace")
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
               b"/Resources << /Font << /F1 5 0 R >> >> >>",
               b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%EOF\n" % (
        len(objects) + 1, xref)
    return bytes(out)


def secret_for(endpoint: ExchangeEndpoint) -> str:
    return endpoint.exchange.current()["secret"]


__all__ = ["CivilEndpoint", "ExchangeAuth", "GovEndpoint", "Response", "secret_for", "uscc_of"]
