"""Each step kind's semantics, on the in-memory broker with fake connectors."""

from __future__ import annotations

import threading

from bdchub.core.errors import PermanentError
from tests.routes.helpers import (
    TENANT,
    Sleeps,
    application,
    capture,
    echo,
    fake,
    make_hub,
    outcomes,
)


def test_map_builds_legacy_fields_from_canonical_body():
    legacy = fake("legacy", echo)
    hub = make_hub({"r": {"from": "application.submitted", "steps": [
        {"map": {"YWH": "business_no", "QLR.qlrmc": "applicants[0].name",
                 "QLR.zjh": "applicants[0].id_number", "QXDM": "_tenant", "NONE": "missing"}},
        {"to": {"connector": "legacy", "operation": "submit"}}]}}, {"legacy": legacy})
    hub.send("application.submitted", application("B-1"))
    hub.run_until_idle()
    op, payload, _ctx = legacy.calls[0]
    assert payload == {"YWH": "B-1", "QLR": {"qlrmc": "张三", "zjh": "110105199001011234"},
                       "QXDM": TENANT}


def test_map_with_merge_keeps_the_other_fields():
    legacy = fake("legacy", echo)
    hub = make_hub({"r": {"from": "application.submitted", "steps": [
        {"map": {"fields": {"ywh": "business_no"}, "merge": True}},
        {"to": {"connector": "legacy", "operation": "submit"}}]}}, {"legacy": legacy})
    hub.send("application.submitted", application("B-2"))
    hub.run_until_idle()
    payload = legacy.calls[0][1]
    assert payload["ywh"] == "B-2" and payload["business_no"] == "B-2"
    assert payload["applicants"][0]["name"] == "张三"


def test_filter_ends_route_quietly_when_condition_is_false():
    legacy = fake("legacy", echo)
    hub = make_hub({"r": {"from": "application.submitted", "steps": [
        {"filter": "registration_type == '200'"},
        {"to": {"connector": "legacy", "operation": "submit"}}]}}, {"legacy": legacy})
    hub.send("application.submitted", application("B-3", registration_type="100"))
    hub.send("application.submitted", application("B-4"))
    hub.run_until_idle()
    assert [c[1]["business_no"] for c in legacy.calls] == ["B-4"]
    assert outcomes(hub, "B-3") == [("r", "0:filter", "skipped")]
    assert hub.dlq_list() == []


def test_choice_runs_first_matching_branch_then_the_steps_after_it():
    legacy = fake("legacy", echo)
    hub = make_hub({"r": {"from": "application.submitted", "steps": [
        {"choice": {"when": [
            {"condition": "registration_type == '100'",
             "steps": [{"to": {"connector": "legacy", "operation": "first"}}]},
            {"condition": "registration_type == '200'",
             "steps": [{"to": {"connector": "legacy", "operation": "transfer"}}]}],
            "otherwise": [{"to": {"connector": "legacy", "operation": "other"}}]}},
        {"to": {"connector": "legacy", "operation": "after"}}]}}, {"legacy": legacy})
    hub.send("application.submitted", application("B-5"))
    hub.send("application.submitted", application("B-6", registration_type="900"))
    hub.run_until_idle()
    ops = [(c[1]["business_no"], c[0]) for c in legacy.calls]
    assert ops == [("B-5", "transfer"), ("B-5", "after"), ("B-6", "other"), ("B-6", "after")]
    assert outcomes(hub, "B-5") == [("r", "0:choice", "ok"), ("r", "0.when.1.0:to", "ok"),
                                    ("r", "1:to", "ok")]


def test_enrich_merges_reply_at_into_and_records_verification():
    gov = fake("gov", lambda op, p, c: {"match": True, "score": 0.98})
    legacy = fake("legacy", echo)
    hub = make_hub({"r": {"from": "application.submitted", "steps": [
        {"enrich": {"connector": "gov", "operation": "verify_identity",
                    "payload": {"name": "applicants[0].name", "id": "applicants[0].id_number"},
                    "into": "checks.identity", "record": "identity"}},
        {"enrich": {"connector": "gov", "operation": "flat"}},
        {"to": {"connector": "legacy", "operation": "submit"}}]}},
        {"gov": gov, "legacy": legacy})
    hub.send("application.submitted", application("B-7"))
    hub.run_until_idle()
    assert gov.calls[0][1] == {"name": "张三", "id": "110105199001011234"}
    sent = legacy.calls[0][1]
    assert sent["checks"]["identity"] == {"match": True, "score": 0.98}
    assert sent["match"] is True  # a reply without `into` merges at the top
    records = hub.store.verifications_for("B-7")
    assert [(r["kind"], r["operation"], r["result"]["match"]) for r in records] == [
        ("identity", "verify_identity", True)]


