"""The console's statistics page (issue #13, item 1 "Statistics")::

    GET {path}/statistics?since=&until=            the page (``console.pages``): a range
                                                   form, a chart, tables
    GET {path}/api/statistics?since=&until=        what the page shows, as JSON (with
                                                   the names of the registration types
                                                   and channels, ``console.codes``)
    GET {path}/api/statistics/export?format=csv    the tables as a download (csv or xlsx)

The figures are those of ``hub stats`` (``app.stats``), read through
``STATS_SOURCES`` (the assembly floor registers ``report`` and ``export`` there,
since the console sits below it), narrowed to the operator's tenants.
Dates are China's calendar days; ``until`` counts its whole day.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select, union

from bdchub.core.errors import ConfigError
from bdchub.core.i18n import _
from bdchub.core.registry import Registry
from bdchub.core.store import hops, progress, stage_entries
from bdchub.web.http import Answer, ApiError, json_answer

from . import codes
from .api import ConsoleApp, ConsoleRequest, require

#: ``report(store, since=, until=, by=, period=, tenants=)`` and ``export(data, by, path)``
#: of ``hub stats`` (``app.stats_cli``): the assembly floor registers them.
STATS_SOURCES: Registry[Callable[..., Any]] = Registry("console statistics source")

CHINA = dt.timezone(dt.timedelta(hours=8))
DEFAULT_DAYS = 30
#: Applications are counted by these at once, then summed per table: region
#: (the division), time (the period), registration type, channel and outcome, as
#: the guide's statistics ask (§五(二)4).
BY = ("division", "period", "type", "channel", "outcome")
#: The period a form may ask for, and the one it gets when it does not.
PERIODS = ("day", "week", "month")
DEFAULT_PERIOD = "day"
FORMATS = {"csv": "text/csv; charset=utf-8",
           "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


def install(app: ConsoleApp) -> None:
    """The JSON and the downloads; the page itself is in ``console.pages``."""
    app.add("GET", "/api/statistics", require("statistics.read")(_statistics_api))
    app.add("GET", "/api/statistics/export", require("statistics.export")(_export))


def _tenants(req: ConsoleRequest) -> list[str] | None:
    """The operator's scope as the tenants the statistics count (None: every tenant).
    A pattern ('3206*') becomes the tenants the store holds that it covers."""
    operator = req.operator
    assert operator is not None
    if "*" in operator.tenants:
        return None
    if not any(s.endswith("*") for s in operator.tenants):
        return list(operator.tenants)
    held = union(*(select(t.c.tenant).distinct() for t in (progress, hops, stage_entries)))
    with req.console.hub.store.engine.connect() as conn:
        return sorted(t for (t,) in conn.execute(held) if t and operator.sees(t))


def day_range(req: ConsoleRequest) -> tuple[str, str]:
    """The form's days: as given, else the last ``DEFAULT_DAYS`` days up to today."""
    today = dt.datetime.now(CHINA).date()
    since = req.arg("since").strip()[:32] or str(today - dt.timedelta(days=DEFAULT_DAYS - 1))
    until = req.arg("until").strip()[:32] or str(today)
    return since, until


def period_of(req: ConsoleRequest) -> str:
    """The form's period (day, week or month) or the default; anything else is refused."""
    period = req.arg("period").strip() or DEFAULT_PERIOD
    if period not in PERIODS:
        raise ApiError(400, "bad_period", _("count by day, week or month"), reason="form")
    return period


def _report(req: ConsoleRequest) -> dict[str, Any]:
    if "report" not in STATS_SOURCES:
        raise ApiError(503, "statistics_unavailable",
                       _("this hub does not keep statistics"), reason="no_stats_source")
    since, until = day_range(req)
    period = period_of(req)
    try:
        return STATS_SOURCES.get("report")(req.console.hub.store, since=since, until=until,
                                           by=BY, period=period, tenants=_tenants(req))
    except ConfigError as err:
        raise ApiError(400, "bad_range", str(err), reason="form") from None


def _summed(rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    counts: dict[str, int] = defaultdict(int)
    for row in rows:
        counts[str(row.get(key) or "")] += int(row["applications"])
    return [{key: k, "applications": n} for k, n in sorted(counts.items())]


def _plain(rows: list[dict[Any, Any]]) -> list[dict[str, Any]]:
    # SQLAlchemy's mappings can be keyed by column objects; JSON wants their names.
    return [{str(getattr(k, "key", k)): v for k, v in r.items()} for r in rows]


def _division_names(found: list[str]) -> dict[str, str]:
    from bdchub.schemas.divisions import lookup

    named = {code: lookup(code) for code in found}
    return {code: division.name for code, division in named.items() if division}


def summary(since: str, until: str, total: int, summed: dict[str, list[dict[str, Any]]],
            names: dict[str, dict[str, str]]) -> str:
    """The statistics as a sentence an operator can paste into a report (the guide
    asks for text beside the charts and tables)."""
    if not total:
        return _("From {since} to {until}: no applications.", since=since, until=until)

    def top(by: str) -> str:
        row = max(summed[by], key=lambda r: int(r["applications"]))
        code = str(row[by] or "-")
        name = names.get(by, {}).get(code, "")
        return _("{what} ({n})", what=f"{code} {name}".strip(), n=row["applications"])

    return _("From {since} to {until}: {total} applications in {divisions} division(s); "
             "most of one registration type: {type}; most through one channel: {channel}; "
             "the busiest {period_word}: {period}.", since=since, until=until, total=total,
             divisions=len(summed["division"]), type=top("type"), channel=top("channel"),
             period_word=_("period"), period=top("period"))


def _statistics_api(req: ConsoleRequest) -> Answer:
    data = _report(req)
    rows = data["applications"]
    summed = {k: _summed(rows, k) for k in BY}
    # the names operators read beside the codes (console.codes, the division list)
    names = {k: codes.names(k, (str(r[k]) for r in summed[k])) for k in codes.KINDS}
    names["division"] = _division_names([str(r["division"]) for r in summed["division"]])
    total = sum(int(r["applications"]) for r in rows)
    since, until = day_range(req)
    return json_answer(200, {"since": data["since"], "until": data["until"],
                             "period": period_of(req),
                             "applications": summed,
                             "names": names,
                             "summary": summary(since, until, total, summed, names),
                             "total": total,
                             "stage_times": _plain(data["stage_times"]),
                             "calls": _plain(data["calls"])})


def _export(req: ConsoleRequest) -> Answer:
    """The tables as ``hub stats --export`` writes them, as a download."""
    kind = req.arg("format") or "csv"
    if kind not in FORMATS:
        raise ApiError(400, "bad_format", _("export as csv or xlsx"), reason="form")
    if "export" not in STATS_SOURCES:
        raise ApiError(503, "statistics_unavailable",
                       _("this hub does not keep statistics"), reason="no_stats_source")
    data = _report(req)
    with tempfile.TemporaryDirectory(prefix="bdchub-stats-") as folder:
        path = Path(folder) / f"statistics.{kind}"
        STATS_SOURCES.get("export")(data, BY, path)
        body = path.read_bytes()
    assert req.operator is not None
    req.console.audit("statistics.exported", {"operator": req.operator.username,
                                              "format": kind, "since": data["since"],
                                              "until": data["until"], "remote": req.remote})
    name = f"statistics-{data['since'][:10]}-{data['until'][:10]}.{kind}"
    return 200, [("Content-Type", FORMATS[kind]), ("Cache-Control", "no-store"),
                 ("Content-Disposition", f'attachment; filename="{name}"'),
                 ("X-Content-Type-Options", "nosniff")], body
