"""Reliability of the county flows of the shipped config.yaml against the sandbox.

- ``hub run`` killed with SIGKILL while applications are in flight through the
  correction loop, the notices to the originating platform, the results level by
  level, the payment wait, a developer's batch and the good-bad evaluation; a new
  ``hub run`` on the same data folder finishes every case: each reaches its end,
  each department and window took each delivery once in effect (one idempotency
  key per business number and message, which the sandbox's windows, registration
  system, payment platform and evaluation system honour), each level's
  acknowledgement is recorded once, nothing is dead-lettered or left parked;
- a department down while the flows run (a window level, the payment platform,
  the evaluation system, the registration system during the correction loop):
  what goes to it parks, what goes elsewhere is not held, and the parked messages
  complete once it is back, once.

The departments resend a callback the hub could not take while it restarted (the
sandbox's pusher is given the retries for it); a callback no department resends
is the reconciler's (tests/app/test_reconciler.py). The registration system pauses
while the hub is down, once the hub has taken every stage change it was told of
(a 登簿 the killed hub had taken that comes back after its lease, behind the 缮证 and
归档 resent meanwhile, still sends its results: the last test). The internal
network reviews a case only once the hub has its first stage, as in life, where a
review takes days (one back before that waits in review_results). Parked messages come due
after the shipped ``park_for``; the outage tests move the hub's clock an hour on
instead of waiting for it (as tests/demo/test_loops.py does).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bdchub.demo.environment import free_port, sandbox_environ
from bdchub.demo.samples import now_iso
from bdchub.sandbox.internal import InternalNetwork
from bdchub.sandbox.sandbox import Sandbox
from tests.app.test_run import own_secrets
from tests.integration.county_hub import (
    RESULT_TYPES,
    SURVEY_FORM,
    WINDOWS,
    Cases,
    HubProcess,
    Platform,
    fresh_unit,
    keys,
    one_key_each,
    received,
    wait,
)
from tests.integration.test_reliability import _pg_database

ORIGIN = {"county_window": "window_county", "province_window": "window_province",
          "national_window": "window_national", "developer": "window_county"}
END = {"archive", "refusal"}
LEVELS = ("county_window", "province_window", "national_window")
ADVANCE = 0.3  # seconds between the registration system's stages


@pytest.fixture
def departments() -> Iterator[Sandbox]:
    """A sandbox of this test's own: its registration system advances by itself, the
    payment platform has each order paid half a second after it is made, and the
    departments resend a callback for longer than a restart of the hub takes."""
    with Sandbox(seed=42, auto_advance=ADVANCE, tax_clearance_delay=0.3) as sb:
        sb.pusher.attempts, sb.pusher.backoff = 9, 0.1  # resent for 25 s and more
        sb.endpoint("payment").auto_pay = 0.5
        yield sb


@pytest.fixture
def internal(tmp_path: Path) -> Iterator[InternalNetwork]:
    """The internal network on loopback: the gate's receiver, the review desk and the
    disc burner handing discs into the hub's ferry arrivals (flow g)."""
    net = InternalNetwork(tmp_path / "internal").start()
    try:
        yield net
    finally:
        net.stop()


@pytest.fixture(params=["embedded", pytest.param("rabbitmq", marks=pytest.mark.integration)])
def backend(request) -> dict[str, str]:
    """HUB_BROKER_URL / HUB_STORE_URL of the backend: the embedded default (SQLite in
    the data folder) or a RabbitMQ node of the test's own with a new PostgreSQL
    database (the shipped config names no queue prefix, so the node is private)."""
    if request.param == "embedded":
        return {}
    node = request.getfixturevalue("rabbit_node")
    return {"HUB_BROKER_URL": node.url,
            "HUB_STORE_URL": _pg_database(request.getfixturevalue("postgres_url"))}