def test_to_carries_idempotency_key_of_message_route_and_step():
    legacy = fake("legacy", echo)
    hub = make_hub({"r": {"from": "application.submitted", "steps": [
        {"to": {"connector": "legacy", "operation": "submit", "into": "reply"}},
        {"to": {"connector": "legacy", "operation": "again"}}]}}, {"legacy": legacy})
    env = hub.send("application.submitted", application("B-8"))
    hub.run_until_idle()
    keys = [c[2].idempotency_key for c in legacy.calls]
    assert keys == [f"{env.id}:r:0", f"{env.id}:r:1"]
    assert legacy.calls[1][1]["reply"] == {"ok": True, "op": "submit"}
    assert legacy.calls[0][2].business_no == "B-8" and legacy.calls[0][2].tenant == TENANT


def test_recipient_list_calls_every_recipient_sequentially_or_in_parallel():
    seen = []
    lock = threading.Lock()

    def record(op, payload, ctx):
        with lock:
            seen.append((op, ctx.idempotency_key.rsplit(":", 1)[1]))
        return {}

    tax, trade = fake("tax", record), fake("trade", record)
    hub = make_hub({
        "seq": {"from": "a.seq", "steps": [{"to": {"recipients": [
            {"connector": "tax", "operation": "t"}, {"connector": "trade", "operation": "u"}]}}]},
        "par": {"from": "a.par", "steps": [{"to": {"parallel": True, "recipients": [
            {"connector": "tax", "operation": "p1"}, {"connector": "trade", "operation": "p2"},
            {"connector": "tax", "operation": "p3"}]}}]},
    }, {"tax": tax, "trade": trade})
    hub.send("a.seq", {"x": 1}, business_no="B-9")
    hub.run_until_idle()
    assert seen == [("t", "0#0"), ("u", "0#1")]
    seen.clear()
    hub.send("a.par", {"x": 1}, business_no="B-10")
    hub.run_until_idle()
    assert sorted(seen) == [("p1", "0#0"), ("p2", "0#1"), ("p3", "0#2")]


def test_parallel_recipient_failure_fails_the_step():
    def boom(op, payload, ctx):
        if op == "bad":
            raise PermanentError("rejected", connector="trade", operation=op)
        return {}

    hub = make_hub({"par": {"from": "a.par", "steps": [{"to": {"parallel": True, "recipients": [
        {"connector": "tax", "operation": "ok"}, {"connector": "trade", "operation": "bad"}]}}]}},
        {"tax": fake("tax", boom), "trade": fake("trade", boom)})
    hub.send("a.par", {}, business_no="B-11")
    hub.run_until_idle()
    [dead] = hub.dlq_list()
    assert dead["reason"] == "permanent" and "rejected" in dead["last_error"]


def test_split_publishes_one_message_per_item_with_deterministic_ids():
    hub = make_hub({"r": {"from": "court.judgment", "steps": [
        {"split": {"items": "units", "publish": "unit.seized"}}]}})
    read = capture(hub, "unit.seized")
    env = hub.send("court.judgment", {"units": [{"code": "U1"}, "U2", {"code": "U3"}]},
                   business_no="B-12")
    hub.run_until_idle()
    children = read()
    assert [c.body for c in children] == [{"code": "U1"}, {"value": "U2"}, {"code": "U3"}]
    assert [c.headers["x-split-index"] for c in children] == ["0", "1", "2"]
    assert all(c.business_no == "B-12" and c.headers["x-hub-parent"] == env.id for c in children)
    assert len({c.id for c in children}) == 3
    # The same parent handled again (a redelivery after a crash) yields the same ids.
    hub2 = make_hub({"r": {"from": "court.judgment", "steps": [
        {"split": {"items": "units", "publish": "unit.seized"}}]}})
    read2 = capture(hub2, "unit.seized")
    hub2.publish(env)
    hub2.run_until_idle()
    assert [c.id for c in read2()] == [c.id for c in children]


def test_publish_emits_new_type_with_same_tenant_and_business_no():
    hub = make_hub({"r": {"from": "application.submitted", "steps": [
        {"set": {"headers": {"channel": "'window'"}}},
        {"publish": {"type": "progress.updated",
                     "body": {"business_no": "business_no", "stage": "'acceptance'"}}},
        {"publish": "application.copied"}]}})
    progress = capture(hub, "progress.#", "cap.progress")
    copied = capture(hub, "application.copied", "cap.copied")
    hub.send("application.submitted", application("B-13"))
    hub.run_until_idle()
    [p] = progress()
    assert p.body == {"business_no": "B-13", "stage": "acceptance"}
    assert (p.tenant, p.business_no, p.headers["channel"]) == (TENANT, "B-13", "window")
    assert [h.step for h in p.trace] == ["0:set"]  # the journey so far travels along
    [c] = copied()
    assert c.body["applicants"][0]["name"] == "张三"


