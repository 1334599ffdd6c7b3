"""``legacy`` — the county's legacy registration system (SOAP 1.1 and 1.2).

Stage machine (ZT codes)::

    01 申请 ──Accept──▶ 02 受理 ──▶ 03 审核 ──▶ 04 登簿 ──▶ 05 缮证 ──▶ 06 归档
      │ Refuse ▶ 91 不予受理        │ Refuse (02/03) ▶ 93 不予登记
      └ RequestCorrection ▶ 92 补正 ──(SupplementMaterials, or SubmitApplication again)──▶ 01

``Advance(YWH)`` takes the step the auto-advance would take; auto-advance
(``Sandbox(auto_advance=seconds)`` / ``Sandbox.legacy_auto_advance``) takes it
by itself every interval. The step out of 01 decides, deterministically:

- 91 不予受理 when BDCDYH is in ``data["legacy"]["refuse_units"]`` or seized by
  a court order the system received (``ReceiveCourtOrder`` LX=CF), unless
  the registration is itself a seizure (DJLX 800);
- 92 补正 when CL (materials) is given and lacks one of
  ``data["legacy"]["required_materials"]`` (the items name what is missing),
  or on the first submission of a unit in ``data["legacy"]["correction_units"]``;
- otherwise 02 受理.

``SupplementMaterials(YWH, CL+)`` is the correction (补正): it adds the
materials to the case's (a material of a name it has replaces it) and takes
the case from 92 back to 01, where the step out of 01 examines it again. Only
a case at 92 takes it: any other state answers a Client fault
``INVALID_TRANSITION`` (an unknown YWH ``NOT_FOUND``). ``faults(...)`` knobs
are the generic ones; ``data["legacy"]["refuse_after_correction"]`` lists
units refused (91) when they come back from a correction.

Out of 03: 93 不予登记 when the unit was seized meanwhile, or when the
internal network's review said no (``ReceiveReviewResult`` SHJG=0, the
opinion SHYJ as the reason); with ``legacy_require_review`` a case whose
materials include spatial ones (a CL with CLLX ``survey_report`` or
``spatial_data``) waits at 03 until the review result comes back from the
internal network (``Advance`` then answers a Client fault REVIEW_PENDING);
``ReceiveReviewResult`` for a case already finished (06, 91, 93) answers CG
false. With ``legacy_require_tax`` a transfer (DJLX 200) waits at 03 until
``ReceiveTaxResult`` says WSZT=1 (``Advance`` then answers a Client fault
TAX_NOT_CLEARED). Into 05 a certificate number is issued:
``苏(2026)海门市不动产权第0000183号`` or ``…不动产证明第…号`` for mortgage (23),
easement (19), objection (600) and advance notice (700); none for
cancellation (400) and seizure (800).

The register (``data["register"]``, see ``sandbox.data``) answers the queries:
``QueryProperties`` (a holder's units by ZJH), ``QueryUnitStatus`` (a unit by
BDCDYH, certificate number BDCQZH or a part of its location ZL) with its
restrictions XZ (LX ``DY`` 抵押, ``CF`` 查封, ``YY`` 异议, ``YG`` 预告; a seizure
received by ``ReceiveCourtOrder`` is one until its release), and
``IssueNoPropertyCertificate`` (无房证明: a certificate number when the person
holds nothing, else CG false with the count). Each answers only units of the
division asked for (QXDM). ``BookAppointment`` books a half-hour slot of the
window's calendar (``data["scheduling"]``): weekdays in office hours,
``capacity`` a slot, the ``always_full`` slot always taken; a full, closed or
past slot is answered CG false with up to three free slots (KXSD) after it.

Every change is an event (BGJL) with a sequence number XH: pulled with
``ReportStageChanges(QSXH, ZDTS)`` and, when a callback URL is set
(``Sandbox.legacy_set_callback``), POSTed to it as JSON (same field names)
in order, signed with the app-key scheme (credentials["legacy"]).

Idempotency: a request that changes something may carry a key, in the SOAP
header element ``IdempotencyKey`` of the service's namespace or as a
WS-Addressing ``MessageID``. A key seen before with the same operation is
answered with the first answer and changes nothing (a failed request leaves
no answer, so its retry is tried again). Every such request is written in a
ledger (``Sandbox.legacy_ledger``): operation, key, subject (YWH, or AH for
court orders), a digest of its content, and whether it was ``applied`` or
``replayed``. ``Sandbox.legacy_doubles`` lists what a real system would have
registered twice: the same submission, tax result or court order (same
content) applied more than once. A resubmission of a known YWH outside
补正 is answered with the case as it stands, and counted.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from bdchub.core.i18n import _

from ..data import valid_resident_id, valid_unit_code, valid_uscc
from ..server import HttpError, Request, Response
from ..soap import SoapEndpoint, SoapFault, as_list, now_iso, require

LEGACY_NS = "urn:bdc-hub:sandbox:legacy:v1"
STATES = {"01": "申请", "02": "受理", "03": "审核", "04": "登簿", "05": "缮证", "06": "归档",
          "91": "不予受理", "92": "补正", "93": "不予登记"}
FINAL = {"06", "91", "93"}
REG_TYPES = {"100", "200", "300", "400", "500", "600", "700", "800", "900"}
EVENT_FIELDS = ("XH", "YWH", "ZT", "ZTMC", "BGSJ", "YY", "BZXM", "BDCQZH", "BDCDYH", "DJLX", "QLLX")
NS_WSA = "http://www.w3.org/2005/08/addressing"
#: Operations that change the register: they honour idempotency keys and are in the ledger.
CHANGING = ("SubmitApplication", "Accept", "Refuse", "RequestCorrection", "Advance",
            "ReceiveTaxResult", "ReceiveCourtOrder", "SupplementMaterials",
            "IssueNoPropertyCertificate", "BookAppointment")
#: What a system must register once: the same content applied twice is a double.
ONCE = ("SubmitApplication", "ReceiveTaxResult", "ReceiveCourtOrder", "SupplementMaterials")
# The internal network's review result (back by disc) is registered once, like a tax result.
CHANGING += ("ReceiveReviewResult",)
ONCE += ("ReceiveReviewResult",)
#: Material types (CLLX) reviewed on the internal network before 登簿.
SPATIAL_TYPES = frozenset({"survey_report", "spatial_data"})
#: First answers kept per (operation, key); the oldest are forgotten beyond this.
KEYS_KEPT = 100_000
#: Restriction kinds (XZ.LX) as the register codes them.
RESTRICTIONS = {"mortgage": "DY", "seizure": "CF", "objection": "YY", "advance_notice": "YG"}
#: Units a location search answers at most.
LOCATION_HITS = 20


class LegacyEndpoint(SoapEndpoint):
    protocol = "SOAP 1.1 + SOAP 1.2"
    namespace = LEGACY_NS
    wsdl_file = "legacy.wsdl"
    xsd_files = ("legacy.xsd",)

    def __init__(self, sandbox: Any, name: str):
        super().__init__(sandbox, name)
        cfg = sandbox.data["legacy"]
        self.refuse_units = set(cfg["refuse_units"])
        self.correction_units = set(cfg["correction_units"])
        self.required_materials = list(cfg["required_materials"])
        self.refuse_after_correction = set(cfg.get("refuse_after_correction") or ())
        self.seized: set[str] = set()
        self.court_orders: list[dict[str, Any]] = []
        self.apps: dict[str, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self._ywh_seq = cfg["ywh_seq_start"]
        self._cert_seq = cfg["cert_seq_start"]
        self._proof_seq = cfg["proof_seq_start"]
        self.callback_url: str | None = None
        self.auto_interval: float | None = sandbox.options["auto_advance"]
        self.answers: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()
        self.ledger: list[dict[str, Any]] = []
        self.register = {p["unit_code"]: p for p in sandbox.data["register"]["properties"]}
        self.schedule = dict(sandbox.data["scheduling"])
        self.bookings: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._booking_seq = self.schedule["appointment_seq_start"]
        self._query_cert_seq = self.schedule["certificate_seq_start"]

    def operations(self) -> dict[str, Any]:
        handlers = {"SubmitApplication": self.submit, "Accept": self.accept,
                    "Refuse": self.refuse, "RequestCorrection": self.request_correction,
                    "SupplementMaterials": self.supplement_materials,
                    "Advance": self.advance, "QueryProgress": self.query_progress,
                    "ReceiveTaxResult": self.receive_tax,
                    "ReceiveReviewResult": self.receive_review,
                    "ReceiveCourtOrder": self.receive_court_order,
                    "ReportStageChanges": self.report_stage_changes,
                    "QueryProperties": self.query_properties,
                    "QueryUnitStatus": self.query_unit_status,
                    "IssueNoPropertyCertificate": self.issue_no_property_certificate,
                    "BookAppointment": self.book_appointment}
        for name in CHANGING:
            handlers[name] = self._once(name, handlers[name])
        return handlers

    # ------------------------------------------------------------------ idempotency
    @staticmethod
    def idempotency_key(header: Any) -> str:
        """The request's key: the ``IdempotencyKey`` header element, else wsa:MessageID."""
        if header is None:
            return ""
        for tag in (f"{{{LEGACY_NS}}}IdempotencyKey", f"{{{NS_WSA}}}MessageID"):
            element = header.find(tag)
            if element is not None and (element.text or "").strip():
                return element.text.strip()
        return ""

    def _once(self, operation: str, handler: Callable[[dict[str, Any], Any], dict[str, Any]]
              ) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
        def run(body: dict[str, Any], header: Any) -> dict[str, Any]:
            key = self.idempotency_key(header)
            entry = {"operation": operation, "key": key,
                     "subject": str(body.get("YWH") or body.get("AH") or ""),
                     "digest": hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False)
                                              .encode()).hexdigest()}
            # Held across check and apply, so two requests with one key apply once.
            with self.lock:
                first = self.answers.get((operation, key)) if key else None
                if first is not None:
                    self.ledger.append({**entry, "outcome": "replayed"})
                    return json.loads(json.dumps(first))
                answer = handler(body, header)
                self.ledger.append({**entry, "outcome": "applied"})
                if key:
                    self.answers[(operation, key)] = json.loads(json.dumps(answer))
                    while len(self.answers) > KEYS_KEPT:
                        self.answers.popitem(last=False)
                return answer
        return run

    def doubles(self) -> list[dict[str, Any]]:
        """What was registered more than once: the same content of a submission, tax
        result or court order applied again (each with how often)."""
        with self.lock:
            applied: dict[tuple[str, str], dict[str, Any]] = {}
            for e in self.ledger:
                if e["outcome"] == "applied" and e["operation"] in ONCE:
                    seen = applied.setdefault((e["operation"], e["digest"]),
                                              {"operation": e["operation"],
                                               "subject": e["subject"], "times": 0})
                    seen["times"] += 1
        return [d for d in applied.values() if d["times"] > 1]

    # ------------------------------------------------------------------ helpers
    def _app(self, ywh: Any) -> dict[str, Any]:
        app = self.apps.get(str(ywh or ""))
        if app is None:
            raise SoapFault("Client", _("no application with YWH {ywh}", ywh=ywh), "NOT_FOUND")
        return app

    @staticmethod
    def _state(app: dict[str, Any]) -> dict[str, Any]:
        return {"YWH": app["YWH"], "ZT": app["ZT"], "ZTMC": STATES[app["ZT"]],
                "BDCQZH": app.get("BDCQZH"), "SJ": app["SJ"]}

    def _change(self, app: dict[str, Any], zt: str, yy: str | None = None,
                bzxm: list[str] | None = None) -> None:
        """Move ``app`` to ``zt`` and publish the event. Caller holds the lock."""
        if zt == "05" and not app.get("BDCQZH"):
            app["BDCQZH"] = self._certificate_no(app)
        app["ZT"] = zt
        app["SJ"] = now_iso()
        app["gen"] += 1
        event = {"XH": len(self.events) + 1, "YWH": app["YWH"], "ZT": zt, "ZTMC": STATES[zt],
                 "BGSJ": app["SJ"], "YY": yy, "BZXM": list(bzxm or []),
                 "BDCQZH": app.get("BDCQZH"), "BDCDYH": app["BDCDYH"], "DJLX": app["DJLX"],
                 "QLLX": app["QLLX"]}
        self.events.append(event)
        app["history"].append(event)
        if self.callback_url:
            creds = self.sandbox.data["secrets"]["legacy"]
            self.sandbox.pusher.push(self.callback_url, dict(event), source="legacy",
                                     signer=(creds["callback_app_key"], creds["callback_app_secret"]))
        self._schedule(app)

    def _schedule(self, app: dict[str, Any]) -> None:
        interval = self.auto_interval
        if interval and app["ZT"] not in FINAL and app["ZT"] != "92":
            ywh, gen = app["YWH"], app["gen"]
            self.sandbox.scheduler.call_later(interval, lambda: self._auto_step(ywh, gen))

    def _auto_step(self, ywh: str, gen: int) -> None:
        with self.lock:
            app = self.apps.get(ywh)
            if app is None or app["gen"] != gen:
                return  # changed by hand since: that change scheduled its own step
            try:
                self._step(app)
            except SoapFault:
                # waiting for tax: look again after another interval
                self._schedule(app)

    def _certificate_no(self, app: dict[str, Any]) -> str | None:
        if app["DJLX"] in ("400", "800"):
            return None
        county = self.sandbox.data["county"]
        year = dt.date.today().year
        if app["QLLX"] in ("19", "23") or app["DJLX"] in ("600", "700"):
            self._proof_seq += 1
            return f"{county['province_abbr']}({year}){county['name']}不动产证明第{self._proof_seq:07d}号"
        self._cert_seq += 1
        return f"{county['province_abbr']}({year}){county['name']}不动产权第{self._cert_seq:07d}号"

    def _missing_materials(self, app: dict[str, Any]) -> list[str]:
        if app["CL"]:
            names = " ".join(str(c.get("CLMC", "")) for c in app["CL"])
            missing = [m for m in self.required_materials if m not in names]
            if missing:
                return missing
        if app["BDCDYH"] in self.correction_units and app["corrections"] == 0:
            return ["不动产权籍调查表"]
        return []

    def _step(self, app: dict[str, Any]) -> None:
        """The next step of the stage machine. Caller holds the lock."""
        zt = app["ZT"]
        seized = app["BDCDYH"] in self.seized or app["BDCDYH"] in self.refuse_units
        if zt == "01":
            if seized and app["DJLX"] != "800":
                self._change(app, "91", yy="该不动产已被查封，不予受理")
            elif app["corrections"] and app["BDCDYH"] in self.refuse_after_correction:
                self._change(app, "91", yy="补正后仍不符合登记条件，不予受理")
            elif missing := self._missing_materials(app):
                self._change(app, "92", yy="申请材料不全，请补正", bzxm=missing)
            else:
                self._change(app, "02")
        elif zt == "02":
            self._change(app, "03")
        elif zt == "03":
            if app["BDCDYH"] in self.seized and app["DJLX"] != "800":
                self._change(app, "93", yy="审核期间不动产被查封，不予登记")
            elif app.get("SHJG") == "0":
                self._change(app, "93", yy="内网审核不通过：" + str(app.get("SHYJ") or "空间数据审核未通过"))
            elif (self.sandbox.options["legacy_require_review"] and app.get("SHJG") != "1"
                  and any(str(c.get("CLLX") or "") in SPATIAL_TYPES for c in app["CL"])):
                raise SoapFault("Client", _("the internal review of {ywh} has not come back",
                                            ywh=app["YWH"]), "REVIEW_PENDING")
            elif (self.sandbox.options["legacy_require_tax"] and app["DJLX"] == "200"
                  and app.get("WSZT") != "1"):
                raise SoapFault("Client", _("tax not cleared for {ywh}", ywh=app["YWH"]),
                                "TAX_NOT_CLEARED")
            else:
                self._change(app, "04")
        elif zt == "04":
            self._change(app, "05")
        elif zt == "05":
            self._change(app, "06")
        else:
            raise SoapFault("Client", _("application {ywh} cannot advance from {state}",
                                        ywh=app["YWH"], state=STATES[zt]), "INVALID_TRANSITION")

    @staticmethod
    def _parties(value: Any, element: str) -> list[dict[str, Any]]:
        parties = []
        for party in as_list(value):
            if not isinstance(party, dict):
                raise SoapFault("Client", _("bad {element} element", element=element), "BAD_PARTY")
            require(party, "QLRMC", "ZJZL", "ZJH")
            zjzl, zjh = str(party["ZJZL"]), str(party["ZJH"]).upper()
            if zjzl == "1" and not valid_resident_id(zjh):
                raise SoapFault("Client", _("{value} is not a valid resident ID number", value=zjh),
                                "INVALID_ZJH")
            if zjzl == "8" and not valid_uscc(zjh):
                raise SoapFault("Client", _("{value} is not a valid unified social credit code",
                                            value=zjh), "INVALID_ZJH")
            parties.append({k: party.get(k) for k in ("QLRMC", "ZJZL", "ZJH", "GYFS", "QLBL", "DH")})
        return parties

    # ------------------------------------------------------------------ operations
    def submit(self, body: dict[str, Any], header: Any) -> dict[str, Any]:
        require(body, "DJLX", "QLLX", "BDCDYH", "QLR")
        if body["DJLX"] not in REG_TYPES:
            raise SoapFault("Client", _("unknown registration type {value}", value=body["DJLX"]),
                            "INVALID_DJLX")
        if not str(body["QLLX"]).isdigit():
            raise SoapFault("Client", _("unknown right type {value}", value=body["QLLX"]),
                            "INVALID_QLLX")
        if not valid_unit_code(body["BDCDYH"]):
            raise SoapFault("Client", _("{value} is not a valid unit code", value=body["BDCDYH"]),
                            "INVALID_BDCDYH")
        qlr = self._parties(body["QLR"], "QLR")
        ywr = self._parties(body.get("YWR"), "YWR")
        materials = [c for c in as_list(body.get("CL")) if isinstance(c, dict)]
        fields = {"DJLX": body["DJLX"], "QLLX": str(body["QLLX"]), "BDCDYH": body["BDCDYH"],
                  "ZL": body.get("ZL"), "MJ": body.get("MJ"), "JYJG": body.get("JYJG"),
                  "HTBH": body.get("HTBH"), "SQSJ": body.get("SQSJ"), "QLR": qlr, "YWR": ywr,
                  "CL": materials, "BZ": body.get("BZ")}
        with self.lock:
            ywh = str(body.get("YWH") or "")
            app = self.apps.get(ywh) if ywh else None
            if app is not None:
                if app["ZT"] == "92":  # supplied after a correction request
                    app.update(fields)
                    app["corrections"] += 1
                    self._change(app, "01", yy="补正后重新提交")
                return self._state(app)
            if not ywh:
                self._ywh_seq += 1
                county = self.sandbox.data["county"]["code"]
                ywh = f"{county}{dt.date.today().year}{self._ywh_seq:06d}"
                while ywh in self.apps:
                    self._ywh_seq += 1
                    ywh = f"{county}{dt.date.today().year}{self._ywh_seq:06d}"
            app = {"YWH": ywh, **fields, "ZT": "01", "SJ": now_iso(), "BDCQZH": None,
                   "WSZT": None, "WSPZH": None, "corrections": 0, "history": [], "gen": 0}
            self.apps[ywh] = app
            app["ZT"] = ""  # so the first change is recorded as an event
            self._change(app, "01")
            return self._state(app)

    def accept(self, body: dict[str, Any], header: Any) -> dict[str, Any]:
        require(body, "YWH")
        with self.lock:
            app = self._app(body["YWH"])
            if app["ZT"] != "01":
                raise SoapFault("Client", _("application {ywh} cannot be accepted in state {state}",
                                            ywh=app["YWH"], state=STATES[app["ZT"]]),
                                "INVALID_TRANSITION")
            self._change(app, "02")
            return self._state(app)

    def refuse(self, body: dict[str, Any], header: Any) -> dict[str, Any]:
        require(body, "YWH", "YY")
        with self.lock:
            app = self._app(body["YWH"])
            if app["ZT"] == "01":
                self._change(app, "91", yy=body["YY"])
            elif app["ZT"] in ("02", "03"):
                self._change(app, "93", yy=body["YY"])
            else:
                raise SoapFault("Client", _("application {ywh} cannot be refused in state {state}",
                                            ywh=app["YWH"], state=STATES[app["ZT"]]),
                                "INVALID_TRANSITION")
            return self._state(app)

    def request_correction(self, body: dict[str, Any], header: Any) -> dict[str, Any]:
        require(body, "YWH", "BZXM")
        with self.lock:
            app = self._app(body["YWH"])
            if app["ZT"] not in ("01", "02"):
                raise SoapFault("Client", _("application {ywh} cannot be sent back for correction in state {state}",
                                            ywh=app["YWH"], state=STATES[app["ZT"]]),
                                "INVALID_TRANSITION")
            self._change(app, "92", yy="申请材料不全，请补正", bzxm=[str(i) for i in as_list(body["BZXM"])])
            return self._state(app)

    def supplement_materials(self, body: dict[str, Any], header: Any) -> dict[str, Any]:
        require(body, "YWH", "CL")
        supplied = [c for c in as_list(body["CL"]) if isinstance(c, dict) and c.get("CLMC")]
        if not supplied:
            raise SoapFault("Client", _("no material (CL with CLMC) was supplied"), "BAD_CL")
        with self.lock:
            app = self._app(body["YWH"])
            if app["ZT"] != "92":
                raise SoapFault("Client", _("application {ywh} is not awaiting correction; it is "
                                            "in state {state}", ywh=app["YWH"],
                                            state=STATES[app["ZT"]]), "INVALID_TRANSITION")
            names = {str(c["CLMC"]) for c in supplied}
            app["CL"] = [c for c in app["CL"] if str(c.get("CLMC")) not in names] + [
                {k: c.get(k) for k in ("CLMC", "FS", "YS", "CLLX")} for c in supplied]
            app["corrections"] += 1
            self._change(app, "01", yy=str(body.get("BZ") or "补正后重新提交"))
            return self._state(app)

    def advance(self, body: dict[str, Any], header: Any) -> dict[str, Any]:
        require(body, "YWH")
        with self.lock:
            app = self._app(body["YWH"])
            self._step(app)
            return self._state(app)

    def query_progress(self, body: dict[str, Any], header: Any) -> dict[str, Any]:
        require(body, "YWH")
        with self.lock:
            app = self._app(body["YWH"])
            return {"YWH": app["YWH"], "ZT": app["ZT"], "ZTMC": STATES[app["ZT"]],
                    "DJLX": app["DJLX"], "QLLX": app["QLLX"], "BDCDYH": app["BDCDYH"],
                    "BDCQZH": app.get("BDCQZH"), "WSZT": app.get("WSZT"),
                    "HJ": [{k: e[k] for k in EVENT_FIELDS} for e in app["history"]]}

    def receive_tax(self, body: dict[str, Any], header: Any) -> dict[str, Any]:
        require(body, "YWH", "WSZT")
        if body["WSZT"] not in ("0", "1"):
            raise SoapFault("Client", _("WSZT must be 0 or 1"), "BAD_WSZT")
        with self.lock:
            app = self._app(body["YWH"])
            app["WSZT"] = body["WSZT"]
            app["WSPZH"] = body.get("WSPZH")
            if app["ZT"] == "03" and self.auto_interval:
                ywh, gen = app["YWH"], app["gen"]
                self.sandbox.scheduler.call_later(0, lambda: self._auto_step(ywh, gen))
        return {"CG": True, "XX": "完税信息已接收", "YXYWH": [app["YWH"]]}

    def receive_review(self, body: dict[str, Any], header: Any) -> dict[str, Any]:
        require(body, "YWH", "SHJG")
        if body["SHJG"] not in ("0", "1"):
            raise SoapFault("Client", _("SHJG must be 0 or 1"), "BAD_SHJG")
        with self.lock:
            app = self._app(body["YWH"])
            if app["ZT"] in FINAL:
                return {"CG": False, "XX": f"业务已{STATES[app['ZT']]}，不再接收审核结果",
                        "YXYWH": []}
            app["SHJG"] = body["SHJG"]
            app["SHYJ"] = body.get("SHYJ")
            app["CLZY"] = [str(x) for x in as_list(body.get("CLZY"))]
            if app["ZT"] == "03" and self.auto_interval:
                ywh, gen = app["YWH"], app["gen"]
                self.sandbox.scheduler.call_later(0, lambda: self._auto_step(ywh, gen))
        return {"CG": True, "XX": "审核结果已接收", "YXYWH": [app["YWH"]]}

    def receive_court_order(self, body: dict[str, Any], header: Any) -> dict[str, Any]:
        require(body, "AH", "FYMC", "BDCDYH", "LX")
        if body["LX"] not in ("CF", "JF", "PJ"):
            raise SoapFault("Client", _("LX must be CF, JF or PJ"), "BAD_LX")
        if not valid_unit_code(body["BDCDYH"]):
            raise SoapFault("Client", _("{value} is not a valid unit code", value=body["BDCDYH"]),
                            "INVALID_BDCDYH")
        with self.lock:
            self.court_orders.append({**body, "received": dt.date.today().isoformat()})
            if body["LX"] == "CF":
                self.seized.add(body["BDCDYH"])
            elif body["LX"] == "JF":
                self.seized.discard(body["BDCDYH"])
            affected = [a["YWH"] for a in self.apps.values()
                        if a["BDCDYH"] == body["BDCDYH"] and a["ZT"] not in FINAL]
        return {"CG": True, "XX": "法院文书已接收", "YXYWH": affected}

    def report_stage_changes(self, body: dict[str, Any], header: Any) -> dict[str, Any]:
        try:
            start = int(body.get("QSXH") or 0)
            limit = max(1, min(int(body.get("ZDTS") or 100), 1000))
        except ValueError:
            raise SoapFault("Client", _("QSXH and ZDTS must be integers"), "BAD_CURSOR") from None
        with self.lock:
            pending = self.events[max(0, start):]
        page = pending[:limit]
        return {"BGJL": [{k: e[k] for k in EVENT_FIELDS} for e in page],
                "ZXXH": page[-1]["XH"] if page else start, "SFYGD": len(pending) > len(page)}

    # ------------------------------------------------------------------ queries
    def _restrictions(self, unit: dict[str, Any]) -> list[dict[str, Any]]:
        """XZ of a registered unit: those on record, and seizures received since.
        Caller holds the lock."""
        out = []
        for r in unit["restrictions"]:
            h = r.get("holder") or {}
            period = r.get("period") or {}
            out.append({"LX": RESTRICTIONS[r["kind"]], "ZMH": r.get("proof_no"),
                        "DJSJ": r["registered_at"], "QLRMC": h.get("name"),
                        "ZJZL": h.get("id_type"), "ZJH": h.get("id_number"),
                        "JG": r.get("authority"), "AH": r.get("case_no"),
                        "QSRQ": period.get("start"), "JSRQ": period.get("end"),
                        "JE": r.get("amount")})
        if unit["unit_code"] in self.seized:
            order = next(o for o in reversed(self.court_orders)
                         if o["BDCDYH"] == unit["unit_code"] and o["LX"] == "CF")
            out.append({"LX": "CF", "DJSJ": order["received"], "JG": order["FYMC"],
                        "AH": order["AH"], "QSRQ": order.get("QSRQ"),
                        "JSRQ": order.get("JSRQ")})
        return out

    def _unit(self, unit: dict[str, Any]) -> dict[str, Any]:
        """A registered unit as the system answers it. Caller holds the lock."""
        restrictions = self._restrictions(unit)
        return {"BDCDYH": unit["unit_code"], "BDCQZH": unit["certificate_no"],
                "ZL": unit["location"], "MJ": unit["area"], "YT": unit["use"],
                "QLLX": unit["right_type"], "DJSJ": unit["registered_at"],
                "QLR": [{"QLRMC": h["name"], "ZJZL": h["id_type"], "ZJH": h["id_number"],
                         "GYFS": h.get("co_ownership"), "QLBL": h.get("share")}
                        for h in unit["holders"]],
                "SFXZ": bool(restrictions), "XZ": restrictions}

    @staticmethod
    def _division(body: dict[str, Any]) -> str:
        require(body, "QXDM")
        division = str(body["QXDM"])
        if len(division) != 6 or not division.isdigit():
            raise SoapFault("Client", _("{value} is not a division code", value=division),
                            "INVALID_QXDM")
        return division

    def _held_by(self, zjh: str, division: str) -> list[dict[str, Any]]:
        """Units of ``division`` the person holds. Caller holds the lock."""
        return [u for code, u in self.register.items() if code.startswith(division)
                and any(h["id_number"].upper() == zjh for h in u["holders"])]

    def query_properties(self, body: dict[str, Any], header: Any) -> dict[str, Any]:
        require(body, "ZJH")
        division = self._division(body)
        zjh = str(body["ZJH"]).upper()
        with self.lock:
            units = [self._unit(u) for u in self._held_by(zjh, division)]
        return {"ZS": len(units), "BDC": units}

    def query_unit_status(self, body: dict[str, Any], header: Any) -> dict[str, Any]:
        division = self._division(body)
        code = str(body.get("BDCDYH") or "")
        cert = str(body.get("BDCQZH") or "").replace("（", "(").replace("）", ")")
        place = str(body.get("ZL") or "").strip()
        if not (code or cert or place):
            raise SoapFault("Client", _("missing required element(s): {names}",
                                        names="BDCDYH | BDCQZH | ZL"), "MISSING_ELEMENT")
        if place and not (code or cert) and len(place) < 4:
            raise SoapFault("Client", _("a location to search for needs at least 4 characters"),
                            "LOCATION_TOO_SHORT")
        with self.lock:
            found = [u for u in self.register.values() if u["unit_code"].startswith(division)
                     and (not code or u["unit_code"] == code)
                     and (not cert or u["certificate_no"] == cert)
                     and (not place or place in u["location"])]
            units = [self._unit(u) for u in found[:LOCATION_HITS]]
        return {"ZS": len(found), "DY": units}

    def issue_no_property_certificate(self, body: dict[str, Any], header: Any) -> dict[str, Any]:
        require(body, "QLRMC", "ZJZL", "ZJH", "CXMD")
        division = self._division(body)
        zjh = str(body["ZJH"]).upper()
        if str(body["ZJZL"]) == "1" and not valid_resident_id(zjh):
            raise SoapFault("Client", _("{value} is not a valid resident ID number", value=zjh),
                            "INVALID_ZJH")
        place = self.sandbox.data["county"]["name"]
        issuer = self.schedule["office"]
        with self.lock:
            held = self._held_by(zjh, division)
            if held:
                return {"CG": False, "YWBDC": True, "BDCSL": len(held), "CJSJ": now_iso(),
                        "CJJG": issuer, "XX": "名下有不动产登记记录，不能出具无房证明"}
            self._query_cert_seq += 1
            number = f"{place}不动产查字({dt.date.today().year})第{self._query_cert_seq:06d}号"
        return {"CG": True, "ZMBH": number, "YWBDC": False, "BDCSL": 0, "CJSJ": now_iso(),
                "CJJG": issuer, "XX": "经查询，未发现其名下有不动产登记记录"}

    # ------------------------------------------------------------------ appointments
    def _slots(self) -> list[tuple[str, str]]:
        """(start, end) of every slot of a working day, in order."""
        step = dt.timedelta(minutes=int(self.schedule["slot_minutes"]))
        out = []
        for opens, closes in self.schedule["hours"]:
            at = dt.datetime.strptime(opens, "%H:%M")
            end = dt.datetime.strptime(closes, "%H:%M")
            while at + step <= end:
                out.append((f"{at:%H:%M}", f"{at + step:%H:%M}"))
                at += step
        return out

    def _free(self, day: dt.date, start: str) -> bool:
        """Caller holds the lock."""
        return (start not in self.schedule["always_full"]
                and len(self.bookings.get((day.isoformat(), start), ()))
                < self.schedule["capacity"])

    def _alternatives(self, day: dt.date, after: str, n: int = 3) -> list[dict[str, str]]:
        """The first ``n`` free slots after ``after`` on ``day``, then on the next
        working days, within the calendar's horizon. Caller holds the lock."""
        today = dt.date.today()
        now = dt.datetime.now().strftime("%H:%M")
        out: list[dict[str, str]] = []
        for offset in range(int(self.schedule["horizon_days"])):
            date = day + dt.timedelta(days=offset)
            if date.weekday() >= 5 or date < today:
                continue
            for start, end in self._slots():
                if (offset == 0 and start <= after) or (date == today and start <= now):
                    continue
                if self._free(date, start):
                    out.append({"YYRQ": date.isoformat(), "KSSJ": start, "JSSJ": end})
                    if len(out) == n:
                        return out
        return out

    def book_appointment(self, body: dict[str, Any], header: Any) -> dict[str, Any]:
        require(body, "QQBH", "YYRQ", "KSSJ", "JSSJ", "YYR")
        person = body["YYR"] if isinstance(body["YYR"], dict) else {}
        require(person, "QLRMC", "ZJH")
        try:
            day = dt.date.fromisoformat(str(body["YYRQ"]))
        except ValueError:
            raise SoapFault("Client", _("YYRQ must be a date (YYYY-MM-DD)"), "BAD_DATE") from None
        start, end = str(body["KSSJ"]), str(body["JSSJ"])
        office = str(body.get("BLDD") or self.schedule["office"])
        refused = {"CG": False, "BLDD": office, "YYRQ": day.isoformat(), "KSSJ": start,
                   "JSSJ": end}
        horizon = int(self.schedule["horizon_days"])
        with self.lock:
            today = dt.date.today()
            if day < today or (day == today and start <= dt.datetime.now().strftime("%H:%M")):
                return {**refused, "XX": "预约时间已过，请选择其他时段",
                        "KXSD": self._alternatives(max(day, today), "00:00")}
            if (day - today).days >= horizon:
                return {**refused, "XX": f"只能预约 {horizon} 日内的时段", "KXSD": []}
            if day.weekday() >= 5 or (start, end) not in self._slots():
                return {**refused,
                        "XX": "该时段不办理业务（工作日 8:30-11:30、13:30-17:00，每半小时一个时段）",
                        "KXSD": self._alternatives(day, start if day.weekday() < 5 else "00:00")}
            taken = self.bookings.setdefault((day.isoformat(), start), [])
            zjh = str(person["ZJH"]).upper()
            mine = next((b for b in taken if b["ZJH"] == zjh or b["QQBH"] == body["QQBH"]), None)
            if mine is None:
                if not self._free(day, start):
                    return {**refused, "XX": "该时段已约满，请选择其他时段",
                            "KXSD": self._alternatives(day, start)}
                self._booking_seq += 1
                mine = {"YYH": f"YY{day:%Y%m%d}{self._booking_seq:05d}", "ZJH": zjh,
                        "QQBH": body["QQBH"], "YWH": body.get("YWH"), "SXMC": body.get("SXMC")}
                taken.append(mine)
        return {"CG": True, "YYH": mine["YYH"], "BLDD": office, "YYRQ": day.isoformat(),
                "KSSJ": start, "JSSJ": end, "XX": "预约成功，请按时携带身份证件到登记大厅办理"}

    # ------------------------------------------------------------------ sandbox side
    def set_auto_advance(self, interval: float | None) -> None:
        with self.lock:
            self.auto_interval = interval if interval and interval > 0 else None
            if self.auto_interval:
                for app in self.apps.values():
                    self._schedule(app)

    def control(self, action: str, req: Request) -> Response | None:
        if action == "callback":
            body = req.json_object()
            with self.lock:
                self.callback_url = body.get("url") or None
            return Response.json({"callback_url": self.callback_url})
        if action == "auto-advance":
            body = req.json_object()
            try:
                interval = float(body.get("interval") or 0)
            except (TypeError, ValueError):
                raise HttpError(400, "BAD_INTERVAL", _("interval must be a number of seconds")) from None
            self.set_auto_advance(interval)
            return Response.json({"auto_advance": self.auto_interval})
        return None
