"""The store's part in the closed loops (issue 12): a case's stage never moves back
after its entry in the register, its notices are kept and read only by who may,
and who submitted it is known."""

from __future__ import annotations

from bdchub.core.store import Finish


def _report(store, message_id: str, stage: str, status: str = "in_progress", *,
            at: float = 100.0, submitted_by: str = "", channel: str = "") -> None:
    progress = {"stage": stage, "status": status}
    if submitted_by:
        progress.update(submitted_by=submitted_by, submitted_channel=channel)
    store.finish(Finish(message_id=message_id, route="r", outcome="completed", tenant="320684",
                        business_no="B-1", type="progress.reported", progress=progress, at=at))


def test_a_stage_reported_late_after_archive_leaves_the_case_archived(store):
    for i, stage in enumerate(["application", "acceptance", "review", "registration"]):
        _report(store, f"m-{i}", stage)
    _report(store, "m-5", "archive", "completed", at=105.0)

    _report(store, "m-4", "certificate", at=106.0)  # its fan-out finished after the archive
    _report(store, "m-6", "refusal", "completed", at=107.0)

    row = store.progress("320684", "B-1")
    assert (row["stage"], row["status"], row["updated_at"]) == ("archive", "completed", 105.0)


def test_before_the_register_a_case_goes_back_to_application_after_correction(store):
    _report(store, "m-1", "correction", "suspended")
    _report(store, "m-2", "application")

    assert store.progress("320684", "B-1")["stage"] == "application"


def test_a_notice_is_kept_once_and_read_only_within_the_submitters_scope(store):
    _report(store, "m-1", "refusal", "completed", submitted_by="province_window",
            channel="province")
    row = {"id": "n-1", "tenant": "320684", "business_no": "B-1", "message_id": "m-1",
           "kind": "refusal", "name": "B-1-refusal.pdf", "media_type": "application/pdf",
           "sha256": "a" * 64, "size": 3, "content": "JVBE", "created_at": 100.0}

    assert store.add_notice(**row) is True
    assert store.add_notice(**{**row, "content": "other"}) is False

    assert store.notice("320684", "B-1", "n-1")["content"] == "JVBE"
    assert store.notice("320684", "B-1", "n-1", client="province_window")["sha256"] == "a" * 64
    assert store.notice("320684", "B-1", "n-1", client="county_window") is None
    assert store.notices_for("320684", "B-1", channel="county") == []
    [listed] = store.notices_for("320684", "B-1", channel="province")
    assert "content" not in listed and listed["kind"] == "refusal"
    assert store.submitter("320684", "B-1")["channel"] == "province"
    assert store.submitter("320684", "B-2") is None


def test_a_document_issued_to_the_client_that_asked_is_read_only_by_that_client(store):
    # A no-property certificate answers a request: no client submitted its number.
    row = {"id": "n-9", "tenant": "320684", "business_no": "WFZM-1", "message_id": "q-1",
           "kind": "no_property", "name": "WFZM-1-no_property.pdf",
           "media_type": "application/pdf", "sha256": "b" * 64, "size": 3, "content": "JVBE",
           "created_at": 100.0}

    assert store.add_notice(recipient={"client": "province_window", "channel": "province"},
                            **row) is True
    assert store.add_notice(recipient={"client": "county_window", "channel": "county"},
                            **row) is False

    assert store.notice("320684", "WFZM-1", "n-9", client="province_window")["content"] == "JVBE"
    assert store.notice("320684", "WFZM-1", "n-9", client="county_window") is None
    assert [n["id"] for n in store.notices_for("320684", "WFZM-1", channel="province")] == ["n-9"]
    assert store.notices_for("320684", "WFZM-1", channel="county") == []
    assert store.notice("320684", "WFZM-1", "n-9")["kind"] == "no_property"  # a tenant reader
    assert store.submitter("320684", "WFZM-1") is None  # not a case: no channel counts it


def test_a_held_application_is_kept_sealed_replaced_when_held_again_and_released(store):
    store.hold_application("320684", "B-1", route="online_application",
                           envelope='{"body": {"n": 1}}', at=100.0)
    store.hold_application("320684", "B-1", route="online_application",
                           envelope='{"body": {"n": 2}}', at=101.0)

    assert store.held_application("320684", "B-1")["envelope"] == '{"body": {"n": 2}}'
    assert store.held_application("320684", "B-2") is None
    assert store.release_application("320684", "B-1") is True
    assert store.release_application("320684", "B-1") is False
    assert store.held_application("320684", "B-1") is None


def test_a_held_application_is_replaced_only_if_no_one_replaced_it_since_it_was_read(store):
    store.hold_application("320684", "B-1", route="online_application",
                           envelope='{"body": {"n": 1}}', at=100.0)
    read = store.held_application("320684", "B-1")

    assert store.update_held_application("320684", "B-1", envelope='{"body": {"n": 2}}',
                                         held_at=read["held_at"], at=100.0) is True
    # A second writer that read the same row loses, and reads again.
    assert store.update_held_application("320684", "B-1", envelope='{"body": {"n": 3}}',
                                         held_at=read["held_at"], at=101.0) is False
    again = store.held_application("320684", "B-1")
    assert again["envelope"] == '{"body": {"n": 2}}' and again["held_at"] > read["held_at"]
    assert store.update_held_application("320684", "B-2", envelope="{}", held_at=0.0,
                                         at=1.0) is False


def test_the_latest_correction_notice_states_the_deadline_and_an_older_one_again_changes_nothing(
        store):
    store.note_correction_deadline("320684", "B-1", deadline="2024-05-25", notice_id="n-1", at=10.0)
    assert store.correction_deadline("320684", "B-1") == "2024-05-25"

    store.note_correction_deadline("320684", "B-1", deadline="2024-06-30", notice_id="n-2", at=20.0)
    store.note_correction_deadline("320684", "B-1", deadline="2024-05-25", notice_id="n-1", at=10.0)
    assert store.correction_deadline("320684", "B-1") == "2024-06-30"

    # A later notice without a date (the registration system's own 补正) lifts it.
    store.note_correction_deadline("320684", "B-1", deadline=None, notice_id="n-3", at=30.0)
    assert store.correction_deadline("320684", "B-1") is None
    assert store.correction_deadline("320684", "B-2") is None
