"""Flows a-f of config.yaml through the real engine, against the sandbox's departments.

Each test submits what a real caller would (signed HTTP to the hub's inbound
endpoints, or an order at the court) and asserts what the departments
received, plus what the hub recorded (progress, trace, verification records).
"""

from __future__ import annotations

import copy

STAGES = ["application", "acceptance", "review", "registration", "certificate", "archive"]


def _of(no: str):
    return lambda body: isinstance(body, dict) and (
        body.get("business_no") == no or body.get("YWH") == no or body.get("BusinessNo") == no)


def _notice(flows, no: str, kind: str) -> dict:
    """The first notice of ``kind`` the county window got for ``no`` (waited for)."""
    return flows.wait(lambda: flows.received(
        "window_county", path="/notices",
        where=lambda b: b.get("business_no") == no and b.get("notice_type") == kind),
        what=kind)[0]["body"]


# -- a. online application ---------------------------------------------------

def test_online_application_is_verified_recorded_and_forwarded_to_legacy(flows):
    body = copy.deepcopy(flows.samples["transfer"])
    for m in body["materials"]:
        m["tax_related"] = False  # not tax-related: straight to the registration system
    no = body["business_no"]
    husband, wife = body["applicants"]
    flows.submit("county_window", body)

    flows.wait(lambda: flows.received("legacy", operation="SubmitApplication", where=_of(no)),
               what="SubmitApplication")
    assert flows.received("gov", path="/api/identity/verify",
                          where=lambda b: b["cert_num"] == husband["id_number"])
    assert flows.received("police", path="/api/police/household/query",
                          where=lambda b: b["cert_num"] == husband["id_number"])
    marriage = flows.received("civil", path="/api/civil/marriage/query",
                              where=lambda b: b.get("cert_num_woman") == wife["id_number"])
    assert marriage and marriage[0]["body"]["cert_num_man"] == husband["id_number"]
    submitted = flows.received("legacy", operation="SubmitApplication", where=_of(no))[0]["body"]
    assert submitted["DJLX"] == "200" and submitted["BDCDYH"] == body["unit_codes"][0]
    assert not flows.received("tax", where=_of(no))

    # The checks are stored with the application and can be shown later.
    records = flows.wait(lambda: flows.hub.store.verifications_for(no), what="records")
    assert {r["kind"] for r in records} == {"identity", "household", "marriage", "address"}
    identity = next(r for r in records if r["kind"] == "identity")
    assert identity["result"]["match"] is True and identity["connector"] == "gov"

    # The registration system accepts; the acceptance notice goes back to the window.
    notice = _notice(flows, no, "acceptance.notified")
    assert notice["organisation"]["division_code"] == "320684"


def test_refused_application_sends_the_refusal_notice_to_the_window(flows):
    body = flows.samples["refusal"]
    no = body["business_no"]
    flows.submit("province_window", body)
    notice = _notice(flows, no, "refusal.notified")
    assert "查封" in notice["reason"]
    assert notice["legal_basis"].startswith("《不动产登记暂行条例》")
    flows.wait(lambda: flows.stage(no) == "refusal", what="progress refusal")
    # The registration system's callbacks are traced under the case (its YWH is the
    # business number once the profile has renamed it), not only the fan-out they cause.
    flows.wait(lambda: any(h["route"] == "legacy_stage_change" for h in flows.trace(no)),
               what="legacy_stage_change in the trace")


def test_incomplete_application_gets_a_correction_notice_and_never_reaches_legacy(flows):
    body = flows.samples["correction"]
    no = body["business_no"]
    flows.submit("county_window", body)
    notice = _notice(flows, no, "correction.requested")
    assert [i["material_name"] for i in notice["items"]] == ["申请人身份证明"]
    # The notice goes out during the route; its progress is written when the route ends.
    flows.wait(lambda: flows.stage(no) == "correction", what="progress correction")
    assert not flows.received("legacy", where=_of(no))


