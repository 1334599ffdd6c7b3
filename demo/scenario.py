"""The demo's scenario: sandbox + hub + sample applications, and what "done" means.

``DemoRun`` starts the simulated departments on free ports, loads config.yaml
with an environment pointing at them (``demo.environment``), serves the hub
(workers, inbound endpoints, pollers) with an embedded SQLite broker and store
in a fresh folder, wires the departments' callbacks to the hub's inbound
endpoints, and submits the samples the way real callers would: signed HTTP
requests from the one-window platforms and the bank, and a seizure order the
court makes available for the hub to pull.

Each submitted case has milestones, checked against what the hub itself
recorded (its progress table, trace and verification records); a case has
reached its expected end state when its last milestone holds.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from bdchub.core.errors import HubError
from bdchub.core.i18n import _

from . import samples as samples_mod
from .environment import free_port, sandbox_environ

APPLICATION_STAGES = ["application", "acceptance", "review", "registration", "certificate",
                      "archive"]



def N_(msgid: str) -> str:  # noqa: N802 - the conventional name of gettext_noop
    """Mark a msgid for translation where it is defined; ``_`` translates it when shown."""
    return msgid


#: verification record kinds (``record:`` in config.yaml) -> their name
VERIFICATION_KINDS = {
    "identity": N_("identity"), "household": N_("household"), "marriage": N_("marriage"),
    "business_licence": N_("business licence"), "contract_filing": N_("contract filing"),
    "e_licence": N_("e-licence"),
}


@dataclass
class CaseState:
    """What the hub knows about one business number."""

    progress: dict[str, Any] | None = None
    trace: list[dict[str, Any]] = field(default_factory=list)
    verifications: list[dict[str, Any]] = field(default_factory=list)

    @property
    def stage(self) -> str:
        return str((self.progress or {}).get("stage") or "")

    def hop(self, route: str, *, step_kind: str | None = None, detail: str | None = None,
            type_: str | None = None, outcome: str = "ok") -> bool:
        for h in self.trace:
            if h["route"] != route or h["outcome"] != outcome:
                continue
            if step_kind and not str(h["step"]).endswith(":" + step_kind):
                continue
            if detail is not None and h["detail"] != detail:
                continue
            if type_ is not None and h["type"] != type_:
                continue
            return True
        return False


@dataclass
class Milestone:
    key: str
    label: str  # English msgid
    check: Callable[[CaseState], bool]


def _stage_at_least(stage: str) -> Callable[[CaseState], bool]:
    want = APPLICATION_STAGES.index(stage)

    def check(state: CaseState) -> bool:
        return state.stage in APPLICATION_STAGES and APPLICATION_STAGES.index(state.stage) >= want
    return check


def _received(state: CaseState) -> bool:
    return any(h["route"] == "online_application" for h in state.trace)


def _verified(state: CaseState) -> bool:
    return bool(state.verifications)


def _forwarded(state: CaseState) -> bool:
    return any(h["detail"] == "application.forwarded" and h["outcome"] == "ok"
               for h in state.trace)


def _tax_cleared(state: CaseState) -> bool:
    return state.hop("tax_application", step_kind="await", detail="resumed")


def _e_certificate(state: CaseState) -> bool:
    return state.hop("registration_results", detail="e_certificate.issued")


def _notified(type_: str) -> Callable[[CaseState], bool]:
    return lambda s: s.hop("decision_notices", step_kind="to", type_=type_)


REGISTERED = [
    Milestone("application", N_("application"), _stage_at_least("application")),
    Milestone("acceptance", N_("accepted"), _stage_at_least("acceptance")),
    Milestone("review", N_("review"), _stage_at_least("review")),
    Milestone("registration", N_("entered in the register"), _stage_at_least("registration")),
    Milestone("certificate", N_("certificate issued"), _stage_at_least("certificate")),
    Milestone("archive", N_("archived"), _stage_at_least("archive")),
    Milestone("e_certificate", N_("e-certificate issued"), _e_certificate),
]

MILESTONES: dict[str, list[Milestone]] = {
    "transfer": [
        Milestone("received", N_("received by the hub"), _received),
        Milestone("verified", N_("shared data verified"), _verified),
        Milestone("tax_cleared", N_("tax cleared"), _tax_cleared),
        Milestone("forwarded", N_("forwarded to the registration system"), _forwarded),
        *REGISTERED,
    ],
    "mortgage": [
        Milestone("received", N_("received by the hub"), _received),
        Milestone("verified", N_("shared data verified"), _verified),
        Milestone("forwarded", N_("forwarded to the registration system"), _forwarded),
        *REGISTERED,
    ],
    "refusal": [
        Milestone("received", N_("received by the hub"), _received),
        Milestone("verified", N_("shared data verified"), _verified),
        Milestone("forwarded", N_("forwarded to the registration system"), _forwarded),
        Milestone("refusal", N_("not accepted (refused)"), lambda s: s.stage == "refusal"),
        Milestone("notified", N_("refusal notice sent"), _notified("refusal.notified")),
    ],
    "correction": [
        Milestone("received", N_("received by the hub"), _received),
        Milestone("correction", N_("correction requested"), lambda s: s.stage == "correction"),
        Milestone("notified", N_("correction notice sent"), _notified("correction.requested")),
    ],
    "seizure": [
        Milestone("pulled", N_("pulled from the court"), lambda s: any(
            h["route"] == "court_order" for h in s.trace)),
        Milestone("registered", N_("sent to the registration system"),
                  lambda s: s.hop("court_order", step_kind="to")),
        Milestone("acknowledged", N_("acknowledged to the court"),
                  lambda s: s.hop("court_ack", step_kind="to")),
    ],
}
MILESTONES["first"] = MILESTONES["mortgage"]

#: kind -> (English msgid of the kind, English msgid of the expected end state)
KINDS = {
    "transfer": (N_("transfer with tax"), N_("archived, e-certificate issued")),
    "mortgage": (N_("bank mortgage"), N_("archived, e-certificate issued")),
    "first": (N_("first registration"), N_("archived, e-certificate issued")),
    "refusal": (N_("refused application"), N_("refused, notice sent")),
    "correction": (N_("incomplete application"), N_("correction requested, notice sent")),
    "seizure": (N_("court seizure"), N_("in the register, acknowledged")),
}


@dataclass
class Case:
    kind: str
    business_no: str
    channel: str
    started: float = 0.0
    reached_at: float | None = None
    state: CaseState = field(default_factory=CaseState)
    done: int = 0  # milestones reached

    @property
    def milestones(self) -> list[Milestone]:
        return MILESTONES[self.kind]

    @property
    def reached(self) -> bool:
        return self.reached_at is not None

    @property
    def seconds(self) -> float | None:
        return None if self.reached_at is None else self.reached_at - self.started

    def update(self, state: CaseState, now: float) -> None:
        self.state = state
        done = 0
        for i, milestone in enumerate(self.milestones):
            if milestone.check(state):
                done = i + 1
        self.done = max(self.done, done)
        if self.reached_at is None and self.milestones[-1].check(state) and all(
                m.check(state) for m in self.milestones):
            self.reached_at = now

    @property
    def current(self) -> str:
        if self.done == 0:
            return N_("submitted")
        return self.milestones[self.done - 1].label


class DemoRun:
    """One demo: sandbox, hub service and cases. Use as a context manager."""

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
        self.service: Any = None
        self.config: dict[str, Any] = {}
        self.samples: dict[str, Any] = {}
        self.cases: list[Case] = []
        self.started = time.monotonic()
        self.submissions: list[tuple[str, str, int]] = []  # (what, business no, HTTP status)

    # -- life cycle
    def __enter__(self) -> DemoRun:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def start(self) -> None:
        from bdchub.app.service import HubService
        from bdchub.core.config import load
        from bdchub.sandbox import Sandbox

        self.started = time.monotonic()
        self.sb = Sandbox(seed=42, auto_advance=self.auto_advance, legacy_require_tax=True,
                          tax_clearance_delay=self.tax_delay).start()
        port = free_port()
        data_dir = self.workdir / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        env = sandbox_environ(self.sb, inbound_port=port, data_dir=data_dir,
                              HUB_COURT_POLL_SECONDS=str(self.court_poll))
        config = load(self.config_path, environ=env)
        # The hub's own files (audit log, defaults) go to the demo's folder, not
        # next to config.yaml: every URL in the config is absolute.
        config["__dir__"] = str(self.workdir)
        self.config = config
        self.service = HubService.from_config(config, tick_interval=0.2)
        self.service.start()
        self.sb.legacy_set_callback(self.service.url + "/api/v1/inbound/legacy/stage-changes")
        self.sb.tax_set_callback(self.service.url + "/api/v1/inbound/tax/clearances")
        self.samples = samples_mod.build(self.sb.data)
        self._prepare_departments()

    def close(self) -> None:
        if self.service is not None:
            self.service.stop(timeout=5.0)
            self.service = None
        if self.sb is not None:
            self.sb.stop()
            self.sb = None
        if self._own_dir and not self.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # -- department-side set-up (what happened before the citizens applied)
    def _prepare_departments(self) -> None:
        """The couple's contract is filed online at the housing trade department
        (网签备案); the bank is in the market regulator's register."""
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

    # -- submissions
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

    def submit_all(self) -> list[Case]:
        """Submit every sample; returns the cases to watch."""
        s = self.samples
        plan = [("transfer", "county_window", s["transfer"]),
                ("first", "national_window", s["first"]),
                ("refusal", "province_window", s["refusal"]),
                ("correction", "county_window", s["correction"])]
        for kind, client, body in plan:
            case = Case(kind, body["business_no"], client, started=time.monotonic())
            resp = self.post(client, "/api/v1/applications", body)
            self.submissions.append((kind, body["business_no"], resp.status_code))
            if resp.status_code != 202:
                raise HubError(_("{what} was not accepted: HTTP {status} {body}", what=kind,
                                 status=resp.status_code, body=resp.text[:300]))
            self.cases.append(case)
        batch = s["batch"]
        started = time.monotonic()
        resp = self.post("bank_jhrcb", "/api/v1/bank/batches", batch)
        self.submissions.append(("batch", batch["business_no"], resp.status_code))
        if resp.status_code != 202:
            raise HubError(_("{what} was not accepted: HTTP {status} {body}", what="batch",
                             status=resp.status_code, body=resp.text[:300]))
        for no in resp.json().get("business_nos") or []:
            self.cases.append(Case("mortgage", no, "bank_jhrcb", started=started))
        seizure = s["seizure"]
        order = self.sb.court_add_seizure(seizure["unit_code"],
                                          RespondentName=seizure["RespondentName"],
                                          RespondentIdNumber=seizure["RespondentIdNumber"],
                                          Summary=seizure["Summary"])
        self.submissions.append(("seizure", order["OrderId"], 0))
        self.cases.append(Case("seizure", order["OrderId"], "court", started=time.monotonic()))
        return self.cases

    # -- watching
    def state_of(self, business_no: str) -> CaseState:
        hub = self.service.hub
        tenant = hub.tenant
        return CaseState(progress=hub.store.progress(tenant, business_no),
                         trace=hub.trace(business_no, tenant),
                         verifications=hub.store.verifications_for(business_no))

    def poll(self) -> bool:
        """Refresh every case; True when all reached their end state."""
        now = time.monotonic()
        for case in self.cases:
            if not case.reached:
                case.update(self.state_of(case.business_no), now)
        return all(c.reached for c in self.cases)

    def refresh_all(self) -> None:
        """Final snapshot of every case (traces keep growing a little after the end state)."""
        now = time.monotonic()
        for case in self.cases:
            case.update(self.state_of(case.business_no), now)

    def summary(self) -> dict[str, Any]:
        return {
            "ok": bool(self.cases) and all(c.reached for c in self.cases),
            "elapsed": round(time.monotonic() - self.started, 2),
            "cases": [{"business_no": c.business_no, "kind": c.kind,
                       "expected": KINDS[c.kind][1], "reached": c.reached,
                       "state": c.current, "stage": c.state.stage,
                       "milestones": f"{c.done}/{len(c.milestones)}",
                       "seconds": None if c.seconds is None else round(c.seconds, 2)}
                      for c in self.cases],
        }