class Run:
    """The cases of one test against one hub, by kind, and their ends."""

    def __init__(self, sb: Sandbox, hub: HubProcess, clients: dict[str, Any]):
        self.sb = sb
        self.hub = hub
        self.clients = clients
        self.cases = Cases(sb.data)
        self.kinds: dict[str, str] = {}       # business number -> kind
        self.origin: dict[str, str] = {}      # business number -> the submitting client
        self.corrected: set[str] = set()
        self.spatial: set[str] = set()        # reviewed on the internal network (flow g)
        self._reader: Any = None

    @property
    def reader(self) -> Any:
        if self._reader is None:
            self._reader = self.hub.reader()
        return self._reader

    def platform(self, client: str) -> Platform:
        return Platform(self.hub.url, self.clients, client)

    def submit(self, client: str, body: dict[str, Any], kind: str) -> str:
        answer = self.platform(client).post("/api/v1/applications", body)
        assert answer.status_code == 202, answer.text
        self.note(body, kind, client)
        return body["business_no"]

    def note(self, body: dict[str, Any], kind: str, client: str) -> None:
        no = body["business_no"]
        self.kinds[no], self.origin[no] = kind, client
        if any(m["type"] == "survey_report" for m in body["materials"]):
            self.spatial.add(no)

    def submit_every_kind(self, internal: InternalNetwork, *, plain: tuple[str, ...],
                          corrected: tuple[str, ...]) -> None:
        """Plain first registrations from the windows of ``plain``, decided back to each;
        from those of ``corrected``, ones the registration system sends back for
        correction, then examines again; a refusal from the province's window, a change
        registration (300: paid before forwarding) and a developer's batch of two."""
        cases, legacy = self.cases, self.sb.endpoint("legacy")
        for client in plain:
            self.submit(client, cases.first(client, deposit=internal.deposit), "plain")
        for client in corrected:
            unit = fresh_unit()
            with legacy.lock:
                legacy.correction_units.add(unit)
            self.submit(client, cases.first(client, unit, deposit=internal.deposit), "correction")
        self.submit("province_window", cases.refusal("province_window"), "refusal")
        self.submit("county_window", cases.change(), "payment")
        batch = cases.batch(*(cases.first("developer", deposit=internal.deposit) for _ in "12"))
        answer = self.platform("developer_hm").post("/api/v1/developer/batches", batch)
        assert answer.status_code == 202, answer.text
        for item in batch["applications"]:
            self.note(item, "batch", "developer_hm")

    def closed(self, internal: InternalNetwork) -> int:
        """How many single cases the registration system has closed (归档), corrections
        supplied and reviews let through on the way."""
        self.supply_corrections()
        self.review_when_known(internal)
        return len([n for n in self.kinds if self.kinds[n] not in ("batch", "refusal")
                    and (self.sb.legacy_application(n) or {}).get("ZT") == "06"])

    def stage(self, no: str) -> str:
        progress = self.reader.store.progress(self.reader.tenant, no) or {}
        return str(progress.get("stage") or "")

    def supply_corrections(self) -> None:
        """The applicant's platform answers each correction notice with the cadastral
        survey form (filed as ``other``: the case's spatial materials went through the
        gate with the application). A 409 is sent again later: the progress fan-out,
        which records each stage it reports, may still be reporting the stage before."""
        form = {**SURVEY_FORM, "materials": [{**SURVEY_FORM["materials"][0], "type": "other"}]}
        for no, kind in self.kinds.items():
            if kind == "correction" and no not in self.corrected and self.stage(no) == "correction":
                answer = self.platform(self.origin[no]).post(
                    f"/api/v1/applications/{no}/materials", form)
                assert answer.status_code in (202, 409), answer.text
                if answer.status_code == 202:
                    self.corrected.add(no)

    def review_when_known(self, internal: InternalNetwork) -> None:
        """The internal network reviews once the registration system has reported every
        spatial case's first stage. A review takes days; here it could come back before
        that, and review_results dead-letters a review of a case at stage ``new``."""
        if internal.knobs["hold"] and all(self.stage(no) not in ("", "new")
                                          for no in self.spatial):
            internal.set(hold=False)

    def caught_up(self) -> bool:
        """Every stage change of the registration system so far went through
        legacy_stage_change."""
        changes = Counter(e["YWH"] for e in self.sb.legacy_events())
        return all(len([h for h in self.reader.trace(no, self.reader.tenant)
                        if h["route"] == "legacy_stage_change" and h["step"] == "0:filter"])
                   >= changes[no] for no in self.kinds)

    def ended(self) -> list[str]:
        return [no for no in self.kinds if self.stage(no) in END]

    def finish(self, timeout: float, internal: InternalNetwork) -> None:
        def all_ended() -> bool:
            self.supply_corrections()
            self.review_when_known(internal)
            return len(self.ended()) == len(self.kinds)

        wait(all_ended, timeout, "every case to reach its end")


