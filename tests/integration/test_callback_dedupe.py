"""A retried department callback reaches the windows once (issue #10, finding 6: "a
retried inbound callback became a second progress message, forwarded to all three
windows under new idempotency keys"). The shipped config.yaml runs in-process
against the sandbox's departments, as in tests/demo."""

from __future__ import annotations

from prometheus_client import REGISTRY

from tests.demo.conftest import flows  # noqa: F401 - the fixture, shared

WINDOWS = ("window_county", "window_province", "window_national")
CALLBACK = "/api/v1/inbound/legacy/stage-changes"


def _duplicates(route: str) -> float:
    return REGISTRY.get_sample_value("bdchub_route_duplicates_total", {"route": route}) or 0.0


def test_the_same_stage_change_posted_twice_reaches_each_window_once(flows):  # noqa: F811
    body = flows.samples["first"]
    no = body["business_no"]
    flows.submit("national_window", body)
    flows.wait(lambda: all(flows.received(w, path="/progress", where=lambda b: b.get(
        "business_no") == no and b.get("stage") == "archive") for w in WINDOWS),
        what="archive at every window")
    [accepted] = [e for e in flows.sb.legacy_events() if e["YWH"] == no and e["ZT"] == "02"]
    absorbed = _duplicates("legacy_stage_change")

    # The registration system heard no answer in time and posts the same change again.
    retry = flows.post("legacy", CALLBACK, accepted)

    assert retry.status_code == 202, retry.text

    def acceptances(window: str) -> int:
        return len(flows.received(window, path="/progress", where=lambda b: b.get(
            "business_no") == no and b.get("stage") == "acceptance"))

    # Either the route absorbs the retry, or it goes out again as a second report.
    flows.wait(lambda: _duplicates("legacy_stage_change") > absorbed
               or acceptances("window_county") > 1, what="the retry handled")
    assert {window: acceptances(window) for window in WINDOWS} == dict.fromkeys(WINDOWS, 1)