def test_wire_tap_failure_does_not_fail_the_route():
    def down(op, payload, ctx):
        raise PermanentError("audit down")

    legacy = fake("legacy", echo)
    hub = make_hub({"r": {"from": "application.submitted", "steps": [
        {"wire_tap": {"connector": "audit", "operation": "log"}},
        {"wire_tap": {"publish": "audit.copy"}},
        {"to": {"connector": "legacy", "operation": "submit"}}]}},
        {"audit": fake("audit", down), "legacy": legacy})
    read = capture(hub, "audit.copy")
    hub.send("application.submitted", application("B-14"))
    hub.run_until_idle()
    assert len(legacy.calls) == 1 and len(read()) == 1
    assert hub.dlq_list() == []


def test_throttle_holds_messages_to_the_rate():
    sleeps = Sleeps()
    legacy = fake("legacy", echo)
    hub = make_hub({"r": {"from": "a.b", "steps": [
        {"throttle": {"rate": 1, "burst": 1}},
        {"to": {"connector": "legacy", "operation": "x"}}]}}, {"legacy": legacy}, sleep=sleeps)
    for i in range(3):
        hub.send("a.b", {"i": i}, business_no=f"T-{i}")
    hub.run_until_idle()
    assert len(legacy.calls) == 3
    # The first goes through on the burst; the next two wait about 1 s and 2 s.
    assert len(sleeps) == 2 and 0.9 < sleeps[0] <= 1.0 and 1.9 < sleeps[1] <= 2.0


def test_set_changes_headers_tenant_and_business_no():
    legacy = fake("legacy", echo)
    hub = make_hub({"r": {"from": "relay.result", "steps": [
        {"set": {"tenant": "county", "business_no": "ywh", "headers": {"x-level": "'province'"}}},
        {"to": {"connector": "legacy", "operation": "push"}}]}}, {"legacy": legacy})
    hub.send("relay.result", {"county": "320612", "ywh": "Y-77"}, business_no="")
    hub.run_until_idle()
    ctx = legacy.calls[0][2]
    assert (ctx.tenant, ctx.business_no, ctx.headers["x-level"]) == ("320612", "Y-77", "province")


def test_require_materials_publishes_correction_request_when_materials_missing():
    legacy = fake("legacy", echo)
    checklists = {"transfer": {
        "200": [{"name": "申请书", "type": "application_form"},
                {"name": "买方身份证明", "type": "identity_document"},
                {"name": "卖方身份证明", "type": "identity_document"},
                {"name": "购房合同", "type": "contract"},
                {"name": "完税凭证", "type": "tax_document", "optional": True}],
        "default": [{"name": "申请书", "type": "application_form"}]}}
    hub = make_hub({"r": {"from": "application.submitted", "steps": [
        {"require_materials": {"checklist": "transfer"}},
        {"to": {"connector": "legacy", "operation": "submit"}}]}},
        {"legacy": legacy}, checklists=checklists)
    read = capture(hub, "correction.requested")
    materials = [{"name": "申请书", "type": "application_form"},
                 {"name": "身份证", "type": "identity_document"}]
    hub.send("application.submitted", application("B-15", materials=materials))
    hub.run_until_idle()
    assert legacy.calls == []
    [req] = read()
    assert req.business_no == "B-15"
    # One identity document is there, a second one (same type) and the contract are not.
    assert [(i["material_name"], i["material_type"]) for i in req.body["items"]] == [
        ("卖方身份证明", "identity_document"), ("购房合同", "contract")]
    assert req.body["organisation"]["division_code"] == TENANT
    assert hub.progress_by_business_no(TENANT, "B-15")["stage"] == "correction"
    assert outcomes(hub, "B-15")[-1] == ("r", "0:require_materials", "skipped")
    assert hub.dlq_list() == []


def test_require_materials_lets_complete_applications_through():
    legacy = fake("legacy", echo)
    checklists = {"c": {"200": [{"name": "购房合同", "type": "contract"},
                                {"name": "身份证明", "type": "identity_document"}]}}
    hub = make_hub({"r": {"from": "application.submitted", "steps": [
        {"require_materials": {"checklist": "c"}},
        {"to": {"connector": "legacy", "operation": "submit"}}]}},
        {"legacy": legacy}, checklists=checklists)
    hub.send("application.submitted", application("B-16", materials=[
        {"name": "商品房买卖合同", "type": "contract"},
        {"name": "身份证明", "type": "identity_document"}]))
    hub.run_until_idle()
    assert len(legacy.calls) == 1