def test_identity_mismatch_is_refused_before_the_registration_system(flows):
    body = copy.deepcopy(flows.samples["refusal"])
    body["business_no"] = body["business_no"].replace("W00003", "W00009")
    body["unit_codes"] = [flows.sb.data["units"][15]]
    body["applicants"][0]["name"] = "冒名顶替"  # the ID number belongs to someone else
    no = body["business_no"]
    flows.submit("county_window", body)
    notice = _notice(flows, no, "refusal.notified")
    assert notice["reason"] == "申请人身份核验不一致"
    flows.wait(lambda: flows.stage(no) == "refusal", what="progress refusal")
    assert not flows.received("legacy", where=_of(no))
    assert flows.wait(lambda: flows.hub.store.verifications_for(no))[0]["result"]["match"] is False


def test_an_organisation_named_otherwise_than_on_its_licence_is_refused_and_recorded(flows):
    body = copy.deepcopy(flows.samples["first"])
    body["business_no"] = body["business_no"].replace("W00002", "W00008")
    registered = body["applicants"][0]["name"]
    body["applicants"][0]["name"] = registered + "'); DROP TABLE qlr; --"
    no = body["business_no"]
    flows.submit("national_window", body)
    notice = _notice(flows, no, "refusal.notified")
    assert notice["reason"] == "申请单位名称与营业执照登记名称不一致"
    flows.wait(lambda: flows.stage(no) == "refusal", what="progress refusal")
    assert not flows.received("legacy", where=_of(no))
    records = {r["kind"]: r["result"] for r in flows.hub.store.verifications_for(no)}
    assert records["business_licence"]["company_name"] == registered
    assert records["licence_name"] == {"match": False, "given": body["applicants"][0]["name"],
                                       "registered": registered}


def test_an_organisation_named_as_on_its_licence_goes_through(flows):
    body = copy.deepcopy(flows.samples["first"])
    # Full-width brackets and spaces are the same name written another way.
    registered = body["applicants"][0]["name"]
    body["applicants"][0]["name"] = " " + registered.replace("(", "（").replace(")", "）")
    no = body["business_no"]
    flows.submit("national_window", body)
    flows.wait(lambda: flows.received("legacy", operation="SubmitApplication", where=_of(no)),
               what="SubmitApplication")
    records = flows.wait(lambda: {r["kind"]: r["result"]
                                  for r in flows.hub.store.verifications_for(no)}, what="records")
    assert records["licence_name"]["match"] is True


# -- c. a lost callback, reconciled -------------------------------------------

def test_a_lost_callback_is_reconciled_and_the_case_moves_on(flows):
    import time

    from prometheus_client import CollectorRegistry

    from bdchub.app.reconciler import ReconcileMetrics, Reconciler

    sb = flows.sb
    sb.configure(auto_advance=None)  # the registration system moves when told to
    body = flows.samples["first"]
    no = body["business_no"]
    flows.submit("national_window", body)
    flows.wait(lambda: flows.stage(no) == "application", what="stage application")
    # The hub stops hearing: the system's callbacks are lost while the case moves on.
    sb.legacy_set_callback(None)
    legacy = sb.endpoint("legacy")
    legacy.advance({"YWH": no}, None)
    legacy.advance({"YWH": no}, None)
    assert sb.legacy_application(no)["ZT"] == "03"
    time.sleep(0.3)
    assert flows.stage(no) == "application"

    later = time.time() + flows.config["reconcile"]["stages"]["application"] + 1
    reconciler = Reconciler(flows.config["reconcile"], store=flows.hub.store,
                            connectors=flows.hub.connectors, publish=flows.hub.publish,
                            clock=lambda: later, metrics=ReconcileMetrics(CollectorRegistry()))
    assert reconciler.run_once() == []  # asked, and what was missed is on its way
    assert flows.received("legacy", operation="QueryProgress", where=_of(no))
    flows.wait(lambda: flows.stage(no) == "review", what="stage review")
    for window in ("window_county", "window_province", "window_national"):
        flows.wait(lambda w=window: [r["body"]["stage"] for r in flows.received(
            w, path="/progress", where=lambda b: b.get("business_no") == no)] == [
            "application", "acceptance", "review"], what=f"progress at {window}")
    _notice(flows, no, "acceptance.notified")
    # A second pass publishes nothing more: the case is no longer stuck.
    assert reconciler.run_once() == []
    assert reconciler.metrics.published._value.get() == 2


# -- b. tax-related application ----------------------------------------------

