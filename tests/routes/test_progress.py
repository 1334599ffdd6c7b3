"""Progress queries for the one-window platforms: masked, tenant-isolated."""

from __future__ import annotations

from bdchub.core.masking import Masker
from tests.routes.helpers import TENANT, application, make_hub


def test_progress_by_business_no_follows_stages_and_masks_the_applicant():
    hub = make_hub({"r": {"from": "#", "steps": [{"filter": "`true`"}]}})
    hub.send("application.submitted", application("P-1"))
    hub.send("progress.updated", {"business_no": "P-1", "stage": "acceptance",
                                  "status": "in_progress"})
    hub.run_until_idle()
    progress = hub.progress_by_business_no(TENANT, "P-1")
    assert progress["stage"] == "acceptance" and progress["status"] == "in_progress"
    assert progress["registration_type"] == "200"
    assert progress["applicant"] == {"name": "张*", "id_number": "110105********1234"}
    assert [h["type"] for h in progress["history"]] == ["application.submitted",
                                                        "progress.updated"]
    assert hub.progress_by_business_no("320612", "P-1") is None  # another county's staff


def test_progress_by_applicant_finds_applications_without_storing_the_id_number():
    hub = make_hub({"r": {"from": "#", "steps": [{"filter": "`true`"}]}})
    hub.send("application.submitted", application("P-2"))
    hub.send("application.submitted", application("P-3"))
    other = application("P-4")
    other["applicants"][0]["id_number"] = "11010519900101203X"
    hub.send("application.submitted", other)
    hub.run_until_idle()
    found = hub.progress_by_applicant(TENANT, "110105199001011234")
    assert sorted(p["business_no"] for p in found) == ["P-2", "P-3"]
    assert hub.progress_by_applicant("320612", "110105199001011234") == []
    row = hub.store.progress(TENANT, "P-2")
    assert "110105199001011234" not in str(row)


def test_masking_keeps_surname_and_id_ends():
    m = Masker()
    assert m.name("张三") == "张*" and m.name("欧阳娜娜") == "欧阳**"
    assert m.id_number("110105199001011234") == "110105********1234"
    masked = m({"applicants": [{"name": "王五", "id_number": "110105199001011234",
                                "phone": "13812345678"}], "note": "x"})
    assert masked == {"applicants": [{"name": "王*", "id_number": "110105********1234",
                                      "phone": "138****5678"}], "note": "x"}


def test_a_route_that_maps_stage_and_status_moves_the_progress(hubs):
    hub = make_hub({"cb": {"from": "legacy.stage_changed", "steps": [
        {"map": {"business_no": "YWH", "stage": "(ZT=='03' && 'review') || 'other'",
                 "status": "'in_progress'"}}]}})
    hubs.append(hub)
    hub.send("legacy.stage_changed", {"YWH": "P-5", "ZT": "03"}, business_no="P-5")
    hub.run_until_idle()
    row = hub.store.progress(TENANT, "P-5")
    assert (row["stage"], row["status"], row["last_type"]) == (
        "review", "in_progress", "legacy.stage_changed")


def test_a_failed_run_does_not_move_the_progress_with_the_body_it_stopped_with(hubs):
    from tests.routes.helpers import fake

    hub = make_hub({"cb": {"from": "legacy.stage_changed",
                           "on_error": {"then": "dead_letter"}, "steps": [
        {"map": {"fields": {"stage": "'registration'"}, "merge": True}},
        {"to": {"connector": "legacy", "operation": "missing"}}]}},
        {"legacy": fake("legacy")})
    hubs.append(hub)
    hub.send("legacy.stage_changed", {"stage": "review"}, business_no="P-6")
    hub.run_until_idle()
    assert len(hub.dlq_list()) == 1
    assert hub.store.progress(TENANT, "P-6")["stage"] == "review"


def test_free_text_masking_follows_the_configured_keeps():
    m = Masker.from_config({"id_keep_first": 3, "id_keep_last": 2, "phone_keep_first": 2,
                 "phone_keep_last": 2})
    assert m.text("ID 110105199001011234 and mobile 13812345678 refused") == \
        "ID 110*************34 and mobile 13*******78 refused"
    assert Masker().text("110105199001011234") == "110105********1234"
