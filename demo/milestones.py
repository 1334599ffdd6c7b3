"""What each kind of demo case must reach, checked against the hub's own records.

A case's ``CaseState`` is what the hub recorded about one business number: its
progress row, its trace, its verification records, its stored notices; the
hub's audit log; and what the hub answered the demo's own requests for the case
(``answers``: a query's answer, a refusal, a verification). A milestone is a
fact about that state that stays true once it holds, so the last snapshot still
shows every milestone the case passed. A case has reached its expected end
state when all its milestones hold.

Kind ids are plain English words saying what the case shows ("correction
resubmitted", "diode and ferry"); they are also the msgids of the labels the
human output shows, translated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

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
    """What the hub knows about one business number (and what it answered the demo)."""

    progress: dict[str, Any] | None = None
    trace: list[dict[str, Any]] = field(default_factory=list)
    verifications: list[dict[str, Any]] = field(default_factory=list)
    notices: list[dict[str, Any]] = field(default_factory=list)
    audit: list[dict[str, Any]] = field(default_factory=list)
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def stage(self) -> str:
        return str((self.progress or {}).get("stage") or "")

    def hop(self, route: str, *, step_kind: str | None = None, detail: str | None = None,
            type_: str | None = None, outcome: str = "ok", branch: bool = False) -> bool:
        """A hop of ``route`` with that outcome (and step kind, detail, message type;
        ``branch``: a step inside a choice's ``when``)."""
        for h in self.trace:
            if h["route"] != route or h["outcome"] != outcome:
                continue
            if step_kind and not str(h["step"]).endswith(":" + step_kind):
                continue
            if branch and ".when." not in str(h["step"]):
                continue
            if detail is not None and h["detail"] != detail:
                continue
            if type_ is not None and h["type"] != type_:
                continue
            return True
        return False

    def records(self, kind: str, connector: str | None = None) -> list[dict[str, Any]]:
        return [r for r in self.verifications if r["kind"] == kind
                and (connector is None or r["connector"] == connector)]

    def result(self, kind: str) -> dict[str, Any]:
        """The result of the latest ``kind`` record, or {}."""
        found = self.records(kind)
        result = found[-1].get("result") if found else None
        return result if isinstance(result, dict) else {}

    def audited(self, event: str, **fields: Any) -> list[dict[str, Any]]:
        return [r["fields"] for r in self.audit if r["event"] == event
                and all(r["fields"].get(k) == v for k, v in fields.items())]

    def answer(self, name: str) -> dict[str, Any]:
        return self.answers.get(name) or {}


Check = Callable[[CaseState], bool]


@dataclass(frozen=True)
class Milestone:
    key: str
    label: str  # English msgid
    check: Check


@dataclass(frozen=True)
class Kind:
    id: str  # plain English; also the msgid of the label shown
    expected: str  # English msgid of the expected end state
    milestones: tuple[Milestone, ...]


# -- checks -------------------------------------------------------------------------

def _stage_at_least(stage: str) -> Check:
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


def _notified(type_: str) -> Check:
    return lambda s: s.hop("decision_notices", step_kind="to", type_=type_)


def _recorded(kind: str, connector: str | None = None) -> Check:
    return lambda s: bool(s.records(kind, connector))


def _submitted_by(client: str) -> Check:
    """The hub keeps ``client`` as the case's submitter (its notices name it)."""
    return lambda s: any(h["route"] == "decision_notices" and h["step"].endswith(":case_submitter")
                         and str(h["detail"] or "").startswith(client + " ") for h in s.trace)


def _results_at(level: str) -> Check:
    route = f"results_{level}"
    return lambda s: (s.hop(route, step_kind="enrich", type_="registration.result")
                      and s.hop(route, step_kind="enrich", type_="e_certificate.issued"))


def _receipts_from_every_level(state: CaseState) -> bool:
    levels = {r["connector"] for r in state.records("result_receipt")}
    return levels >= {"window_county", "window_province", "window_national"} and len(
        state.records("result_receipt")) >= 6


def _taken_back(state: CaseState) -> bool:
    """The hub merged the materials into the application it held and published it
    again: the correction route ends there (skipped), flow a takes it from the start."""
    return state.hop("material_corrections", step_kind="resume_held", outcome="skipped")


def _paid(state: CaseState) -> bool:
    return bool(state.result("payment").get("receipt_no"))


def _payment_notice(state: CaseState) -> bool:
    return state.hop("payment_order", step_kind="to")


def _face_passed(state: CaseState) -> bool:
    rows = state.result("face_comparison").get("rows") or []
    return bool(rows) and all(r.get("passed") and r.get("liveness_passed") and r.get("consistent")
                              for r in rows)


def _query_answered(state: CaseState) -> bool:
    answer = state.answer("query")
    return answer.get("status") == 200 and int((answer.get("body") or {}).get("total") or 0) > 0


def _query_masked(state: CaseState) -> bool:
    body = state.answer("query").get("body") or {}
    ids = [str((body.get("person") or {}).get("id_number") or "")] + [
        str(h.get("id_number") or "") for u in body.get("units") or []
        for h in u.get("holders") or []]
    return bool(ids) and all("*" in i for i in ids)


def _query_audited(state: CaseState) -> bool:
    body = state.answer("query").get("body") or {}
    return any(r.get("type") == "query.own_properties" and r.get("purpose") == body.get("purpose")
               and "*" in str(((r.get("subject") or {}).get("person") or {}).get("id_number"))
               for r in state.audited("inbound.query"))


def _appointment_in_progress(state: CaseState) -> bool:
    history = (state.progress or {}).get("history") or []
    return any(h.get("type") == "appointment.confirmed" and h.get("outcome") == "ok"
               for h in history)


def _refused_suspended(state: CaseState) -> bool:
    answer = state.answer("batch")
    error = (answer.get("body") or {}).get("error") or {}
    return answer.get("status") == 403 and error.get("code") == "channel_suspended"


def _graded(state: CaseState) -> bool:
    answer = state.answer("grade")
    return answer.get("status") == 202 and (answer.get("body") or {}).get("result") == "accepted"


def _e_certificate_verified(state: CaseState) -> bool:
    body = state.answer("verify").get("body") or {}
    return (state.answer("verify").get("status") == 200 and body.get("valid") is True
            and state.hop("e_certificate_verify"))


def _downloaded_as_verified(state: CaseState) -> bool:
    """The file passed on is the one the verification described, and the hub audited it."""
    verified = {f.get("sha256") for f in (state.answer("verify").get("body") or {}).get("files")
                or []}
    download = state.answer("download")
    return download.get("status") == 200 and download.get("sha256") in verified and bool(
        state.audited("inbound.file_sent", sha256=download.get("sha256")))


# -- the kinds ------------------------------------------------------------------------

RECEIVED = Milestone("received", N_("received by the hub"), _received)
VERIFIED = Milestone("verified", N_("shared data verified"), _verified)
FORWARDED = Milestone("forwarded", N_("forwarded to the registration system"), _forwarded)
ARCHIVED = Milestone("archive", N_("archived"), _stage_at_least("archive"))
E_CERTIFICATE = Milestone("e_certificate", N_("e-certificate issued"),
                          lambda s: s.hop("registration_results", detail="e_certificate.issued"))
REGISTERED = (
    Milestone("application", N_("application"), _stage_at_least("application")),
    Milestone("acceptance", N_("accepted"), _stage_at_least("acceptance")),
    Milestone("review", N_("review"), _stage_at_least("review")),
    Milestone("registration", N_("entered in the register"), _stage_at_least("registration")),
    Milestone("certificate", N_("certificate issued"), _stage_at_least("certificate")),
    ARCHIVED, E_CERTIFICATE,
)
ARCHIVED_WITH_E_CERTIFICATE = N_("archived, e-certificate issued")


def _kind(id_: str, expected: str, *milestones: Milestone) -> Kind:
    return Kind(id_, expected, milestones)


KINDS: dict[str, Kind] = {k.id: k for k in (
    _kind(N_("transfer with tax"), ARCHIVED_WITH_E_CERTIFICATE,
          RECEIVED, VERIFIED,
          Milestone("tax_cleared", N_("tax cleared"),
                    lambda s: s.hop("tax_application", step_kind="await", detail="resumed")),
          Milestone("paid", N_("fees and tax paid"), _paid),
          FORWARDED, *REGISTERED),
    _kind(N_("bank mortgage"), ARCHIVED_WITH_E_CERTIFICATE,
          RECEIVED, VERIFIED, FORWARDED, *REGISTERED),
    _kind(N_("first registration"), ARCHIVED_WITH_E_CERTIFICATE,
          RECEIVED, VERIFIED, FORWARDED, *REGISTERED),
    _kind(N_("refused application"), N_("refused, notice sent"),
          RECEIVED, VERIFIED, FORWARDED,
          Milestone("refusal", N_("not accepted (refused)"), lambda s: s.stage == "refusal"),
          Milestone("notified", N_("refusal notice sent"), _notified("refusal.notified"))),
    _kind(N_("incomplete application"), N_("correction requested, notice sent"),
          RECEIVED,
          Milestone("correction", N_("correction requested"),
                    lambda s: s.stage == "correction"),
          Milestone("notified", N_("correction notice sent"), _notified("correction.requested"))),
    _kind(N_("court seizure"), N_("in the register, acknowledged"),
          Milestone("pulled", N_("pulled from the court"),
                    lambda s: any(h["route"] == "court_order" for h in s.trace)),
          Milestone("registered", N_("sent to the registration system"),
                    lambda s: s.hop("court_order", step_kind="to")),
          Milestone("acknowledged", N_("acknowledged to the court"),
                    lambda s: s.hop("court_ack", step_kind="to"))),
    _kind(N_("correction resubmitted"), N_("corrected, accepted and archived"),
          RECEIVED,
          Milestone("correction", N_("correction notice sent"),
                    _notified("correction.requested")),
          Milestone("resubmitted", N_("missing material taken back into the application"),
                    _taken_back),
          FORWARDED,
          Milestone("accepted", N_("acceptance notice sent"), _notified("acceptance.notified")),
          ARCHIVED),
    _kind(N_("notice at the province"), N_("acceptance notice at the province, archived"),
          RECEIVED, FORWARDED,
          Milestone("submitter", N_("kept as the province window's case"),
                    _submitted_by("province_window")),
          Milestone("notice", N_("acceptance notice rendered and kept"),
                    lambda s: any(n["kind"] == "acceptance" for n in s.notices)),
          Milestone("province", N_("notice sent to the province window"),
                    lambda s: s.hop("decision_notices", step_kind="to", branch=True,
                                    type_="acceptance.notified")),
          ARCHIVED),
    _kind(N_("results at three levels"),
          N_("results and e-certificate receipted by county, province and nation"),
          RECEIVED, FORWARDED, ARCHIVED, E_CERTIFICATE,
          Milestone("county", N_("results at the county window"), _results_at("county")),
          Milestone("province", N_("results at the province window"), _results_at("province")),
          Milestone("national", N_("results at the national window"), _results_at("national")),
          Milestone("receipts", N_("every level's receipt recorded"),
                    _receipts_from_every_level)),
    _kind(N_("diode and ferry"), N_("materials through the gate, review back by disc, archived"),
          RECEIVED, FORWARDED,
          Milestone("gate", N_("spatial materials sent through the one-way gate"),
                    _recorded("diode_transfer", "internal_gate")),
          Milestone("ferry", N_("review result back by ferry disc"),
                    lambda s: s.hop("review_results", step_kind="publish",
                                    detail="review.result_received")),
          Milestone("legacy", N_("review result given to the registration system"),
                    lambda s: s.hop("review_to_legacy", step_kind="to")),
          Milestone("confirmed", N_("delivery confirmed by the internal network"),
                    lambda s: s.hop("spatial_materials", step_kind="publish",
                                    detail="bridge.materials_confirmed")),
          ARCHIVED),
    _kind(N_("query"), N_("answered, masked, audited"),
          Milestone("answered", N_("answered from the register"), _query_answered),
          Milestone("masked", N_("ID numbers masked in the answer"), _query_masked),
          Milestone("audited", N_("audited with who asked and why"), _query_audited)),
    _kind(N_("appointment"), N_("slot confirmed to the window, in the case's progress"),
          Milestone("booked", N_("booked at the registration system"),
                    lambda s: s.hop("appointment_booking", step_kind="to")),
          Milestone("confirmed", N_("slot confirmed to the window"),
                    lambda s: s.hop("appointment_reply", step_kind="to",
                                    type_="appointment.confirmed")),
          Milestone("progress", N_("in the case's progress"), _appointment_in_progress)),
    _kind(N_("payment"), N_("paid, then forwarded to the registration system"),
          Milestone("ordered", N_("payment order issued"), _recorded("payment_order", "payment")),
          Milestone("notice", N_("pay page and code sent to the window"), _payment_notice),
          Milestone("paid", N_("payment confirmed, receipt recorded"), _paid),
          FORWARDED),
    _kind(N_("institution credit code"), N_("checked at 机构编制, archived"),
          RECEIVED,
          Milestone("credit_code", N_("credit code checked at 机构编制"),
                    _recorded("institution_registration", "public_sector")),
          Milestone("name", N_("registered name matches"),
                    lambda s: s.result("registered_name").get("match") is True),
          FORWARDED, ARCHIVED),
    _kind(N_("agent with face comparison"), N_("agent, face and signatures checked, archived"),
          RECEIVED,
          Milestone("agent", N_("agent's identity verified"),
                    lambda s: s.result("agent_identity").get("match") is True),
          Milestone("face", N_("face comparison and liveness passed"), _face_passed),
          Milestone("signatures", N_("e-signatures valid"),
                    lambda s: s.result("signature").get("valid") is True),
          FORWARDED, ARCHIVED),
    _kind(N_("suspended channel"), N_("refused (403 channel_suspended), audited, resumed"),
          Milestone("suspended", N_("agency channel suspended"),
                    lambda s: bool(s.audited("channel.suspended", kind="channel",
                                             name="agency"))),
          Milestone("refused", N_("batch refused: 403 channel_suspended"), _refused_suspended),
          Milestone("audited", N_("refusal audited"),
                    lambda s: bool(s.audited("inbound.rejected", code="channel_suspended",
                                             client="agency_hm"))),
          Milestone("resumed", N_("agency channel resumed"),
                    lambda s: bool(s.audited("channel.resumed", kind="channel",
                                             name="agency")))),
    _kind(N_("developer batch"), N_("archived as the developer's case"),
          RECEIVED, VERIFIED,
          Milestone("channel", N_("kept as the developer's case"), _submitted_by("developer_hm")),
          FORWARDED, ARCHIVED, E_CERTIFICATE),
    _kind(N_("good-bad evaluation"), N_("evaluation requested, grade recorded"),
          ARCHIVED,
          Milestone("requested", N_("evaluation requested at the province"),
                    _recorded("evaluation_request", "evaluation")),
          Milestone("graded", N_("grade given at the window"), _graded),
          Milestone("recorded", N_("grade forwarded and recorded"),
                    _recorded("evaluation_grade", "evaluation"))),
    _kind(N_("e-certificate verify and download"), N_("verified, file checked by its hash"),
          Milestone("issued", N_("e-certificate issued"), _recorded("e_licence", "gov")),
          Milestone("verified", N_("e-certificate verified"), _e_certificate_verified),
          Milestone("downloaded", N_("file downloaded, hash checked and audited"),
                    _downloaded_as_verified)),
)}
