"""The store's contract. Runs on SQLite here and on PostgreSQL in
tests/integration/test_store_postgres.py (same tests, another ``store`` fixture)."""

from __future__ import annotations

import json
import threading

import pytest

from bdchub.core.envelope import Hop
from bdchub.core.errors import StoreError
from bdchub.core.store import Finish, Store


def _finish(message_id="m-1", route="r", **kw):
    base = {"message_id": message_id, "route": route, "outcome": "completed", "tenant": "320684",
            "business_no": "B-1", "type": "application.submitted",
            "hops": [Hop("r", "0:map", 100.0, 1.5), Hop("r", "1:to", 100.1, 20.0, "error", "x")],
            "at": 100.0}
    base.update(kw)
    return Finish(**base)


def _parked(pid="p-1", due=200.0):
    return {"id": pid, "message_id": "m-1", "origin_id": "m-1", "route": "r", "step": "1:to",
            "tenant": "320684", "business_no": "B-1", "reason": "recoverable",
            "last_error": "down", "envelope": "{}", "park_count": 1, "due_at": due}


def test_finish_records_outcome_once_and_duplicates_write_nothing(store):
    assert store.finish(_finish()) is True
    assert store.is_processed("m-1", "r") and not store.is_processed("m-1", "other")
    assert store.finish(_finish(parked=_parked())) is False
    assert store.count("parked") == 0  # the duplicate's rows were rolled back
    assert len(store.trace("B-1")) == 2


def test_finish_is_all_or_nothing(store):
    # A correlation with a clashing id makes the whole outcome fail: no processed
    # record, no hops, so the message is delivered again and nothing is half-written.
    corr = {"id": "c-1", "tenant": "320684", "business_no": "B-1", "route": "r", "step": "1",
            "types": "[]", "mode": "all", "into": "x", "deadline": 1.0, "envelope": "{}"}
    assert store.finish(_finish("m-0", correlation=corr))
    with pytest.raises(StoreError):  # not mistaken for a duplicate delivery
        store.finish(_finish("m-2", correlation=corr))
    assert not store.is_processed("m-2", "r")
    assert {h["message_id"] for h in store.trace("B-1")} == {"m-0"}


def test_trace_orders_hops_by_time_and_filters_by_tenant(store):
    store.finish(_finish("m-2", hops=[Hop("r", "0:late", 300.0, 1.0)]))
    store.finish(_finish("m-1"))
    store.finish(_finish("m-3", tenant="320612", hops=[Hop("r", "0:other", 50.0, 1.0)]))
    assert [h["step"] for h in store.trace("B-1", "320684")] == ["0:map", "1:to", "0:late"]
    assert len(store.trace("B-1")) == 4