def _expected_ends(run: Run) -> None:
    for no, kind in run.kinds.items():
        assert run.stage(no) == ("refusal" if kind == "refusal" else "archive"), (no, kind)


def _records(store: Any, no: str, kind: str) -> list[dict[str, Any]]:
    return [r for r in store.verifications_for(no) if r["kind"] == kind]


def _delivered(run: Run, no: str) -> bool:
    """Everything the case's end sets off has arrived: each stage change at every
    level, the evaluation request at the province; results at every level, each
    level's receipts recorded."""
    sb = run.sb
    changes = len([e for e in sb.legacy_events() if e["YWH"] == no])
    if not all(len(keys(sb, w, "/progress", no, where=lambda b: not _reviewed(b))) >= changes
               for w in WINDOWS):
        return False
    if not received(sb, "evaluation", "/api/evaluation/requests", no):
        return False
    if run.kinds[no] == "refusal":
        return True
    return all(received(sb, w, "/results", no, result_type=t) for w in WINDOWS
               for t in RESULT_TYPES) and len(_records(run.reader.store, no, "result_receipt")) >= 6


def _reviewed(progress: dict[str, Any]) -> bool:
    """The progress report of the internal network's review (review_results)."""
    return progress.get("stage") == "review" and str(progress.get("note")).startswith("内网审核")


def _assert_once_in_effect(run: Run) -> None:
    sb, store = run.sb, run.reader.store
    for no, kind in run.kinds.items():
        events = [e for e in sb.legacy_events() if e["YWH"] == no]
        notices = {"refusal": {"refusal.notified"},
                   "correction": {"correction.requested", "acceptance.notified"},
                   "payment": {"payment.ordered", "acceptance.notified"}}.get(
                       kind, {"acceptance.notified"})
        origin = ORIGIN[run.origin[no] if kind != "batch" else "developer"]
        for window in WINDOWS:
            # Each stage change of the registration system reached every level once,
            progress = keys(sb, window, "/progress", no, where=lambda b: not _reviewed(b))
            assert len(progress) == len(events), (no, window, progress, events)
            # and the internal review once (the hub reports it; not to a case in
            # correction when the review comes back, which the correction cases may be).
            reviews = keys(sb, window, "/progress", no, where=_reviewed)
            assert len(reviews) == (no in run.spatial) or (
                kind == "correction" and not reviews), (no, window, reviews)
            sent = {k[0] for k in one_key_each(sb, window, "/notices", no, "notice_type")}
            expected = notices if window in ("window_county", origin) else set()
            if kind == "payment" and window != "window_county":
                expected = expected - {"payment.ordered"}
            assert sent == expected, (no, kind, window, sent)
            results = one_key_each(sb, window, "/results", no, "result_type")
            assert set(k[0] for k in results) == (set() if kind == "refusal" else set(RESULT_TYPES))
        # The registration system: the application once, the correction once, nothing
        # registered twice.
        ledger = [e for e in sb.legacy_ledger(no) if e["outcome"] == "applied"]
        applied = [e["operation"] for e in ledger]
        assert applied.count("SubmitApplication") == 1, (no, ledger)
        assert applied.count("SupplementMaterials") == (kind == "correction"), (no, ledger)
        # The province's evaluation system: one request per closed case.
        assert len(keys(sb, "evaluation", "/api/evaluation/requests", no)) == 1, no
        records = store.verifications_for(no)
        kinds = [r["kind"] for r in records]
        assert kinds.count("evaluation_request") == 1, (no, kinds)
        if kind != "refusal":
            # Each level's acknowledgement of each of the two results, recorded once. A
            # result sent again after the kill got the level's first receipt back
            # (``duplicate: true``): the same receipt, not a second one.
            receipts = [r for r in records if r["kind"] == "result_receipt"]
            assert sorted(r["connector"] for r in receipts) == sorted(WINDOWS * 2), (no, receipts)
            for window in WINDOWS:
                ids = {r["result"]["receipt_id"] for r in receipts if r["connector"] == window}
                assert len(ids) == 2, (no, window, ids)
        if no in run.spatial:
            # Through the gate once; its review back by disc, registered once.
            assert kinds.count("diode_transfer") == 1, (no, kinds)
            assert applied.count("ReceiveReviewResult") == 1, (no, ledger)
        if kind == "payment":
            assert len(keys(sb, "payment", "/api/payment/orders", no)) == 1
            assert kinds.count("payment_order") == 1 and kinds.count("payment") == 1, kinds
    assert sb.legacy_doubles() == []
    assert run.reader.dlq_list() == []
    assert store.count("parked") == 0


