"""What every expression of a route sees besides the body: the message's own
fields (``_type``, ``_tenant``, ``_business_no``, ``_id``, ``_source``,
``_headers``) and the current time (``_now``), as docs/configuration.md lists them."""

from __future__ import annotations

import datetime as dt

from tests.routes.helpers import TENANT, Clock, application, echo, fake, make_hub


def test_expressions_see_the_messages_own_fields():
    legacy = fake("legacy", echo)
    hub = make_hub({"r": {"from": "application.submitted", "steps": [
        {"map": {"type": "_type", "tenant": "_tenant", "no": "_business_no", "id": "_id",
                 "source": "_source", "channel": "_headers.channel"}},
        {"to": {"connector": "legacy", "operation": "submit"}}]}}, {"legacy": legacy})
    env = hub.send("application.submitted", application("B-1"), headers={"channel": "bank"},
                   source="web:county_window")
    hub.run_until_idle()
    assert legacy.calls[0][1] == {"type": "application.submitted", "tenant": TENANT, "no": "B-1",
                                  "id": env.id, "source": "web:county_window", "channel": "bank"}


def test_expressions_see_the_runs_clock_as_now_in_iso_8601_with_its_offset():
    clock = Clock(1_767_225_600.0)  # 2026-01-01T00:00:00Z
    legacy = fake("legacy", echo)
    hub = make_hub({"r": {"from": "application.submitted", "steps": [
        {"map": {"at": "_now", "YWH": "business_no"}},
        # ISO 8601 text compares as time does (one offset): a condition can use it.
        {"filter": "_now > '2025-12-31' && _now < '2026-01-02'"},
        {"to": {"connector": "legacy", "operation": "submit"}}]}}, {"legacy": legacy},
        clock=clock)
    hub.send("application.submitted", application("B-2"))
    hub.run_until_idle()
    clock.advance(86_400 * 3)  # the filter's window has passed
    hub.send("application.submitted", application("B-3"))
    hub.run_until_idle()
    [(_op, payload, _ctx)] = legacy.calls
    at = dt.datetime.fromisoformat(payload["at"])
    assert at.utcoffset() is not None and payload["at"][-6] in "+-"
    assert at.timestamp() == 1_767_225_600.0
    assert [h["outcome"] for h in hub.trace("B-3")][-1] == "skipped"
