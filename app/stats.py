"""Statistics of applications for the registration agency (guide §五(二)4): by
division, period, registration type, channel and outcome; time at each stage
(p50, p90); calls to departments. Every figure is one GROUP BY in the store
(SQLite or PostgreSQL), over a bounded range, for the tenants an operator may
see, and carries no personal data (counts and durations only).

What the figures are made of:

- An application is a ``progress`` row (one per case). Its time is when an
  inbound client submitted it (``submitters.submitted_at``), or, for a case no
  client opened, when its progress last moved (``progress.updated_at``). Its
  channel is the submitter's; its outcome follows the stage it is at now.
- Time at a stage: the store records when each case first entered each stage
  (``stage_entries``). A case's time at stage S is from its entry into S to its
  entry into the next stage it reached; a case still at S (no later entry) is
  not counted, so the figures describe stages the cases have left. Entries in
  [since, until) are counted. Percentiles are nearest-rank.
- Department calls: the trace hops of ``to`` and ``enrich`` steps (each a call
  to a connector) by route and step; failed means the hop ended ``error``,
  ``parked`` or ``dead_letter``. A hop names its route and step, not the
  connector; ``hub stats`` names the connector and operation from the config.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import and_, case, func, literal, select
from sqlalchemy.sql.elements import ColumnElement

from bdchub.core.errors import ConfigError
from bdchub.core.i18n import _
from bdchub.core.store import Store, hops, progress, stage_entries, submitters

DIMENSIONS = ("division", "period", "type", "channel", "outcome")
PERIODS = ("day", "week", "month")
OUTCOMES = ("in_progress", "accepted", "correction", "refused", "closed")
#: A range not given ends now and starts this long before its end.
DEFAULT_DAYS = 30
#: Periods are calendar days, weeks and months of China (UTC+8, no summer time).
UTC_OFFSET = 8 * 3600
CALL_STEPS = ("to", "enrich")
FAILED_HOPS = ("error", "parked", "dead_letter")


def time_range(since: float | None, until: float | None, *,
               now: float | None = None) -> tuple[float, float]:
    """[since, until): until defaults to now, since to ``DEFAULT_DAYS`` before until."""
    end = until if until is not None else (now if now is not None else time.time())
    start = since if since is not None else end - DEFAULT_DAYS * 86400
    if end <= start:
        raise ConfigError(_("--until must be later than --since"))
    return start, end


def _outcome() -> ColumnElement[str]:
    stage = progress.c.stage
    return case((stage == "archive", "closed"),
                (stage.in_(("refusal", "refusal_to_register")), "refused"),
                (stage == "correction", "correction"),
                (stage.in_(("acceptance", "review", "registration", "certificate")), "accepted"),
                else_="in_progress")


def _period(at: ColumnElement[float], period: str, dialect: str) -> ColumnElement[str]:
    """The calendar day, week (its Monday) or month of ``at`` (epoch seconds), as text."""
    local = at + UTC_OFFSET
    if dialect == "postgresql":
        stamp = func.timezone("UTC", func.to_timestamp(local))
        if period == "week":
            stamp = func.date_trunc("week", stamp)
        return func.to_char(stamp, "YYYY-MM" if period == "month" else "YYYY-MM-DD")
    if period == "month":
        return func.strftime("%Y-%m", local, "unixepoch")
    if period == "week":  # 'weekday 0' moves to the Sunday on or after; 6 days back is Monday
        return func.date(local, "unixepoch", "weekday 0", "-6 days")
    return func.date(local, "unixepoch")


def applications(store: Store, *, since: float, until: float, by: Sequence[str] = ("outcome",),
                 period: str = "month",
                 tenants: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Applications in [since, until) counted by the dimensions ``by``: one row per
    combination with ``applications``, sorted by the dimensions."""
    unknown = [d for d in by if d not in DIMENSIONS]
    if unknown or not by:
        raise ConfigError(_("unknown statistics dimension '{name}'; known: {known}",
                            name=", ".join(unknown), known=", ".join(DIMENSIONS)))
    if period not in PERIODS:
        raise ConfigError(_("unknown period '{name}'; known: {known}", name=period,
                            known=", ".join(PERIODS)))
    at = func.coalesce(submitters.c.submitted_at, progress.c.updated_at)
    columns = {"division": progress.c.tenant, "period": _period(at, period, store.dialect),
               "type": progress.c.registration_type,
               "channel": func.coalesce(submitters.c.channel, literal("")),
               "outcome": _outcome()}
    chosen = [columns[d].label(d) for d in dict.fromkeys(by)]
    q = (select(*chosen, func.count().label("applications"))
         .select_from(progress.outerjoin(submitters, and_(
             submitters.c.tenant == progress.c.tenant,
             submitters.c.business_no == progress.c.business_no)))
         .where(at >= since, at < until))
    q = _scoped(q, progress.c.tenant, tenants)
    q = q.group_by(*chosen).order_by(*chosen)
    with store.engine.connect() as conn:
        return [{**r, "applications": int(r["applications"])} for r in conn.execute(q).mappings()]