def test_hub_run_killed_mid_flow_finishes_every_county_case_once_after_a_restart(
        departments, internal, backend, tmp_path):
    sb = departments
    # Cases with a survey report wait at 审核 for the internal network's review (flow g).
    sb.configure(legacy_require_review=True)
    internal.set(hold=True)  # see Run.review_when_known
    env = sandbox_environ(sb, inbound_port=free_port(), data_dir=tmp_path / "data",
                          internal=internal, HUB_PAYMENT_REQUIRED_TYPES="300",
                          BDCHUB_BROKER_LEASE="3", HUB_COURT_POLL_SECONDS="3600", **backend)
    env = own_secrets(env)  # hub run refuses the published demo secrets
    hub = HubProcess(tmp_path, env).start()
    from bdchub.core.config import load

    clients = load(tmp_path / "config.yaml", environ=env)["inbound"]["clients"]
    run = Run(sb, hub, clients)
    sb.legacy_set_callback(hub.url + "/api/v1/inbound/legacy/stage-changes")
    sb.tax_set_callback(hub.url + "/api/v1/inbound/tax/clearances")
    try:
        run.submit_every_kind(internal, plain=LEVELS * 2, corrected=LEVELS)

        # Kill while some cases have ended and others are on their way: the registration
        # system pauses once a few cases are closed there, and the hub has taken every
        # stage change it was told of (a stage change taken again after a later one of
        # its case is the last test's).
        wait(lambda: run.closed(internal) >= 3, 60, "the first cases to close")
        sb.legacy_auto_advance(None)
        time.sleep(2 * ADVANCE)  # a step already timed still comes
        wait(run.caught_up, 30, "the hub to take every stage change so far")
        # The applicants of two closed cases grade them at their window.
        graded = wait(lambda: [n for n in run.ended() if run.kinds[n] not in ("batch", "refusal")
                               and _records(run.reader.store, n, "evaluation_request")][:2], 30,
                      "two cases with their evaluation request")
        for no in graded:
            grade = {"business_no": no, "grade": "satisfied", "graded_at": now_iso(),
                     "evaluation_channel": "app"}
            answer = run.platform(run.origin[no]).post("/api/v1/evaluations", grade)
            assert answer.status_code == 202, answer.text
        hub.kill9()
        unfinished = [no for no in run.kinds if not _delivered(run, no)]
        assert unfinished, "killed too late to prove anything"

        hub.start()
        sb.legacy_auto_advance(ADVANCE)
        run.finish(90, internal)
        wait(lambda: all(_delivered(run, no) for no in run.kinds), 60,
             "results and evaluation requests of every case")
        for no in graded:
            wait(lambda n=no: [r for r in run.reader.store.verifications_for(n)
                               if r["kind"] == "evaluation_grade"], 30, f"{no}'s grade")
            assert len(keys(sb, "evaluation", "/api/evaluation/grades", no)) == 1
        _expected_ends(run)
        _assert_once_in_effect(run)
    finally:
        sb.legacy_set_callback(None)
        sb.tax_set_callback(None)
        hub.stop()


# -- a department down ------------------------------------------------------------------

@pytest.fixture
def county(departments: Sandbox, tmp_path: Path) -> Iterator[Any]:
    """config.yaml in-process (tests/demo/conftest.py's ``flows``) on the embedded
    default against ``departments``; change registrations (300) are paid first."""
    from tests.demo.conftest import _flows

    yield from _flows(departments, tmp_path, env={"HUB_PAYMENT_REQUIRED_TYPES": "300"})


def _submitted(flows: Any, client: str, body: dict[str, Any]) -> str:
    flows.submit(client, body)
    return body["business_no"]


def _parked(flows: Any, route: str) -> int:
    return flows.hub.store.count("parked", route=route)


def _back(flows: Any, *connectors: str) -> None:
    """``connectors``' department is back: their breakers (opened while it was down)
    and the hub's parked rows are an hour on from now, so what parked goes out now,
    not after the shipped ``reset_after`` and ``park_for``."""
    for name in connectors:
        flows.hub.connectors[name].breaker._clock = lambda: time.monotonic() + 3600


