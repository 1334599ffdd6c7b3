"""``hub stats``: the statistics of ``app.stats`` as tables (Chinese names by
default), JSON with English keys, or an export file::

    hub stats                                       the last 30 days, by outcome
    hub stats --since 2026-03-01 --until 2026-03-31 --by division --by type
    hub stats --by period --period week --json
    hub stats --tenant 320684 --export 2026-03.xlsx

Dates are China's calendar days; ``--until`` counts its whole day. ``--export``
writes ``.csv`` (the three tables one after another, each with its header) or
``.xlsx`` (a sheet each), row by row.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import click

from bdchub.app import stats
from bdchub.core.cliopts import CONFIG_OPTION
from bdchub.core.errors import ConfigError
from bdchub.core.i18n import _

CHINA = dt.timezone(dt.timedelta(seconds=stats.UTC_OFFSET))
SECTIONS = ("applications", "stage_times", "calls")


def _parse_day(value: str | None, *, end: bool) -> float | None:
    if value is None:
        return None
    try:
        if len(value) == 10:
            day = dt.datetime.combine(dt.date.fromisoformat(value), dt.time(), CHINA)
            return (day + dt.timedelta(days=1 if end else 0)).timestamp()
        stamp = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(_("'{value}' is not a date (YYYY-MM-DD) or time (YYYY-MM-DDTHH:MM)",
                            value=value)) from None
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=CHINA)).timestamp()


def report(store: Any, *, since: str | None, until: str | None, by: Sequence[str],
           period: str, tenants: Sequence[str] | None) -> dict[str, Any]:
    """Everything ``hub stats`` shows, English keys (what ``--json`` prints)."""
    start, end = stats.time_range(_parse_day(since, end=False), _parse_day(until, end=True))
    return {
        "since": dt.datetime.fromtimestamp(start, CHINA).isoformat(),
        "until": dt.datetime.fromtimestamp(end, CHINA).isoformat(),
        "applications": stats.applications(store, since=start, until=end, by=by,
                                           period=period, tenants=tenants),
        "stage_times": stats.stage_times(store, since=start, until=end, tenants=tenants),
        "calls": stats.calls(store, since=start, until=end, tenants=tenants),
    }


@cache
def _code_names(defn: str) -> dict[str, str]:
    """Chinese names of a code list from its schema's description ("100 首次登记，…")."""
    from bdchub.schemas import catalog

    text = catalog.load("common")["$defs"][defn]["description"].split("：", 1)[-1]
    return dict(re.findall(r"([A-Za-z0-9_]+) ([^，,]+)", text))


def _outcome_names() -> dict[str, str]:
    return {"in_progress": _("in progress"), "accepted": _("accepted"),
            "correction": _("correction"), "refused": _("refused"),
            "closed": _("closed (archived)")}


def _named(key: str, value: Any) -> Any:
    """A value as an operator reads it: codes with their Chinese names."""
    if key in ("type", "channel"):
        # The console's names (console.codes): an inbound client's channel too, in
        # the operator's language.
        from bdchub.console.codes import names

        return f"{value} {names(key, [value]).get(value, '')}".strip() or "-"
    if key == "stage":
        return f"{value} {_code_names('stage').get(value, '')}".strip() or "-"
    if key == "outcome":
        return _outcome_names().get(value, value)
    if key == "division":
        from bdchub.schemas.divisions import lookup

        division = lookup(value)
        return f"{value} {division.name}" if division else value
    return value


def _headers() -> dict[str, str]:
    return {"division": _("division"), "period": _("period"), "type": _("registration type"),
            "channel": _("channel"), "outcome": _("outcome"), "applications": _("applications"),
            "stage": _("stage"), "cases": _("cases"), "p50_s": _("p50 (s)"),
            "p90_s": _("p90 (s)"), "max_s": _("max (s)"), "route": _("route"),
            "step": _("step"), "calls": _("calls"), "failed": _("failed"),
            "failure_rate": _("failure rate")}


def _titles() -> dict[str, str]:
    return {"applications": _("Applications"), "stage_times": _("Time at each stage"),
            "calls": _("Department calls")}