def test_match_name_records_whether_the_given_name_is_the_registered_one():
    legacy = fake("legacy", echo)
    hub = make_hub({"r": {"from": "application.submitted", "steps": [
        {"match_name": {"name": "applicants[0].name", "registered": "licence.company_name",
                        "into": "checks.name", "record": "licence_name"}},
        {"filter": "checks.name.match"},
        {"to": {"connector": "legacy", "operation": "submit"}}]}}, {"legacy": legacy})
    registered = "海门市东洲(集团)有限公司"
    for no, given in (("B-40", "海门市东洲（集团） 有限公司"),  # full-width, a space: same name
                      ("B-41", registered + "'; DROP TABLE qlr; --"),
                      ("B-42", None)):
        body = application(no, licence={"company_name": registered})
        body["applicants"][0].update(name=given, id_type="8")
        hub.send("application.submitted", body)
    hub.run_until_idle()
    assert [c[1]["business_no"] for c in legacy.calls] == ["B-40"]
    [record] = hub.store.verifications_for("B-41")
    assert (record["kind"], record["operation"]) == ("licence_name", "match_name")
    assert record["result"] == {"match": False, "given": registered + "'; DROP TABLE qlr; --",
                                "registered": registered}
    assert hub.store.verifications_for("B-42")[0]["result"]["match"] is False  # nothing to match
    assert outcomes(hub, "B-41")[0] == ("r", "0:match_name", "ok")


def test_validate_dead_letters_schema_violation_with_reason_and_step():
    legacy = fake("legacy", echo)
    hub = make_hub({"r": {"from": "application.submitted", "steps": [
        {"validate": "application"},
        {"to": {"connector": "legacy", "operation": "submit"}}]}}, {"legacy": legacy})
    hub.send("application.submitted", {"business_no": "B-17", "applicants": []})
    hub.send("application.submitted", application("B-18"))
    hub.run_until_idle()
    assert [c[1]["business_no"] for c in legacy.calls] == ["B-18"]
    [dead] = hub.dlq_list()
    assert (dead["reason"], dead["route"], dead["step"], dead["business_no"]) == (
        "schema", "r", "0:validate", "B-17")
    assert "applicants" in dead["last_error"]


def test_validate_uses_the_canonical_catalogue_by_default():
    from prometheus_client import CollectorRegistry

    from bdchub.routes.middleware import MetricsMiddleware
    from bdchub.routes.runtime import Hub

    config = {"tenant": TENANT, "connectors": {},
              "routes": {"r": {"from": "application.submitted",
                               "steps": [{"validate": "application"}]}}}
    hub = Hub.from_config(config, broker="memory://", store="sqlite://",
                          metrics=MetricsMiddleware(CollectorRegistry()))
    hub.send("application.submitted", {"business_no": "B-19"})
    hub.run_until_idle()
    [dead] = hub.dlq_list()
    assert dead["reason"] == "schema" and "application" in dead["last_error"]


def test_each_step_leaves_a_hop_in_the_trace_and_on_the_envelope():
    hub = make_hub({"r": {"from": "application.submitted", "steps": [
        {"map": {"fields": {"ywh": "business_no"}, "merge": True}},
        {"publish": "application.forwarded"}]}})
    read = capture(hub, "application.forwarded")
    hub.send("application.submitted", application("B-20"))
    hub.run_until_idle()
    rows = hub.trace("B-20")
    assert [(r["step"], r["outcome"], r["type"]) for r in rows] == [
        ("0:map", "ok", "application.submitted"),
        ("1:publish", "ok", "application.submitted")]
    assert all(r["duration_ms"] >= 0 and r["started_at"] > 0 for r in rows)
    [child] = read()
    assert [h.step for h in child.trace] == ["0:map"]


def test_set_business_no_keys_the_current_messages_trace(hubs):
    hub = make_hub({"cb": {"from": "legacy.stage_changed", "steps": [
        {"set": {"business_no": "YWH"}}, {"publish": "progress.reported"}]}})
    hubs.append(hub)
    read = capture(hub, "progress.reported")
    hub.send("legacy.stage_changed", {"YWH": "B1", "stage": "review", "status": "in_progress"},
             business_no="")
    hub.run_until_idle()
    # The whole run, the set itself included, is under the new number.
    assert outcomes(hub, "B1") == [("cb", "0:set", "ok"), ("cb", "1:publish", "ok")]
    assert hub.trace("") == []
    assert [m.business_no for m in read()] == ["B1"]
    progress = hub.store.progress(TENANT, "B1")
    assert (progress["stage"], progress["status"]) == ("review", "in_progress")