def test_parked_rows_are_claimed_by_one_worker_only(store):
    store.finish(_finish(parked=_parked()))
    assert store.due_parked(199.0) == []
    [row] = store.due_parked(200.0)
    results = []
    threads = [threading.Thread(target=lambda: results.append(
        store.claim_parked(row["id"], 200.0, 60.0))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False, False, False, True]
    assert store.due_parked(230.0) == []  # claimed
    assert len(store.due_parked(261.0)) == 1  # the claim lapsed: someone died
    store.delete_parked(row["id"])
    assert store.count("parked") == 0


def test_dead_letter_lifecycle(store):
    dl = {"id": "0190d4f2-aaaa-7000-8000-000000000001", "message_id": "m-1", "origin_id": "m-1",
          "route": "r", "step": "1:to", "type": "a.b", "tenant": "320684", "business_no": "B-1",
          "reason": "permanent", "last_error": "400", "envelope": "{}"}
    store.finish(_finish(outcome="dead_letter", dead_letter=dl))
    [row] = store.dead_letters()
    assert (row["reason"], row["status"], row["replay_count"]) == ("permanent", "dead", 0)
    assert store.dead_letter("0190d4f2-aaaa")["id"] == dl["id"]  # an id prefix is enough
    assert store.mark_replayed(dl["id"], 300.0) == 1
    assert store.mark_replayed(dl["id"], 300.0) is None
    assert store.dead_letters() == []
    assert store.dead_letters(status="replayed")[0]["replayed_at"] == 300.0
    assert store.drop_dead_letter(dl["id"]) is False


def test_a_dead_letter_keeps_the_message_at_its_failing_step_apart_from_its_row(store):
    dl = {"id": "0190d4f2-bbbb-7000-8000-000000000001", "message_id": "m-1", "origin_id": "m-1",
          "route": "r", "step": "1:to", "type": "a.b", "tenant": "320684", "business_no": "B-1",
          "reason": "permanent", "last_error": "400", "envelope": '{"at": "received"}',
          "state": '{"at": "step 1"}'}
    store.finish(_finish(outcome="dead_letter", dead_letter=dl))
    assert store.dead_letter_state(dl["id"]) == '{"at": "step 1"}'
    # Lists and shows never carry it (it holds the body the steps made, unmasked).
    assert "state" not in store.dead_letter(dl["id"]) and "state" not in store.dead_letters()[0]
    assert store.dead_letter_state("0190d4f2-none") is None


def test_stale_progress_lists_cases_at_a_stage_not_moved_since_oldest_first(store):
    for no, stage, status, at in (("B-1", "review", "in_progress", 100.0),
                                  ("B-2", "review", "in_progress", 50.0),
                                  ("B-3", "review", "completed", 10.0),
                                  ("B-4", "review", "in_progress", 300.0),
                                  ("B-5", "acceptance", "in_progress", 10.0)):
        store.finish(_finish(f"m-{no}", business_no=no, at=at,
                             progress={"stage": stage, "status": status}))
    assert [r["business_no"] for r in store.stale_progress("review", 200.0)] == ["B-2", "B-1"]
    assert [r["business_no"] for r in store.stale_progress("review", 200.0, limit=1)] == ["B-2"]


def test_correlation_is_decided_exactly_once(store):
    corr = {"id": "c-1", "tenant": "320684", "business_no": "B-1", "route": "r", "step": "1",
            "types": json.dumps(["tax.cleared"]), "mode": "all", "into": "tax",
            "deadline": 500.0, "envelope": "{}"}
    store.finish(_finish(outcome="awaiting", correlation=corr))
    [waiting] = store.waiting_correlations("320684", "B-1")
    assert waiting["types"] == ["tax.cleared"]
    assert store.due_correlations(499.0) == [] and len(store.due_correlations(500.0)) == 1
    results = []
    threads = [threading.Thread(target=lambda s=s: results.append(
        store.decide_correlation("c-1", s, 400.0, "{}"))) for s in ("resumed", "timed_out") * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False, False, False, True]
    assert store.waiting_correlations("320684", "B-1") == []
    assert len(store.undelivered_decisions(401.0)) == 1
    store.close_correlation("c-1")
    assert store.undelivered_decisions(401.0) == []
    assert store.correlation("c-1")["state"] == "done"


def test_inbox_keeps_one_row_per_message_and_expires(store):
    assert store.inbox_add("m-9", "320684", "B-1", "tax.cleared", {"a": 1}, 10.0)
    assert not store.inbox_add("m-9", "320684", "B-1", "tax.cleared", {"a": 1}, 11.0)
    assert [r["body"] for r in store.inbox("320684", "B-1")] == [{"a": 1}]
    assert store.purge_inbox(10.5) == 1
    assert store.inbox("320684", "B-1") == []


def test_progress_upserts_and_is_found_by_applicant_key(store):
    store.finish(_finish("m-1", progress={"applicant_name": "张*", "applicant_key": "k1",
                                          "registration_type": "200"}))
    store.finish(_finish("m-2", at=150.0, progress={"stage": "acceptance", "status": "in_progress"}))
    row = store.progress("320684", "B-1")
    assert (row["stage"], row["registration_type"], row["applicant_name"], row["updated_at"]) == (
        "acceptance", "200", "张*", 150.0)
    assert [r["business_no"] for r in store.progress_by_key("320684", "k1")] == ["B-1"]
    assert store.progress_by_key("320612", "k1") == []


def test_a_stage_change_older_at_its_source_never_moves_the_case_back(store):
    """A callback and a poller's copy of one change are two messages: the copy of
    申请 (XH 4) finishing after 补正 (XH 5) keeps the case at 补正."""
    def change(message_id: str, stage: str, sequence: int | None, at: float):
        progress = {"stage": stage, "status": "in_progress"}
        if sequence is not None:
            progress["stage_seq"] = sequence
        store.finish(_finish(message_id, at=at, progress=progress))

    change("cb-4", "application", 4, 100.0)
    change("cb-5", "correction", 5, 101.0)
    change("poll-4", "application", 4, 102.0)  # late copy of the older change
    assert store.progress("320684", "B-1")["stage"] == "correction"
    change("cb-9", "application", 9, 103.0)  # resubmitted after the correction: newer
    assert store.progress("320684", "B-1")["stage"] == "application"
    change("hub", "acceptance", None, 104.0)  # a report without a sequence moves it as before
    assert store.progress("320684", "B-1")["stage"] == "acceptance"


def test_in_one_batch_the_change_of_the_highest_sequence_holds_the_stage(store):
    store._finish_many([  # what the group commit writes in one transaction
        _finish("cb-7", at=100.0, progress={"stage": "correction", "stage_seq": 7}),
        _finish("poll-6", at=100.1, progress={"stage": "application", "stage_seq": 6})])
    assert store.progress("320684", "B-1")["stage"] == "correction"


def test_processed_records_can_be_purged_by_age(store):
    store.finish(_finish("m-1", at=100.0))
    store.finish(_finish("m-2", at=200.0))
    assert store.purge_processed(150.0) == 1
    assert not store.is_processed("m-1", "r") and store.is_processed("m-2", "r")


def test_routes_finishing_at_once_for_one_application_both_record(store):
    errors = []

    def finish(i):
        try:
            assert store.finish(_finish(f"m-{i}", route=f"r{i}", business_no="B-9",
                                        progress={"stage": "acceptance", "last_type": f"t{i}"}))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=finish, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert all(store.is_processed(f"m-{i}", f"r{i}") for i in range(8))
    assert store.progress("320684", "B-9")["stage"] == "acceptance"


def test_finish_with_nothing_to_record_writes_no_row(tmp_path):
    from bdchub.core.store import Finish, Store

    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    nothing = Finish(message_id="m-1", route="sync", outcome="ok", tenant="320684",
                     business_no="", type="inbound.sync", record_processed=False)
    assert store.finish(nothing) is True
    assert store.is_processed("m-1", "sync") is False
    recorded = Finish(message_id="m-2", route="sync", outcome="ok", tenant="320684",
                      business_no="", type="inbound.sync", record_processed=True)
    assert store.finish(recorded) is True
    assert store.is_processed("m-2", "sync")


def test_progress_that_reports_nothing_new_leaves_the_row_and_its_time_as_they_were(store):
    # A poll (or a repeated report) of the stage the case is at must not make it look
    # moved: updated_at is when the case last changed, what the reconciler waits on.
    store.finish(_finish("m-1", at=100.0, progress={"stage": "review", "status": "in_progress",
                                                    "last_type": "legacy.stage_changed"}))
    store.finish(_finish("m-2", at=200.0, progress={"stage": "review", "status": "in_progress",
                                                    "last_type": "legacy.stage_changed"}))
    store.finish(_finish("m-3", at=250.0, progress={"stage": "review"}))  # empty: kept as is
    assert store.progress("320684", "B-1")["updated_at"] == 100.0
    assert [r["business_no"] for r in store.stale_progress("review", 150.0)] == ["B-1"]
    store.finish(_finish("m-4", at=300.0, progress={"stage": "registration",
                                                    "last_type": "legacy.stage_changed"}))
    row = store.progress("320684", "B-1")
    assert (row["stage"], row["status"], row["updated_at"]) == ("registration", "in_progress",
                                                                300.0)


def test_a_store_made_before_the_message_index_gets_it_when_next_opened(tmp_path):
    from sqlalchemy import create_engine, inspect, text

    url = f"sqlite:///{tmp_path}/old.db"
    Store(url).close()
    engine = create_engine(url)
    with engine.begin() as db:
        db.execute(text("DROP INDEX ix_hops_message"))  # as a store of an older release
    assert "ix_hops_message" not in {i["name"] for i in inspect(engine).get_indexes("hops")}
    Store(url).close()
    assert "ix_hops_message" in {i["name"] for i in inspect(engine).get_indexes("hops")}
    engine.dispose()
