"""Statistics of applications (app.stats): counts by division, period, type, channel and
outcome, time at each stage and department calls, each one GROUP BY in the store, on
SQLite and PostgreSQL, bounded by a range and narrowed to an operator's tenants."""

from __future__ import annotations

import calendar

import pytest

from bdchub.app import stats
from bdchub.core.envelope import Hop
from bdchub.core.errors import ConfigError
from bdchub.core.store import Finish, Store

HM, QD = "320684", "320623"  # 海门, 如东
DAY = 86400.0
#: 2026-03-02 10:00 China time (a Monday)
T0 = calendar.timegm((2026, 3, 2, 2, 0, 0)) * 1.0


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def store(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
    else:
        from tests.integration.test_reliability import _pg_database

        url = _pg_database(request.getfixturevalue("postgres_url"))
    s = Store(url, group_commit=False)
    yield s
    s.close()


def _move(store: Store, tenant: str, no: str, at: float, stage: str, *,
          reg: str = "", client: str = "", channel: str = "", hops: tuple = ()) -> None:
    progress = {"stage": stage, "status": "in_progress", "registration_type": reg,
                "applicant_name": "张*", "applicant_id": "****1234"}
    if client:
        progress.update(submitted_by=client, submitted_channel=channel)
    store.finish(Finish(message_id=f"{no}-{stage}-{at}", route="r", outcome="ok", tenant=tenant,
                        business_no=no, type="legacy.stage_changed", progress=progress,
                        hops=hops, at=at))


def _case(store: Store, tenant: str, no: str, reg: str, channel: str,
          stages: list[tuple[str, float]]) -> None:
    first, *rest = stages
    _move(store, tenant, no, T0 + first[1], first[0], reg=reg, client=f"{channel}_1",
          channel=channel)
    for stage, at in rest:
        _move(store, tenant, no, T0 + at, stage)


@pytest.fixture
def cases(store):
    h = 3600.0
    _case(store, HM, "A1", "200", "bank", [("application", 0), ("acceptance", 1 * h),
                                            ("registration", 5 * h), ("archive", 6 * h)])
    _case(store, HM, "A2", "200", "county_window", [("application", 0), ("acceptance", 2 * h),
                                                     ("registration", 26 * h)])
    _case(store, HM, "A3", "100", "agency", [("application", DAY), ("refusal", DAY + 3 * h)])
    _case(store, HM, "A4", "300", "bank", [("application", 40 * DAY), ("correction", 40 * DAY)])
    _case(store, QD, "B1", "200", "bank", [("application", 0), ("acceptance", 10 * h)])
    return store


def test_applications_are_counted_by_outcome_type_and_channel_within_the_range(cases):
    rows = stats.applications(cases, since=T0 - DAY, until=T0 + 10 * DAY,
                              by=("division", "outcome"))
    assert rows == [
        {"division": QD, "outcome": "accepted", "applications": 1},
        {"division": HM, "outcome": "accepted", "applications": 1},
        {"division": HM, "outcome": "closed", "applications": 1},
        {"division": HM, "outcome": "refused", "applications": 1},
    ]
    by_type = stats.applications(cases, since=T0 - DAY, until=T0 + 10 * DAY, by=("type",))
    assert {r["type"]: r["applications"] for r in by_type} == {"100": 1, "200": 3}
    by_channel = stats.applications(cases, since=T0 - DAY, until=T0 + 50 * DAY,
                                    by=("channel",))
    assert {r["channel"]: r["applications"] for r in by_channel} == {
        "agency": 1, "bank": 3, "county_window": 1}


def test_periods_are_days_weeks_and_months_of_china(cases):
    def count(period: str) -> dict[str, int]:
        rows = stats.applications(cases, since=T0 - DAY, until=T0 + 50 * DAY, by=("period",),
                                  period=period, tenants=[HM])
        return {r["period"]: r["applications"] for r in rows}

    assert count("day") == {"2026-03-02": 2, "2026-03-03": 1, "2026-04-11": 1}
    assert count("week") == {"2026-03-02": 3, "2026-04-06": 1}
    assert count("month") == {"2026-03": 3, "2026-04": 1}


def test_the_tenant_scope_leaves_out_other_tenants(cases):
    rows = stats.applications(cases, since=T0 - DAY, until=T0 + DAY, by=("division",),
                              tenants=[QD])
    assert rows == [{"division": QD, "applications": 1}]
    assert stats.applications(cases, since=T0 - DAY, until=T0 + DAY, by=("division",),
                              tenants=[]) == []
    times = stats.stage_times(cases, since=T0 - DAY, until=T0 + DAY, tenants=[QD])
    assert times == [{"stage": "application", "cases": 1, "p50_s": 36000.0,
                      "p90_s": 36000.0, "max_s": 36000.0}]


def test_time_at_a_stage_is_from_entering_it_to_entering_the_next(cases):
    h = 3600.0
    times = {r["stage"]: r for r in stats.stage_times(cases, since=T0 - DAY,
                                                      until=T0 + 10 * DAY)}
    # application: A1 1h, A2 2h, A3 3h, B1 10h -> nearest rank p50 = 2nd, p90 = 4th
    assert times["application"] == {"stage": "application", "cases": 4, "p50_s": 2 * h,
                                    "p90_s": 10 * h, "max_s": 10 * h}
    # acceptance: A1 4h, A2 24h; B1 has not left it
    assert times["acceptance"]["cases"] == 2
    assert (times["acceptance"]["p50_s"], times["acceptance"]["p90_s"]) == (4 * h, 24 * h)
    assert times["registration"]["cases"] == 1  # A2 is still there
    assert "archive" not in times and "refusal" not in times  # nobody left them


def test_a_stage_reported_again_keeps_the_time_the_case_entered_it(store):
    _case(store, HM, "C1", "200", "bank", [("application", 0), ("acceptance", 100)])
    _move(store, HM, "C1", T0 + 500, "acceptance")  # a poll repeating the stage
    _move(store, HM, "C1", T0 + 1100, "review")
    [acceptance] = [r for r in stats.stage_times(store, since=T0 - 1, until=T0 + DAY)
                    if r["stage"] == "acceptance"]
    assert acceptance["p50_s"] == 1000.0


def test_department_calls_and_failure_rates_per_call_step(store):
    def hop(step: str, outcome: str, at: float) -> Hop:
        return Hop(route="identity", step=step, started_at=T0 + at, duration_ms=5.0,
                   outcome=outcome)

    for i, outcome in enumerate(["ok", "ok", "error", "parked"]):
        store.finish(Finish(message_id=f"m{i}", route="identity", outcome="ok", tenant=HM,
                            business_no=f"D{i}", type="t",
                            hops=(hop("1:map", "ok", i), hop("2:to", outcome, i)), at=T0 + i))
    store.finish(Finish(message_id="q", route="identity", outcome="ok", tenant=QD,
                        business_no="E", type="t", hops=(hop("2:to", "ok", 9),), at=T0 + 9))
    rows = stats.calls(store, since=T0 - 1, until=T0 + DAY, tenants=[HM])
    assert rows == [{"route": "identity", "step": "2:to", "calls": 4, "failed": 2,
                     "failure_rate": 0.5}]
    assert stats.calls(store, since=T0 + DAY, until=T0 + 2 * DAY) == []


def test_a_range_is_bounded_and_ordered():
    assert stats.time_range(None, None, now=1000.0 * DAY) == (970.0 * DAY, 1000.0 * DAY)
    with pytest.raises(ConfigError, match="until"):
        stats.time_range(T0, T0 - 1)


def test_unknown_dimensions_and_periods_are_refused(store):
    with pytest.raises(ConfigError, match="region"):
        stats.applications(store, since=0, until=1, by=("region",))
    with pytest.raises(ConfigError, match="year"):
        stats.applications(store, since=0, until=1, by=("period",), period="year")
