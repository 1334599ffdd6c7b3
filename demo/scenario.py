"""The demo's scenario: sandbox + hub + sample cases, and what "done" means.

``DemoRun`` starts the simulated departments on free ports and the internal
network (``sandbox.internal``: the one-way gate's receiving side, the review
desk and the disc burner), loads config.yaml with an environment pointing at
them (``demo.environment``; the bridge on, transfers paid before they are
forwarded), serves the hub (workers, inbound endpoints, pollers, ferry inbox)
with an embedded SQLite broker and store in a fresh folder, wires the
departments' callbacks to the hub's inbound endpoints, and submits the samples
the way real callers would: signed HTTP requests from the one-window platforms,
the bank, the developer and the agency, and a seizure order the court makes
available for the hub to pull. An operator suspends the agency channel (as
``hub channel suspend`` does) before the agency submits, and resumes it after.

While the cases run, the demo plays the people around them (``REACTIONS``):
the window sends the materials a correction notice asked for, the applicant
pays the bill, grades the closed case, books a slot, and the platform that
submitted a case verifies and downloads its e-certificate.

Each case has milestones (``demo.milestones``), checked against what the hub
itself recorded; a case has reached its expected end state when all hold.
"""

from __future__ import annotations

import errno
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from bdchub.core.errors import ConfigError, HubError
from bdchub.core.i18n import _

from . import samples as samples_mod
from .environment import free_port, sandbox_environ
from .lifecycle import StartStop
from .milestones import APPLICATION_STAGES, KINDS, N_, VERIFICATION_KINDS, CaseState, Milestone

__all__ = ["KINDS", "VERIFICATION_KINDS", "Case", "CaseState", "DemoRun"]

#: registration types paid for before they are forwarded (HUB_PAYMENT_REQUIRED_TYPES):
#: transfers, whose tax the bill lists with the tax bureau's voucher
PAID_TYPES = "200"


@dataclass
class Case:
    """One row of the demo: ``ref`` is what it is known by (a business, batch,
    query or request number), ``about`` the business number whose records the hub
    keeps for it (the same for an application)."""

    kind: str
    ref: str
    channel: str
    about: str = ""
    started: float = 0.0
    reached_at: float | None = None
    state: CaseState = field(default_factory=CaseState)
    done: int = 0  # milestones reached
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    acted: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.about = self.about or self.ref

    @property
    def milestones(self) -> tuple[Milestone, ...]:
        return KINDS[self.kind].milestones

    @property
    def reached(self) -> bool:
        return self.reached_at is not None

    @property
    def seconds(self) -> float | None:
        return None if self.reached_at is None else self.reached_at - self.started

    def update(self, state: CaseState, now: float) -> None:
        state.answers = self.answers
        self.state = state
        done = 0
        for i, milestone in enumerate(self.milestones):
            if milestone.check(state):
                done = i + 1
        self.done = max(self.done, done)
        if self.reached_at is None and all(m.check(state) for m in self.milestones):
            self.reached_at = now

    @property
    def current(self) -> str:
        if self.done == 0:
            return N_("submitted")
        return self.milestones[self.done - 1].label