def test_tax_application_declares_waits_for_clearance_then_forwards(flows):
    flows.sb.configure(legacy_require_tax=True)
    body = flows.samples["transfer"]
    no = body["business_no"]
    flows.submit("county_window", body)

    tax_result = flows.wait(lambda: flows.received("legacy", operation="ReceiveTaxResult",
                                                   where=_of(no)), what="ReceiveTaxResult")
    declaration = flows.received("tax", operation="ReceiveDeclaration", where=_of(no))[0]
    filing = flows.samples["filing"]
    assert declaration["body"]["UnitCode"] == filing["unit_code"]
    assert declaration["body"]["Area"] == "98.76" and declaration["body"]["Price"] == "1280000.00"
    holders = declaration["body"]["RightsHolder"]
    assert {h["IdNumber"] for h in holders} == {a["id_number"] for a in body["applicants"]}
    # The registration system got the application only after tax cleared it.
    pushed = [p for p in flows.sb.pushes if p["source"] == "tax"
              and p["payload"]["business_no"] == no and p["delivered"]]
    assert pushed
    submit = flows.received("legacy", operation="SubmitApplication", where=_of(no))[0]
    assert submit["seq"] > declaration["seq"] or submit["time"] >= declaration["time"]
    assert submit["body"]["HTBH"] == filing["filing_no"]
    assert tax_result[0]["body"]["WSZT"] == "1"
    assert tax_result[0]["body"]["WSPZH"] == pushed[0]["payload"]["voucher_no"]
    kinds = {r["kind"] for r in flows.wait(lambda: flows.hub.store.verifications_for(no))}
    assert {"identity", "household", "marriage", "contract_filing"} <= kinds

    # e. for a tax-related transfer: the register entry goes to tax as well.
    flows.wait(lambda: len(flows.received("tax", operation="ReceiveDeclaration",
                                          where=_of(no))) == 2, what="tax result")
    after = flows.received("tax", operation="ReceiveDeclaration", where=_of(no))[1]["body"]
    assert after["RegistrationTime"] and after["UnitCode"] == filing["unit_code"]


# -- c. progress -------------------------------------------------------------

def test_every_stage_change_is_fanned_out_to_county_province_and_national(flows):
    body = flows.samples["first"]
    no = body["business_no"]
    flows.submit("national_window", body)
    flows.wait(lambda: flows.stage(no) == "archive", what="archive")
    # The recorded stage moves before the fan-out reaches the last platform.
    flows.wait(lambda: all(flows.received(w, path="/progress", where=lambda b: b.get(
        "business_no") == no and b.get("stage") == "archive")
        for w in ("window_county", "window_province", "window_national")),
        what="archive at every platform")
    for window in ("window_county", "window_province", "window_national"):
        got = flows.received(window, path="/progress", where=lambda b: b.get("business_no") == no)
        assert [r["body"]["stage"] for r in got] == STAGES, window
        assert got[-1]["body"]["status"] == "completed"
        # level by level: the county hears of each stage before the province and nation
    for stage in STAGES:
        seqs = [next(r["time"] for r in flows.received(
            w, path="/progress", where=lambda b, s=stage: b.get("business_no") == no
            and b.get("stage") == s)) for w in ("window_county", "window_province",
                                                 "window_national")]
        assert seqs == sorted(seqs)


def test_a_registration_system_that_cannot_call_back_is_polled_case_by_case(polled_flows):
    flows = polled_flows
    body = flows.samples["first"]
    no = body["business_no"]
    flows.submit("national_window", body)
    flows.wait(lambda: flows.stage(no) == "archive", timeout=30, what="archive, by polling")
    for window in ("window_county", "window_province", "window_national"):
        flows.wait(lambda w=window: [r["body"]["stage"] for r in flows.received(
            w, path="/progress", where=lambda b: b.get("business_no") == no)] == STAGES,
            what=f"every stage once at {window}")
    [poller] = [p for p in flows.service.pollers.items if p.name == "legacy_progress"]
    flows.wait(lambda: poller.schedule.states("legacy_progress").get(
        (flows.hub.tenant, no)) == "ended", what="the case ended, asked about no more")
    assert flows.received("legacy", operation="QueryProgress", where=_of(no))
    # The system's callback of a change the poll brought, coming late after all: it is
    # the message the poll published, already handled.
    event = flows.sb.legacy_application(no)["history"][2]
    answer = flows.post("legacy", "/api/v1/inbound/legacy/stage-changes", event)
    assert answer.status_code == 202, answer.text
    assert flows.hub.store.is_processed(answer.json()["id"], "legacy_stage_change")


