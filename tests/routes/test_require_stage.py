"""require_stage: an event that does not fit the case's stage is dropped (or
dead-lettered) and moves nothing, so a forged or out-of-order one neither
reaches a department nor wakes the route waiting for the real one."""

from __future__ import annotations

import pytest

from bdchub.core.errors import ConfigError
from tests.routes.helpers import TENANT, Clock, application, echo, fake, make_hub

# "stage.changed" stands for the registration system's stage changes: its route
# records the stage it carries, as legacy_stage_change does.
TRACK = {"from": "stage.changed", "steps": [{"filter": "`true`"}]}


def _stage(hub, business_no: str) -> str:
    return (hub.store.progress(TENANT, business_no) or {}).get("stage", "")


def _fanout():
    """progress_fanout of config.yaml, in small: nothing is refused after the register."""
    window = fake("window", echo)
    hub = make_hub({"track": TRACK, "fanout": {"from": "progress.reported", "steps": [
        {"require_stage": {"not_in": ["registration", "certificate", "archive"]}},
        {"to": {"connector": "window", "operation": "report_progress"}}]}},
        {"window": window})
    return hub, window


def test_a_report_that_does_not_fit_the_cases_stage_is_skipped_and_moves_nothing():
    hub, window = _fanout()
    hub.send("stage.changed", {"business_no": "F-1", "stage": "archive", "status": "completed"})
    hub.run_until_idle()

    hub.send("progress.reported", {"business_no": "F-1", "stage": "refusal",
                                   "status": "completed"})
    hub.run_until_idle()

    assert window.calls == []
    assert _stage(hub, "F-1") == "archive"
    [hop] = [h for h in hub.trace("F-1") if h["route"] == "fanout"]
    assert (hop["step"], hop["outcome"]) == ("0:require_stage", "skipped")
    assert "archive" in hop["detail"]


def test_a_report_that_fits_goes_on_and_moves_the_stage():
    hub, window = _fanout()
    hub.send("stage.changed", {"business_no": "F-2", "stage": "acceptance"})
    hub.run_until_idle()
    hub.send("progress.reported", {"business_no": "F-2", "stage": "refusal",
                                   "status": "completed"})
    hub.run_until_idle()

    assert [c[1]["stage"] for c in window.calls] == ["refusal"]
    assert _stage(hub, "F-2") == "refusal"


def test_a_case_the_hub_knows_nothing_of_is_at_stage_new():
    hub = make_hub({"check": {"from": "registration.recorded", "steps": [
        {"require_stage": {"in": ["review"]}}]}})
    hub.send("registration.recorded", {"business_no": "F-3"})
    hub.run_until_idle()

    [hop] = hub.trace("F-3")
    assert hop["outcome"] == "skipped" and "stage new" in hop["detail"]


def test_else_dead_letter_dead_letters_the_message_and_writes_no_progress():
    hub = make_hub({"check": {"from": "registration.recorded", "steps": [
        {"require_stage": {"in": ["review"], "else": "dead_letter"}}]}})
    hub.send("registration.recorded", {"business_no": "F-4", "stage": "registration",
                                       "registration_type": "200"})
    hub.run_until_idle()

    [dead] = hub.dlq_list()
    assert (dead["route"], dead["reason"], dead["business_no"]) == ("check", "invalid", "F-4")
    assert hub.store.progress(TENANT, "F-4") is None


def test_else_wait_parks_an_early_message_until_the_case_reaches_a_stage_it_fits():
    clock = Clock()
    legacy = fake("legacy", echo)
    hub = make_hub({"track": TRACK, "review": {
        "from": "review.returned",
        "on_error": {"retry": {"attempts": 1}, "park_for": 30, "park_max": 3},
        "steps": [{"require_stage": {"not_in": ["new"], "else": "wait"}},
                  {"to": {"connector": "legacy", "operation": "receive_review_result"}}]}},
        {"legacy": legacy}, clock=clock)
    hub.send("review.returned", {"business_no": "F-5", "result": "approved"})
    hub.run_until_idle()
    assert legacy.calls == [] and hub.dlq_list() == []
    assert hub.store.count("parked", route="review") == 1

    hub.send("stage.changed", {"business_no": "F-5", "stage": "acceptance"})
    hub.run_until_idle()
    clock.advance(31)
    hub.tick()
    hub.run_until_idle()
    assert [c[1]["result"] for c in legacy.calls] == ["approved"]
    assert hub.store.count("parked", route="review") == 0 and hub.dlq_list() == []


def test_else_wait_dead_letters_once_the_parking_runs_out():
    clock = Clock()
    hub = make_hub({"review": {
        "from": "review.returned",
        "on_error": {"retry": {"attempts": 1}, "park_for": 30, "park_max": 2},
        "steps": [{"require_stage": {"not_in": ["new"], "else": "wait"}}]}}, clock=clock)
    hub.send("review.returned", {"business_no": "F-6"})
    hub.run_until_idle()
    for _ in range(3):
        clock.advance(31)
        hub.tick()
        hub.run_until_idle()
    [dead] = hub.dlq_list()
    assert (dead["route"], dead["business_no"]) == ("review", "F-6")


GATED = {
    "track": TRACK,
    # registration_check and registration_results of config.yaml, in small
    "check": {"from": "registration.recorded", "steps": [
        {"require_stage": {"in": ["review", "registration"]}},
        {"publish": "registration.checked"}]},
    "results": {"from": "application.forwarded", "steps": [
        {"await": {"types": ["registration.checked"], "timeout": 3600, "into": "register"}},
        {"to": {"connector": "trade", "operation": "registration_result"}}]},
}


def test_a_forged_register_entry_does_not_wake_the_await_and_the_real_one_still_does():
    trade = fake("trade", echo)
    hub = make_hub(GATED, {"trade": trade})
    hub.send("application.forwarded", application("F-5"))
    hub.send("stage.changed", {"business_no": "F-5", "stage": "acceptance"})
    hub.run_until_idle()

    hub.send("registration.recorded", {"business_no": "F-5", "registered_at": "forged"})
    hub.run_until_idle()
    assert trade.calls == []
    [corr] = hub.store.waiting_correlations(TENANT, "F-5")
    assert corr["route"] == "results"

    hub.send("stage.changed", {"business_no": "F-5", "stage": "review"})
    hub.run_until_idle()
    hub.send("registration.recorded", {"business_no": "F-5", "registered_at": "2026-01-05"})
    hub.run_until_idle()
    assert [c[1]["register"]["registered_at"] for c in trade.calls] == ["2026-01-05"]


@pytest.mark.parametrize("spec", [
    {"in": ["reviewing"]},
    {"in": ["review"], "not_in": ["archive"]},
    {},
    {"in": ["review"], "else": "ignore"},
])
def test_a_stage_list_that_cannot_be_checked_is_a_config_error(spec):
    with pytest.raises(ConfigError):
        make_hub({"check": {"from": "registration.recorded",
                            "steps": [{"require_stage": spec}]}})