class DemoRun(StartStop):
    """One demo: sandbox, internal network, hub service and cases. Use as a context manager."""

    def __init__(self, config_path: str | Path = "config.yaml", *, auto_advance: float = 0.3,
                 tax_delay: float = 1.0, court_poll: float = 0.5, keep: bool = False,
                 workdir: str | Path | None = None):
        self.config_path = Path(config_path)
        self.auto_advance = auto_advance
        self.tax_delay = tax_delay
        self.court_poll = court_poll
        self.keep = keep
        self._own_dir = workdir is None
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="bdc-demo-"))
        self.sb: Any = None
        self.internal: Any = None
        self.service: Any = None
        self.config: dict[str, Any] = {}
        self.samples: dict[str, Any] = {}
        self.cases: list[Case] = []
        self.started = time.monotonic()
        self.submissions: list[str] = []  # what was submitted, one line each, translated

    # -- life cycle
    def start(self) -> None:
        from bdchub.app.service import HubService
        from bdchub.core.config import load
        from bdchub.sandbox import Sandbox
        from bdchub.sandbox.internal import InternalNetwork

        self.started = time.monotonic()
        # The registration system waits at 审核 for the tax bureau (transfers) and for
        # the internal network's review (cases with spatial materials).
        self.sb = Sandbox(seed=42, auto_advance=self.auto_advance, legacy_require_tax=True,
                          legacy_require_review=True,
                          tax_clearance_delay=self.tax_delay).start()
        self.internal = InternalNetwork(self.workdir / "internal").start()
        # The review desk answers within a second; a real review takes hours, long after
        # the registration system took the case in. A review that overtakes the
        # system's first report waits in the hub (review_results parks it for 30 s), so
        # the desk holds its reviews until the registration system reported every case
        # with spatial materials (``_review``), as it would in real time.
        self.internal.set(hold=True)
        # A port found free may be taken before the hub binds it (another program on
        # the machine): then the hub starts again on another.
        for attempt in range(3):
            port = free_port()
            data_dir = self.workdir / "data"
            data_dir.mkdir(parents=True, exist_ok=True)
            env = sandbox_environ(self.sb, inbound_port=port, data_dir=data_dir,
                                  internal=self.internal,
                                  HUB_COURT_POLL_SECONDS=str(self.court_poll),
                                  HUB_PAYMENT_REQUIRED_TYPES=PAID_TYPES)
            config = load(self.config_path, environ=env)
            # The hub's own files (audit log, defaults) go to the demo's folder, not
            # next to config.yaml: every URL in the config is absolute.
            config["__dir__"] = str(self.workdir)
            self.config = config
            # The demo signs with the published demo secrets: it is what they are for.
            self.service = HubService.from_config(config, tick_interval=0.2, demo_secrets=True)
            try:
                self.service.start()
                break
            except ConfigError as exc:
                taken = isinstance(exc.__cause__, OSError) and \
                    exc.__cause__.errno == errno.EADDRINUSE
                self.service.stop(timeout=5.0)
                self.service = None
                if not taken or attempt == 2:
                    raise
        self.sb.legacy_set_callback(self.service.url + "/api/v1/inbound/legacy/stage-changes")
        self.sb.tax_set_callback(self.service.url + "/api/v1/inbound/tax/clearances")
        self.samples = samples_mod.build(self.sb.data)
        self.samples["agent"] = samples_mod.fully_online(self.samples["agent_base"],
                                                         self.sb.endpoint("gov"))
        self._prepare_departments()

    def close(self) -> None:
        if self.service is not None:
            self.service.stop(timeout=5.0)
            self.service = None
        if self.internal is not None:
            self.internal.stop()
            self.internal = None
        if self.sb is not None:
            self.sb.stop()
            self.sb = None
        if self._own_dir and not self.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # -- department-side set-up (what happened before the citizens applied)
    def _prepare_departments(self) -> None:
        """The couple's contract is filed online at the housing trade department
        (网签备案); the bank is in the market regulator's register; the platforms
        put the spatial materials' files into the material store the gate reads."""
        filing = self.samples["filing"]
        trade = self.sb.endpoint("trade")
        with trade.lock:
            trade.filings[filing["filing_no"]] = dict(filing)
        bank = self.samples["bank"]
        market = self.sb.endpoint("market")
        with market.lock:
            market.companies[bank["id_number"]] = {
                "uscc": bank["id_number"], "company_name": bank["name"], "legal_rep": "王建国",
                "status": "存续", "reg_date": "2006-03-18", "reg_capital": "分支机构",
                "address": "南通市海门区人民中路1号", "reg_authority": "南通市海门区市场监督管理局"}
        for key in samples_mod.SPATIAL_SAMPLES:
            body = self.samples[key]
            for content in samples_mod.spatial_files(body["business_no"],
                                                     body["materials"]).values():
                self.internal.deposit(content)

    # -- requests, as the callers make them
    def _client(self, name: str) -> tuple[str, str]:
        client = self.config["inbound"]["clients"][name]
        return client["app_key"], client["app_secret"]

    def post(self, client: str, path: str, body: dict[str, Any]) -> requests.Response:
        from bdchub.web.signing import signed_headers

        raw = json.dumps(body, ensure_ascii=False).encode("utf-8")
        key, secret = self._client(client)
        headers = {"Content-Type": "application/json; charset=utf-8",
                   **signed_headers(key, secret, "POST", path, raw)}
        return requests.post(self.service.url + path, data=raw, headers=headers, timeout=30)

    def _submit(self, kind: str, client: str, path: str, body: dict[str, Any], *,
                expect: int = 202,
                said: str = N_("submitted {what} {no}: HTTP {status}")) -> requests.Response:
        resp = self.post(client, path, body)
        self.submissions.append(_(said, what=_(kind), no=body.get("business_no")
                                  or body.get("query_no"), status=resp.status_code))
        if resp.status_code != expect:
            raise HubError(_("{what} was not accepted: HTTP {status} {body}", what=_(kind),
                             status=resp.status_code, body=resp.text[:300]))
        return resp

    def _add(self, kind: str, ref: str, channel: str, about: str = "",
             started: float | None = None) -> Case:
        case = Case(kind, ref, channel, about=about,
                    started=time.monotonic() if started is None else started)
        self.cases.append(case)
        return case

    def submit_all(self) -> list[Case]:
        """Submit every sample; returns the cases to watch."""
        s = self.samples
        self._suspended_channel()
        self._query()
        plan = [("transfer with tax", "county_window", s["transfer"]),
                ("first registration", "national_window", s["first"]),
                ("refused application", "province_window", s["refusal"]),
                ("incomplete application", "county_window", s["correction"]),
                ("correction resubmitted", "county_window", s["corrected"]),
                ("notice at the province", "province_window", s["province"]),
                ("results at three levels", "county_window", s["three_levels"]),
                ("diode and ferry", "county_window", s["spatial"]),
                ("institution credit code", "county_window", s["institution"]),
                ("agent with face comparison", "county_window", s["agent"])]
        for kind, client, body in plan:
            started = time.monotonic()
            self._submit(kind, client, "/api/v1/applications", body)
            self._add(kind, body["business_no"], client, started=started)
        # Cases that follow others: the transfer's bill, the first registration's
        # e-certificate, the province case's grade, the incomplete one's appointment.
        transfer, first = s["transfer"]["business_no"], s["first"]["business_no"]
        self._add("payment", transfer, "county_window")
        self._add("e-certificate verify and download", first, "national_window")
        self._add("good-bad evaluation", s["province"]["business_no"], "province_window")
        self._add("appointment", s["appointment"]["request_no"], "county_window",
                  about=s["correction"]["business_no"])
        for kind, client, path, key, said in (
                ("bank mortgage", "bank_jhrcb", "/api/v1/bank/batches", "batch",
                 N_("the bank submitted batch {no}: HTTP {status}")),
                ("developer batch", "developer_hm", "/api/v1/developer/batches",
                 "developer_batch", N_("the developer submitted batch {no}: HTTP {status}"))):
            started = time.monotonic()
            batch = s[key]
            resp = self.post(client, path, batch)
            self.submissions.append(_(said, no=batch["business_no"], status=resp.status_code))
            if resp.status_code != 202:
                raise HubError(_("{what} was not accepted: HTTP {status} {body}", what=_(kind),
                                 status=resp.status_code, body=resp.text[:300]))
            for no in resp.json().get("business_nos") or []:
                self._add(kind, no, client, started=started)
        seizure = s["seizure"]
        order = self.sb.court_add_seizure(seizure["unit_code"],
                                          RespondentName=seizure["RespondentName"],
                                          RespondentIdNumber=seizure["RespondentIdNumber"],
                                          Summary=seizure["Summary"])
        self.submissions.append(_("the court issued seizure order {no}; the hub pulls it",
                                  no=order["OrderId"]))
        self._add("court seizure", order["OrderId"], "court")
        return self.cases

    def _suspended_channel(self) -> None:
        """The registration agency suspends the agency channel the way ``hub channel
        suspend`` does (the store, the audit log); the agency's batch is refused;
        the channel is resumed. First of all requests, so the hub's first read of the
        suspensions (``inbound.suspension_refresh``) already holds this one."""
        from bdchub.app.channels_cli import resume, suspend

        hub = self.service.hub
        batch = self.samples["agency_batch"]
        case = self._add("suspended channel", batch["business_no"], "agency_hm")
        suspend(hub, "channel", "agency", by="demo-operator", reason="代办材料造假，暂停受理（演示）")
        try:
            resp = self._submit("suspended channel", "agency_hm", "/api/v1/agency/batches", batch,
                                expect=403, said=N_("the agency channel is suspended; its batch "
                                                    "{no} was refused: HTTP {status}"))
            case.answers["batch"] = {"status": resp.status_code, "body": resp.json()}
        finally:
            resume(hub, "channel", "agency", by="demo-operator", reason="整改完毕（演示）")

    def _query(self) -> None:
        query = self.samples["query"]
        case = self._add("query", query["query_no"], "county_window")
        resp = self._submit("query", "county_window", "/api/v1/queries/own-properties", query,
                            expect=200)
        case.answers["query"] = {"status": resp.status_code, "body": resp.json()}

    # -- the people around the cases
    def _send_corrections(self, case: Case) -> None:
        body = self.samples["correction_materials"]
        resp = self.post(case.channel, f"/api/v1/applications/{case.about}/materials", body)
        case.answers["materials"] = {"status": resp.status_code}

    def _pay(self, case: Case) -> None:
        self.sb.endpoint("payment").pay(case.about)

    def _grade(self, case: Case) -> None:
        resp = self.post(case.channel, "/api/v1/evaluations", self.samples["grade"])
        case.answers["grade"] = {"status": resp.status_code, "body": resp.json()}

    def _book(self, case: Case) -> None:
        resp = self.post(case.channel, "/api/v1/appointments", self.samples["appointment"])
        case.answers["booking"] = {"status": resp.status_code}

    def _review(self, case: Case) -> None:
        spatial = {self.samples[key]["business_no"] for key in samples_mod.SPATIAL_SAMPLES}
        if any(c.about in spatial and c.state.stage not in APPLICATION_STAGES
               for c in self.cases):
            case.acted.discard("review")  # not yet: asked again at the next poll
            return
        self.internal.set(hold=False)

    def _verify_and_download(self, case: Case) -> None:
        import hashlib

        licence = case.state.result("e_licence").get("license_no")
        verified = self.post(case.channel, "/api/v1/e-certificates/verify",
                             {"licence_number": licence})
        case.answers["verify"] = {"status": verified.status_code, "body": verified.json()}
        file = self.post(case.channel, "/api/v1/e-certificates/download",
                         {"licence_number": licence})
        case.answers["download"] = {"status": file.status_code,
                                    "sha256": hashlib.sha256(file.content).hexdigest()}

    # -- watching
    def state_of(self, business_no: str, audit: list[dict[str, Any]] | None = None) -> CaseState:
        hub = self.service.hub
        tenant = hub.tenant
        # The progress as the windows are answered: its stage and the case's history.
        return CaseState(progress=hub.progress_by_business_no(tenant, business_no),
                         trace=hub.trace(business_no, tenant),
                         verifications=hub.store.verifications_for(business_no),
                         notices=hub.store.notices_for(tenant, business_no),
                         audit=audit if audit is not None else hub.audit_log().records())

    def _refresh(self, cases: list[Case]) -> None:
        now = time.monotonic()
        audit = self.service.hub.audit_log().records()
        states: dict[str, CaseState] = {}
        for case in cases:
            if case.about not in states:
                states[case.about] = self.state_of(case.about, audit)
            case.update(CaseState(**{**states[case.about].__dict__}), now)

    def react(self) -> None:
        """What the people around the cases do once the hub's records say it is time."""
        for case in self.cases:
            for name, (ready, act) in REACTIONS.get(case.kind, {}).items():
                if name not in case.acted and ready(case.state):
                    case.acted.add(name)
                    act(self, case)

    def poll(self) -> bool:
        """React, refresh every open case; True when all reached their end state."""
        self.react()
        self._refresh([c for c in self.cases if not c.reached])
        return all(c.reached for c in self.cases)

    def refresh_all(self) -> None:
        """Final snapshot of every case (traces keep growing a little after the end state)."""
        self._refresh(self.cases)

    def summary(self) -> dict[str, Any]:
        return {
            "ok": bool(self.cases) and all(c.reached for c in self.cases),
            "elapsed": round(time.monotonic() - self.started, 2),
            "cases": [{"business_no": c.ref, "about": c.about, "kind": c.kind,
                       "channel": c.channel, "expected": KINDS[c.kind].expected,
                       "reached": c.reached, "state": c.current, "stage": c.state.stage,
                       "milestones": f"{c.done}/{len(c.milestones)}",
                       "seconds": None if c.seconds is None else round(c.seconds, 2)}
                      for c in self.cases],
        }


Ready = Callable[[CaseState], bool]
Act = Callable[[DemoRun, Case], None]

#: kind -> {reaction: (when the hub's records say it is time, what is done)}
REACTIONS: dict[str, dict[str, tuple[Ready, Act]]] = {
    "diode and ferry": {
        "review": (lambda s: s.stage in APPLICATION_STAGES, DemoRun._review)},
    "correction resubmitted": {
        "materials": (lambda s: s.stage == "correction", DemoRun._send_corrections)},
    "payment": {
        "pay": (lambda s: bool(s.records("payment_order")), DemoRun._pay)},
    "good-bad evaluation": {
        "grade": (lambda s: bool(s.records("evaluation_request")), DemoRun._grade)},
    "appointment": {
        "book": (lambda s: s.stage == "correction", DemoRun._book)},
    "e-certificate verify and download": {
        "verify": (lambda s: bool(s.result("e_licence").get("license_no")),
                   DemoRun._verify_and_download)},
}