def test_set_business_no_keeps_the_run_in_the_former_numbers_trace_as_a_hand_over(hubs):
    gov = fake("gov", lambda op, p, c: {"match": True})
    hub = make_hub({"item": {"from": "bank.batch_item", "steps": [
        {"set": {"business_no": "application.business_no"}},
        {"enrich": {"connector": "gov", "operation": "verify", "into": "checks",
                    "record": "identity"}},
        {"publish": {"type": "application.submitted", "body": "application"}}]}},
        {"gov": gov})
    hubs.append(hub)
    read = capture(hub, "application.submitted")
    hub.send("bank.batch_item", {"application": application("A-9")}, business_no="BATCH-9")
    hub.run_until_idle()
    steps = ["0:set", "1:enrich", "2:publish"]
    assert [h["step"] for h in hub.trace("A-9")] == steps
    assert [h["step"] for h in hub.trace("BATCH-9")] == steps
    assert "BATCH-9 -> " in hub.trace("A-9")[0]["detail"]
    assert gov.calls[0][2].business_no == "A-9"
    assert [r["kind"] for r in hub.store.verifications_for("A-9")] == ["identity"]
    assert hub.store.verifications_for("BATCH-9") == []
    assert [m.business_no for m in read()] == ["A-9"]


def test_split_items_can_carry_their_own_business_number(hubs):
    hub = make_hub({
        "batch": {"from": "bank.batch", "steps": [
            {"split": {"items": "applications", "publish": "application.submitted",
                       "business_no": "business_no"}}]},
        "app": {"from": "application.submitted", "steps": [
            {"map": {"fields": {"x": "business_no"}, "merge": True}}]}})
    hubs.append(hub)
    hub.send("bank.batch", {"business_no": "BATCH1",
                            "applications": [{"business_no": "A1"}, {"other": 1}]})
    hub.run_until_idle()
    assert [h["route"] for h in hub.trace("A1")] == ["app"]
    # An item whose expression gives nothing keeps the parent's number.
    assert [h["route"] for h in hub.trace("BATCH1")] == ["batch", "app"]


def test_split_items_keep_the_parents_business_number_by_default(hubs):
    hub = make_hub({"batch": {"from": "bank.batch", "steps": [
        {"split": {"items": "applications", "publish": "application.submitted"}}]}})
    hubs.append(hub)
    read = capture(hub, "application.submitted")
    hub.send("bank.batch", {"business_no": "BATCH2", "applications": [{"business_no": "A2"}]})
    hub.run_until_idle()
    assert [m.business_no for m in read()] == ["BATCH2"]


def test_a_route_whose_parallel_recipients_hang_does_not_hold_up_another_routes():
    from bdchub.core.envelope import Envelope
    from bdchub.routes.engine import FANOUT_THREADS

    release = threading.Event()

    def hang(op, payload, ctx):
        release.wait(20)
        return {}

    court, tax = fake("court", hang), fake("tax", lambda op, payload, ctx: {"ok": op})
    hub = make_hub({
        "stuck": {"from": "a.stuck", "steps": [{"to": {"parallel": True, "recipients": [
            {"connector": "court", "operation": f"h{i}"} for i in range(FANOUT_THREADS)]}}]},
        "fine": {"from": "a.fine", "steps": [{"to": {"parallel": True, "recipients": [
            {"connector": "tax", "operation": "q1"}, {"connector": "tax", "operation": "q2"}]}}]},
    }, {"court": court, "tax": tax})

    def run(route):
        hub.engine.execute(hub.routes[route], Envelope(type=f"a.{route}", tenant=TENANT,
                                                       body={}, business_no="B-20"))

    stuck = threading.Thread(target=run, args=("stuck",), daemon=True)
    stuck.start()
    try:
        for _ in range(200):  # bounded: until every stuck recipient holds a thread
            if len(court.calls) == FANOUT_THREADS:
                break
            threading.Event().wait(0.01)
        assert len(court.calls) == FANOUT_THREADS
        fine = threading.Thread(target=run, args=("fine",), daemon=True)
        fine.start()
        fine.join(timeout=10)
        assert not fine.is_alive(), "the healthy route waited for the stuck one's threads"
        assert sorted(c[0] for c in tax.calls) == ["q1", "q2"]
    finally:
        release.set()
        stuck.join(timeout=10)
