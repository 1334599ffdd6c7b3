"""``resume_held``: corrected materials take a held application back in, each
correction onto what the ones before it brought."""

from __future__ import annotations

from tests.routes.helpers import application, capture, echo, fake, make_hub

CHECKLISTS = {"c": {"default": [{"name": "申请书", "type": "application_form"},
                                {"name": "身份证明", "type": "identity_document"},
                                {"name": "权属来源证明", "type": "ownership_document"}]}}
ROUTES = {
    "online": {"from": "application.submitted", "steps": [
        {"require_materials": {"checklist": "c", "hold": True}},
        {"to": {"connector": "legacy", "operation": "submit"}}]},
    "corrections": {"from": "application.materials_updated", "steps": [
        {"resume_held": {"publish": "application.resubmitted"}},
        {"to": {"connector": "legacy", "operation": "supplement"}}]},
}


def _names(envelope) -> list[str]:
    return [m["name"] for m in envelope.body["materials"]]


def test_a_second_correction_sent_before_the_first_is_taken_back_in_keeps_its_materials():
    legacy = fake("legacy", echo)
    hub = make_hub(ROUTES, {"legacy": legacy}, checklists=CHECKLISTS)
    resubmitted = capture(hub, "application.resubmitted")
    hub.send("application.submitted", application("H-1"))  # only the application form
    hub.run_until_idle()
    assert hub.store.held_application("320684", "H-1") is not None

    # Both corrections come while the case is at correction: the first's resubmission
    # (here: never consumed) has not been taken back in when the second is merged.
    hub.send("application.materials_updated",
             {"materials": [{"name": "身份证明", "type": "identity_document"}]},
             business_no="H-1")
    hub.send("application.materials_updated",
             {"materials": [{"name": "权属来源证明", "type": "ownership_document"}]},
             business_no="H-1")
    hub.run_until_idle()

    first, second = resubmitted()
    assert _names(first) == ["申请书", "身份证明"]
    assert _names(second) == ["申请书", "身份证明", "权属来源证明"]
    assert [c[0] for c in legacy.calls] == []  # the registration system never saw the case


def test_a_correction_delivered_again_merges_the_same_materials_into_the_same_message():
    hub = make_hub(ROUTES, {"legacy": fake("legacy", echo)}, checklists=CHECKLISTS)
    resubmitted = capture(hub, "application.resubmitted")
    hub.send("application.submitted", application("H-2"))
    hub.run_until_idle()
    correction = hub.send("application.materials_updated",
                          {"materials": [{"name": "身份证明", "type": "identity_document"}]},
                          business_no="H-2")
    hub.run_until_idle()
    # As if the process died after publishing but before recording the run.
    hub.store.purge_processed(float("inf"))
    hub.publish(correction)
    hub.run_until_idle()

    first, again = resubmitted()
    assert first.id == again.id and _names(again) == ["申请书", "身份证明"]