def _an_hour_on(flows: Any, predicate: Any) -> Any:
    """``predicate`` polled with the parked rows due at every look (a message still in
    its retries when the department came back may park just after)."""
    def check() -> Any:
        flows.hub.engine.tick(now=time.time() + 3600)
        return predicate()
    return check


def _nothing_left(flows: Any) -> None:
    wait(lambda: flows.hub.store.count("parked") == 0, 30, "the parked rows to go")
    assert flows.hub.dlq_list() == []


def test_a_window_level_down_parks_its_results_while_the_other_levels_get_theirs(county):
    flows, sb = county, county.sb
    cases = Cases(sb.data)
    sb.down("window_province")
    numbers = [_submitted(flows, client, cases.first(client))
               for client in ("county_window", "national_window", "county_window")]
    # The county and the nation get every result and e-certificate meanwhile.
    for no in numbers:
        for window in ("window_county", "window_national"):
            wait(lambda n=no, w=window: all(received(sb, w, "/results", n, result_type=t)
                                            for t in RESULT_TYPES), 40, f"{no}'s results at {window}")
    wait(lambda: _parked(flows, "results_province") > 0, 40, "the province's results to park")
    assert _parked(flows, "results_county") == _parked(flows, "results_national") == 0
    assert not [r for r in sb.received("window_province")]
    assert flows.hub.dlq_list() == []

    sb.up("window_province")
    _back(flows, "window_province")

    def province_has_all() -> bool:
        return all(received(sb, "window_province", "/results", no, result_type=t)
                   for no in numbers for t in RESULT_TYPES)
    wait(_an_hour_on(flows, province_has_all), 40, "every result at the province")
    for no in numbers:
        wait(lambda n=no: len(_records(flows.hub.store, n, "result_receipt")) == 6, 30, "the receipts")
        for window in WINDOWS:
            assert {k[0] for k in one_key_each(sb, window, "/results", no, "result_type")} == set(
                RESULT_TYPES)
            receipts = [r for r in _records(flows.hub.store, no, "result_receipt")
                        if r["connector"] == window]
            assert len({r["result"]["receipt_id"] for r in receipts}) == 2, (no, window)
        # The progress the province missed came too: each stage change once.
        changes = len([e for e in sb.legacy_events() if e["YWH"] == no])
        wait(_an_hour_on(flows, lambda n=no, c=changes: len(
            keys(sb, "window_province", "/progress", n)) == c), 30,
            f"{no}'s progress at the province")
    _nothing_left(flows)


def test_the_payment_platform_down_parks_the_order_and_the_paid_case_goes_on_once_back(county):
    flows, sb = county, county.sb
    cases = Cases(sb.data)
    sb.down("payment")
    paid = _submitted(flows, "county_window", cases.change())
    free = _submitted(flows, "national_window", cases.first("national_window"))
    # A case with nothing to pay is not held by the platform's outage.
    wait(lambda: flows.stage(free) == "archive", 40, "the case with nothing to pay to end")
    wait(lambda: _parked(flows, "payment_order") == 1, 30, "the payment order to park")
    assert not received(sb, "legacy", "/ws", paid)  # not forwarded before it is paid
    assert flows.hub.dlq_list() == []

    sb.up("payment")
    _back(flows, "payment")

    wait(_an_hour_on(flows, lambda: flows.stage(paid) == "archive"), 40, "the paid case to end")
    assert len(keys(sb, "payment", "/api/payment/orders", paid)) == 1
    assert len(_records(flows.hub.store, paid, "payment_order")) == 1
    assert len(_records(flows.hub.store, paid, "payment")) == 1
    # The acceptance notice (a PDF rendered on its own route) may still be on its way
    # when the registration system has archived the case: on a busy machine it was.
    wait(lambda: len(one_key_each(sb, "window_county", "/notices", paid, "notice_type")) >= 2,
         30, "both notices of the paid case")
    notices = one_key_each(sb, "window_county", "/notices", paid, "notice_type")
    assert sorted(k[0] for k in notices) == ["acceptance.notified", "payment.ordered"]
    applied = [e["operation"] for e in sb.legacy_ledger(paid) if e["outcome"] == "applied"]
    assert applied.count("SubmitApplication") == 1
    _nothing_left(flows)