def _columns(section: str, rows: Sequence[Mapping[str, Any]], by: Sequence[str]) -> list[str]:
    if rows:
        return list(rows[0])
    return {"applications": [*dict.fromkeys(by), "applications"],
            "stage_times": ["stage", "cases", "p50_s", "p90_s", "max_s"],
            "calls": ["route", "step", "calls", "failed", "failure_rate"]}[section]


def _table_rows(data: Mapping[str, Any], by: Sequence[str]
                ) -> Iterator[tuple[str, list[str], Iterator[list[Any]]]]:
    """Each section: its title, its translated header and its rows with names."""
    heads = _headers()
    for section in SECTIONS:
        rows = data[section]
        cols = _columns(section, rows, by)
        yield (_titles()[section], [heads.get(c, c) for c in cols],
               ([_named(c, r[c]) for c in cols] for r in rows))


def export(data: Mapping[str, Any], by: Sequence[str], path: Path) -> None:
    """Write ``data`` to ``path`` (.csv or .xlsx), a row at a time."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open("w", newline="", encoding="utf-8-sig") as f:  # BOM: Excel reads UTF-8
            writer = csv.writer(f)
            for i, (title, header, rows) in enumerate(_table_rows(data, by)):
                if i:
                    writer.writerow([])
                writer.writerow([title])
                writer.writerow(header)
                writer.writerows(rows)
        return
    if suffix == ".xlsx":
        from openpyxl import Workbook

        book = Workbook(write_only=True)
        for title, header, rows in _table_rows(data, by):
            sheet = book.create_sheet(title)
            sheet.append(header)
            for row in rows:
                sheet.append(row)
        book.save(path)
        return
    raise ConfigError(_("cannot export to '{path}': give a .csv or .xlsx file", path=path))


@contextmanager
def _store(config_path: str) -> Iterator[Any]:
    from bdchub.app.channels_cli import _hub

    with _hub(config_path) as hub:
        yield hub.store


@click.command("stats", help=_("Statistics of applications: by division, period, registration "
                               "type, channel and outcome; time at each stage; department "
                               "calls."))
@CONFIG_OPTION
@click.option("--since", help=_("first day (YYYY-MM-DD, China time); default 30 days before "
                                "--until"))
@click.option("--until", help=_("last day, counted whole; default now"))
@click.option("--by", "by", multiple=True, type=click.Choice(stats.DIMENSIONS),
              help=_("count applications by this (repeatable); default outcome"))
@click.option("--period", type=click.Choice(stats.PERIODS), default="month", show_default=True,
              help=_("the period of --by period"))
@click.option("--tenant", "tenants", multiple=True, help=_("only this tenant (repeatable)"))
@click.option("--json", "as_json", is_flag=True, help=_("print JSON"))
@click.option("--export", "export_to", type=click.Path(dir_okay=False, path_type=Path),
              help=_("write the tables to FILE.csv or FILE.xlsx"))
def stats_command(config_path: str, since: str | None, until: str | None, by: tuple[str, ...],
                  period: str, tenants: tuple[str, ...], as_json: bool,
                  export_to: Path | None) -> None:
    by = by or ("outcome",)
    if export_to is not None and export_to.suffix.lower() not in (".csv", ".xlsx"):
        raise ConfigError(_("cannot export to '{path}': give a .csv or .xlsx file",
                            path=export_to))
    with _store(config_path) as store:
        data = report(store, since=since, until=until, by=by, period=period,
                      tenants=list(tenants) or None)
    if export_to is not None:
        export(data, by, export_to)
        click.echo(_("written: {path}", path=export_to))
        return
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    click.echo(_("From {since} to {until}", since=data["since"], until=data["until"]))
    for title, header, rows in _table_rows(data, by):
        click.echo(f"\n{title}")
        lines = [header, *([str(v) for v in row] for row in rows)]
        widths = [max(_width(line[i]) for line in lines) for i in range(len(header))]
        for line in lines:
            click.echo("  ".join(v + " " * (w - _width(v)) for v, w in zip(line, widths, strict=True)))
        if len(lines) == 1:
            click.echo(_("(none)"))


def _width(text: str) -> int:
    """Columns ``text`` takes on a terminal: Chinese characters take two."""
    return sum(2 if ord(ch) > 0x2E7F else 1 for ch in text)