# -- d. court judgments and seizures -----------------------------------------

def test_court_seizure_is_pulled_validated_sent_to_legacy_and_acknowledged(flows):
    sb = flows.sb
    unit = sb.data["units"][11]
    person = sb.data["people"][12]
    order = sb.court_add_seizure(unit, RespondentName=person["name"],
                                 RespondentIdNumber=person["cert_num"])
    sent = flows.wait(lambda: flows.received(
        "legacy", operation="ReceiveCourtOrder",
        where=lambda b: b.get("AH") == order["CaseNo"]), what="ReceiveCourtOrder")
    assert sent[0]["body"]["BDCDYH"] == unit and sent[0]["body"]["LX"] == "CF"
    assert sent[0]["body"]["QSRQ"] == order["PeriodFrom"]
    flows.wait(lambda: order["OrderId"] in sb.court_acked(), what="court ack")
    flows.wait(lambda: flows.stage(order["OrderId"]) == "registration", what="progress")
    # The seeded judgment went to the register as PJ as well.
    assert flows.received("legacy", operation="ReceiveCourtOrder",
                          where=lambda b: b.get("LX") == "PJ")


def test_court_order_without_respondent_id_is_dead_lettered_not_registered(flows):
    sb = flows.sb
    order = sb.court_add_seizure(sb.data["units"][11], RespondentName="无证件号",
                                 CaseNo="(2026)苏0684执9999号")
    flows.wait(lambda: [d for d in flows.hub.dlq_list() if d["business_no"] == order["OrderId"]],
               what="dead letter")
    dead = next(d for d in flows.hub.dlq_list() if d["business_no"] == order["OrderId"])
    assert dead["reason"] == "schema" and dead["route"] == "court_order"
    assert not flows.received("legacy", operation="ReceiveCourtOrder",
                              where=lambda b: b.get("AH") == "(2026)苏0684执9999号")


# -- e. after entry in the register --------------------------------------------

def test_register_entry_goes_to_trade_and_the_e_certificate_to_gov(flows):
    body = flows.samples["first"]
    no = body["business_no"]
    flows.submit("national_window", body)
    issued = flows.wait(lambda: flows.received(
        "gov", path="/api/elicense/issue", where=lambda b: b.get("business_no") == no),
        what="e-licence")
    certificate = flows.sb.legacy_application(no)["BDCQZH"]
    assert issued[0]["body"]["license_no"] == certificate
    assert issued[0]["body"]["license_type"] == "不动产权证书"
    assert issued[0]["body"]["holder_cert_num"] == body["applicants"][0]["id_number"]
    result = flows.received("trade", path="/api/registration-results", where=_of(no))
    assert result and result[0]["body"]["unit_codes"] == body["unit_codes"]
    assert not flows.received("tax", where=_of(no))  # not tax-related
    flows.wait(lambda: any(h["detail"] == "e_certificate.issued" for h in flows.trace(no)),
               what="e_certificate.issued")
    flows.wait(lambda: any(r["kind"] == "e_licence"
                           for r in flows.hub.store.verifications_for(no)), what="e_licence record")


# -- f. bank mortgage channel ------------------------------------------------

def test_bank_batch_is_split_and_tracked_per_channel(flows):
    batch = flows.samples["batch"]
    resp = flows.post("bank_jhrcb", "/api/v1/bank/batches", batch)
    assert resp.status_code == 202, resp.text
    reply = resp.json()
    numbers = [a["business_no"] for a in batch["applications"]]
    assert reply["batch_no"] == batch["business_no"] and reply["accepted"] == 2
    assert reply["business_nos"] == numbers and reply["channel"] == "bank"
    assert reply["bank"] == "bank_jhrcb"
    for no in numbers:
        flows.wait(lambda no=no: flows.received("legacy", operation="SubmitApplication",
                                                where=_of(no)), what=f"legacy {no}")
    # The batch's own trace lists each application it handed over.
    batch_trace = flows.trace(batch["business_no"])
    assert [h["route"] for h in batch_trace if h["step"].endswith(":publish")] == [
        "bank_batch_item", "bank_batch_item"]
    assert any(h["route"] == "bank_batch" and h["step"].endswith(":split") for h in batch_trace)
    # The bank follows its applications by its credit code (the mortgagee of each).
    bank_id = flows.samples["bank"]["id_number"]
    flows.wait(lambda: {p["business_no"] for p in flows.hub.progress_by_applicant(
        flows.hub.tenant, bank_id)} == set(numbers), what="progress by bank")
    for no in numbers:
        flows.wait(lambda no=no: flows.stage(no) == "archive", what=f"archive {no}")
        proof = flows.sb.legacy_application(no)["BDCQZH"]
        assert "不动产证明" in proof
        # Archiving and issuing the e-certificate are separate routes: either may end first.
        flows.wait(lambda p=proof: flows.received("gov", path="/api/elicense/issue",
                                                  where=lambda b: b.get("license_no") == p),
                   what=f"e-licence {no}")