def test_the_evaluation_system_down_parks_the_requests_and_they_arrive_once_back(county):
    flows, sb = county, county.sb
    cases = Cases(sb.data)
    sb.down("evaluation")
    archived = _submitted(flows, "county_window", cases.first("county_window"))
    refused = _submitted(flows, "province_window", cases.refusal("province_window"))
    wait(lambda: flows.stage(archived) == "archive" and flows.stage(refused) == "refusal", 40,
         "both cases to end")
    # The results and the refusal notice do not wait for the evaluation system.
    wait(lambda: all(received(sb, w, "/results", archived, result_type=t)
                     for w in WINDOWS for t in RESULT_TYPES), 30, "the results")
    wait(lambda: received(sb, "window_province", "/notices", refused), 30, "the refusal notice")
    wait(lambda: _parked(flows, "evaluation_request") > 0, 30, "the requests to park")
    assert flows.hub.dlq_list() == []

    sb.up("evaluation")
    _back(flows, "evaluation")

    for no in (archived, refused):
        wait(_an_hour_on(flows, lambda n=no: _records(flows.hub.store, n, "evaluation_request")), 30,
             f"{no}'s evaluation request")
        assert len(keys(sb, "evaluation", "/api/evaluation/requests", no)) == 1
        assert len(_records(flows.hub.store, no, "evaluation_request")) == 1
    _nothing_left(flows)


def test_the_registration_system_down_parks_the_corrected_materials_until_it_is_back(county):
    flows, sb = county, county.sb
    cases = Cases(sb.data)
    legacy = sb.endpoint("legacy")
    unit = fresh_unit()
    with legacy.lock:
        legacy.correction_units.add(unit)
    no = _submitted(flows, "province_window", cases.first("province_window", unit))
    # Every level has heard of the correction: the progress fan-out, which records
    # each stage it reports as the case's, has nothing older of this case left to do.
    wait(lambda: all(received(sb, w, "/progress", no, stage="correction") for w in WINDOWS),
         30, "the correction at every level")
    assert flows.stage(no) == "correction"
    sb.down("legacy")
    answer = flows.post("province_window", f"/api/v1/applications/{no}/materials", SURVEY_FORM)
    assert answer.status_code == 202, answer.text
    wait(lambda: _parked(flows, "material_corrections") == 1, 30, "the materials to park")
    assert flows.stage(no) == "correction" and flows.hub.dlq_list() == []

    sb.up("legacy")
    _back(flows, "legacy")

    wait(_an_hour_on(flows, lambda: flows.stage(no) == "archive"), 40, "the corrected case to end")
    applied = [e["operation"] for e in sb.legacy_ledger(no) if e["outcome"] == "applied"]
    assert applied.count("SupplementMaterials") == 1 and applied.count("SubmitApplication") == 1
    for window in ("window_county", "window_province"):
        wait(lambda w=window: len(keys(sb, w, "/notices", no)) == 2, 30, f"notices at {window}")
        sent = [k[0] for k in one_key_each(sb, window, "/notices", no, "notice_type")]
        assert sorted(sent) == ["acceptance.notified", "correction.requested"], (window, sent)
    _nothing_left(flows)


def test_a_registration_taken_after_the_archive_of_its_case_still_sends_its_results(county):
    flows, sb = county, county.sb
    sb.legacy_set_callback(None)  # the test hands the hub the stage changes, in its order
    body = Cases(sb.data).first("county_window")
    no = _submitted(flows, "county_window", body)
    wait(lambda: (sb.legacy_application(no) or {}).get("ZT") == "06", 30, "the case to close")
    changes = {e["ZT"]: e for e in sb.legacy_events() if e["YWH"] == no}
    legacy = sb.credentials["legacy"]
    url = flows.service.url + "/api/v1/inbound/legacy/stage-changes"

    def tell(zt: str) -> None:
        sent = sb.pusher.push(url, changes[zt], source="legacy", wait=True,
                              signer=(legacy["callback_app_key"], legacy["callback_app_secret"]))
        assert sent and sent["delivered"], sent

    for zt in ("01", "02", "03", "05", "06"):
        tell(zt)
    wait(lambda: flows.stage(no) == "archive", 30, "the archive")
    tell("04")  # the 登簿 the killed hub had taken, back after its lease

    wait(lambda: all(received(sb, w, "/results", no, result_type="registration.result")
                     for w in WINDOWS), 10, "the results at every level")