def stage_times(store: Store, *, since: float, until: float,
                tenants: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Per stage: ``cases`` that left it, their time there ``p50_s`` / ``p90_s`` /
    ``max_s`` in seconds (see the module's doc for what the time is)."""
    e = stage_entries
    left = func.lead(e.c.entered_at).over(partition_by=(e.c.tenant, e.c.business_no),
                                          order_by=e.c.entered_at)
    # Later entries are needed to close the range's last stages: only the lower bound here.
    inner = _scoped(select(e.c.stage, e.c.entered_at, (left - e.c.entered_at).label("seconds"))
                    .where(e.c.entered_at >= since), e.c.tenant, tenants).subquery()
    ranked = (select(inner.c.stage, inner.c.seconds,
                     func.row_number().over(partition_by=inner.c.stage,
                                            order_by=inner.c.seconds).label("rank"),
                     func.count().over(partition_by=inner.c.stage).label("n"))
              .where(inner.c.entered_at < until, inner.c.seconds.is_not(None))).subquery()

    def nearest_rank(pct: int) -> Any:
        # The value ranked ceil(pct% of n), in integer arithmetic both databases share.
        k = (ranked.c.n * pct + 99) / 100
        return func.max(case((ranked.c.rank <= k, ranked.c.seconds)))

    q = (select(ranked.c.stage, func.count().label("cases"), nearest_rank(50).label("p50_s"),
                nearest_rank(90).label("p90_s"), func.max(ranked.c.seconds).label("max_s"))
         .group_by(ranked.c.stage).order_by(ranked.c.stage))
    with store.engine.connect() as conn:
        return [{"stage": r["stage"], "cases": int(r["cases"]),
                 **{k: round(float(r[k]), 3) for k in ("p50_s", "p90_s", "max_s")}}
                for r in conn.execute(q).mappings()]


def calls(store: Store, *, since: float, until: float,
          tenants: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Per route and call step (``to``, ``enrich``): ``calls``, ``failed`` and
    ``failure_rate`` in [since, until)."""
    kind = case(*((hops.c.step.like(f"%:{k}"), k) for k in CALL_STEPS), else_="")
    # A run's hops are kept under each business number it touched: count a call once.
    one_each = (select(hops.c.message_id, hops.c.route, hops.c.step, hops.c.started_at,
                       hops.c.outcome)
                .where(hops.c.started_at >= since, hops.c.started_at < until,
                       kind != "")
                .distinct())
    one_each = _scoped(one_each, hops.c.tenant, tenants).subquery()
    q = (select(one_each.c.route, one_each.c.step, func.count().label("calls"),
                func.sum(case((one_each.c.outcome.in_(FAILED_HOPS), 1), else_=0))
                .label("failed"))
         .group_by(one_each.c.route, one_each.c.step)
         .order_by(one_each.c.route, one_each.c.step))
    with store.engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(q).mappings()]
    for row in rows:
        row["calls"], row["failed"] = int(row["calls"]), int(row["failed"] or 0)
        row["failure_rate"] = round(row["failed"] / row["calls"], 4) if row["calls"] else 0.0
    return rows


def _scoped(q: Any, column: Any, tenants: Iterable[str] | None) -> Any:
    """``q`` narrowed to ``tenants`` (an operator's scope); None means every tenant."""
    if tenants is None:
        return q
    return q.where(column.in_(list(tenants)))