def test_a_tax_clearance_posted_by_another_client_is_refused_at_intake(flows):
    no = flows.samples["transfer"]["business_no"]
    fake = {"business_no": no, "status": "CLEARED", "declaration_no": "SB0", "voucher_no": "WS0",
            "tax_amount": "0.00", "cleared_at": "2026-01-01T00:00:00+08:00", "source": "tax"}
    resp = flows.post("bank_jhrcb", "/api/v1/inbound/tax/clearances", fake)
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "type_forbidden"
    assert not [h for h in flows.trace(no) if h["route"] == "tax_clearance_inbound"]


def _get(flows, client: str, path: str):
    import requests

    from bdchub.web.signing import signed_headers

    c = flows.config["inbound"]["clients"][client]
    return requests.get(flows.service.url + path, timeout=30,
                        headers=signed_headers(c["app_key"], c["app_secret"], "GET", path))


def test_the_bank_reads_the_applications_of_its_batch_and_no_one_elses(flows):
    county_case = flows.samples["correction"]
    flows.submit("county_window", county_case)
    batch = flows.samples["batch"]
    assert flows.post("bank_jhrcb", "/api/v1/bank/batches", batch).status_code == 202
    mine = batch["applications"][0]["business_no"]
    flows.wait(lambda: flows.stage(county_case["business_no"]) == "correction",
               what="the county window's case recorded")
    flows.wait(lambda: _get(flows, "bank_jhrcb", f"/api/v1/progress/{mine}").status_code == 200,
               what="the bank's own application")

    other = _get(flows, "bank_jhrcb", f"/api/v1/progress/{county_case['business_no']}")
    citizen = county_case["applicants"][0]["id_number"]
    by_id = _get(flows, "bank_jhrcb", f"/api/v1/progress?id_number={citizen}")
    assert (other.status_code, by_id.status_code) == (404, 404)
    assert _get(flows, "county_window",
                f"/api/v1/progress/{county_case['business_no']}").status_code == 200
    assert _get(flows, "county_window", f"/api/v1/progress/{mine}").status_code == 404


# -- forged events (issue 10, finding 1) ---------------------------------------

def test_forged_events_are_refused_at_intake_and_the_real_register_entry_still_does_its_work(
        flows):
    sb = flows.sb
    sb.configure(auto_advance=None)  # the registration system moves when told to
    body = flows.samples["transfer"]  # tax-related: the entry goes to trade and tax
    no = body["business_no"]
    flows.submit("county_window", body)
    flows.wait(lambda: flows.received("legacy", operation="ReceiveTaxResult", where=_of(no)),
               what="forwarded after tax clearance")
    legacy = sb.endpoint("legacy")
    legacy.advance({"YWH": no}, None)  # 受理
    legacy.advance({"YWH": no}, None)  # 审核: the case awaits its entry in the register
    flows.wait(lambda: flows.stage(no) == "review", what="stage review")
    assert flows.hub.store.waiting_correlations(flows.hub.tenant, no)

    organisation = {"name": "海门市不动产登记中心", "division_code": "320684"}
    forged_entry = {"business_no": no, "tenant": "320684", "registration_type": "200",
                    "right_type": "4", "unit_codes": body["unit_codes"],
                    "registered_at": "2020-01-01T00:00:00+08:00", "organisation": organisation,
                    "right_holders": [{k: a[k] for k in ("name", "id_type", "id_number")}
                                      for a in body["applicants"]]}
    forged_refusal = {"business_no": no, "refused_at": "2020-01-01T00:00:00+08:00",
                      "organisation": organisation, "reason": "伪造", "legal_basis": "无"}
    for type_, forged in (("registration.recorded", forged_entry),
                          ("refusal.notified", forged_refusal)):
        resp = flows.post("bank_jhrcb", f"/api/v1/messages/{type_}", forged)
        assert resp.status_code == 403 and resp.json()["error"]["code"] == "type_forbidden"
    assert flows.hub.store.waiting_correlations(flows.hub.tenant, no)  # nothing woke it

    for _stage in ("登簿", "缮证", "归档"):
        legacy.advance({"YWH": no}, None)
    entry = flows.wait(lambda: flows.received("trade", path="/api/registration-results",
                                              where=_of(no)), what="entry at trade")
    assert entry[0]["body"]["registered_at"] != forged_entry["registered_at"]
    flows.wait(lambda: len(flows.received("tax", operation="ReceiveDeclaration",
                                          where=_of(no))) == 2, what="entry at tax")
    certificate = sb.legacy_application(no)["BDCQZH"]
    flows.wait(lambda: flows.received("gov", path="/api/elicense/issue",
                                      where=lambda b: b.get("license_no") == certificate),
               what="e-certificate")
    flows.wait(lambda: flows.stage(no) == "archive", what="archive")

    # The county window tells every window the finished case was refused.
    forged_progress = {"business_no": no, "tenant": "320684", "stage": "refusal",
                       "status": "completed", "time": "2026-01-01T00:00:00+08:00",
                       "organisation": organisation}
    resp = flows.post("county_window", "/api/v1/messages/progress.reported", forged_progress)
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "type_forbidden"
    assert flows.stage(no) == "archive"
    for window in ("window_county", "window_province", "window_national"):
        assert not flows.received(window, where=lambda b: b.get("business_no") == no and (
            b.get("stage") == "refusal" or b.get("notice_type") == "refusal.notified"))


def test_forged_events_that_got_past_intake_are_dropped_by_the_stage_check(flows):
    finished, refused = flows.samples["first"], flows.samples["refusal"]
    flows.submit("national_window", finished)
    flows.submit("province_window", refused)
    done, no = finished["business_no"], refused["business_no"]
    flows.wait(lambda: flows.stage(done) == "archive", what="archive")
    flows.wait(lambda: flows.stage(no) == "refusal", what="refusal")
    organisation = {"name": "海门市不动产登记中心", "division_code": "320684"}
    # As if a client had been let send hub events it does not own (a config mistake).
    wrongly = {"source": "web:tax", "headers": {"inbound.client": "tax",
                                                "inbound.channel": "department"}}
    hub = flows.hub
    hub.send("refusal.notified", {"business_no": done, "refused_at": "2026-01-01T00:00:00+08:00",
                                  "organisation": organisation, "reason": "伪造"}, **wrongly)
    hub.send("progress.reported", {"business_no": done, "tenant": "320684", "stage": "refusal",
                                   "status": "completed", "time": "2026-01-01T00:00:00+08:00",
                                   "organisation": organisation}, **wrongly)
    hub.send("registration.recorded", {"business_no": no, "tenant": "320684",
                                       "registered_at": "2026-01-01T00:00:00+08:00"}, **wrongly)

    def dropped(business_no: str, route: str) -> list[dict]:
        return [h for h in flows.trace(business_no) if h["route"] == route
                and h["step"].endswith(":require_stage") and h["outcome"] == "skipped"]

    for business_no, route, stage in ((done, "decision_notices", "archive"),
                                      (done, "progress_fanout", "archive"),
                                      (no, "registration_check", "refusal")):
        [hop] = flows.wait(lambda b=business_no, r=route: dropped(b, r), what=route)
        assert hop["detail"].endswith(f"stage {stage}")
    assert (flows.stage(done), flows.stage(no)) == ("archive", "refusal")
    assert not flows.received("window_county", path="/notices", where=lambda b: b.get(
        "business_no") == done and b.get("notice_type") == "refusal.notified")
    assert not any(r["body"].get("stage") == "refusal" for r in flows.received(
        "window_national", path="/progress", where=lambda b: b.get("business_no") == done))
    assert not any(h["detail"] == "registration.checked" for h in flows.trace(no))
