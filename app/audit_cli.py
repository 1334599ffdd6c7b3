"""``hub audit verify [-c config] [--json]``: check the hub's own audit logs.

The logs a hub writes under its audit key (``core.sealing.load_audit_key``):
``audit.jsonl`` in its data folder (``Hub.audit``: inbound requests, queries,
refusals) and the ferry inbox's log when ``bridge.ferry_inbox`` is set. Each is
checked by ``core.audit.AuditLog.report``, the code ``hub bridge audit verify``
runs too: the keyed chain, the anchor at its tail, the writers that never
closed, across the rotated files (``audit:`` in the config). Like the other
one-shot commands it makes no key: without one it says where it looked (exit 2).
Exit 1 when any log has a problem.

``hub audit list`` (newest first, filtered, a page at a time) and ``hub audit
export`` (a range, streamed as CSV or JSON lines) read the hub's own log through
``core.audit_query``, the functions the console's audit page calls too.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from bdchub.core.cliopts import CONFIG_OPTION
from bdchub.core.errors import HubError, IntegrityError_
from bdchub.core.i18n import _
from bdchub.routes.cli import JSON_OPTION, echo_json, text_table

if TYPE_CHECKING:
    from bdchub.core.audit_query import Filters


@click.group("audit", help=_("The hub's own audit log."))
def audit_group() -> None:
    pass


@audit_group.command("verify", help=_("Check every audit log of the hub (chain, key, "
                                      "checkpoints); exit 1 on any problem."))
@CONFIG_OPTION
@JSON_OPTION
def verify_command(config_path: str, as_json: bool) -> None:
    from bdchub.bridge.ferry_inbox import FerryWatch
    from bdchub.core.audit import AuditLog
    from bdchub.core.config import load
    from bdchub.core.datadir import data_dir
    from bdchub.core.sealing import load_audit_key
    from bdchub.routes.runtime import AUDIT_FILE

    config = load(config_path)
    folder = data_dir(config)
    key = load_audit_key(config, folder, create=False)
    paths = [folder / AUDIT_FILE]
    ferry = FerryWatch.audit_path(config, folder)
    if ferry is not None:
        paths.append(ferry)
    present = [p for p in paths if p.exists()]
    if not present:
        raise HubError(_("no audit log at {path}: the hub has written none there yet",
                         path=paths[0]))
    reports = [AuditLog(path, key=key).report() for path in present]
    bad = sum(not report.ok for report in reports)
    if as_json:
        click.echo(json.dumps({"logs": [
            {"path": str(r.path), "ok": r.ok, "records": r.records,
             "last_checkpoint": r.last_checkpoint, "notices": [str(n) for n in r.notices],
             "files": r.files,
            "problems": [{"file": p.file, "line": p.line, "reason": p.reason}
                         for p in r.problems]}
            for r in reports]}, ensure_ascii=False, indent=2))
    for report in [] if as_json else reports:
        path = report.path
        when = (time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(report.last_checkpoint))
                if report.last_checkpoint else "-")
        if report.ok:
            click.echo(_("{path}: intact, {count} records, last checkpoint {time}",
                         path=path, count=report.records, time=when))
        else:
            click.echo(_("{path}: {n} problems", path=path, n=len(report.problems)), err=True)
            for problem in report.problems:
                click.echo(f"  {problem}", err=True)
        for notice in report.notices:
            click.echo(f"  {notice}")
    if bad:
        raise IntegrityError_(_("{n} of {total} audit logs failed verification", n=bad,
                                total=len(present)))


_RELATIVE = re.compile(r"^(\d+)([dhm])$")


def parse_time(text: str | None) -> float | None:
    """``2026-12-01``, ``2026-12-01T08:30`` (local time) or ``7d``/``12h``/``30m`` ago."""
    if not text:
        return None
    m = _RELATIVE.match(text.strip())
    if m:
        return time.time() - int(m.group(1)) * {"d": 86400, "h": 3600, "m": 60}[m.group(2)]
    try:
        return dt.datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        raise click.BadParameter(_("not a time: {text} (2026-12-01, 2026-12-01T08:30, 7d, "
                                   "12h)", text=text)) from None


def _live_log(config_path: str) -> Path:
    from bdchub.core.config import load
    from bdchub.core.datadir import data_dir
    from bdchub.routes.runtime import AUDIT_FILE

    return data_dir(load(config_path)) / AUDIT_FILE


def _filters(since: str | None, until: str | None, actor: str | None = None,
             event: str | None = None, business_no: str | None = None) -> Filters:
    from bdchub.core.audit_query import Filters

    return Filters(since=parse_time(since), until=parse_time(until), actor=actor or None,
                   event=event or None, business_no=business_no or None)


_SINCE = click.option("--since", help=_("from this time: 2026-12-01, 2026-12-01T08:30 or 7d "
                                        "(seven days ago)"))
_UNTIL = click.option("--until", help=_("before this time (same forms as --since)"))


@audit_group.command("list", help=_("Audit records, newest first."))
@CONFIG_OPTION
@_SINCE
@_UNTIL
@click.option("--actor", help=_("the operator or inbound client who acted"))
@click.option("--event", "--action", "event",
              help=_("the event, or a prefix ending in * (inbound.*)"))
@click.option("--business-no", help=_("the business number, exactly as recorded"))
@click.option("--limit", type=click.IntRange(1, 10000), default=50, show_default=True)
@click.option("--before", type=int, help=_("only records numbered below this (the next page)"))
@JSON_OPTION
def list_command(config_path: str, since: str | None, until: str | None, actor: str | None,
                 event: str | None, business_no: str | None, limit: int, before: int | None,
                 as_json: bool) -> None:
    from bdchub.core.audit_query import columns, query, row

    page = query(_live_log(config_path), _filters(since, until, actor, event, business_no),
                 limit=limit, cursor=before)
    if as_json:
        echo_json({"records": page.records, "next_cursor": page.next_cursor})
        return
    if not page.records:
        click.echo(_("no audit records match"))
        return
    keys = [key for key, _heading in columns() if key != "fields"]
    headings = [heading for key, heading in columns() if key != "fields"]
    click.echo(text_table(headings, [[str(row(rec)[key]) for key in keys]
                                     for rec in page.records]))
    if page.next_cursor is not None:
        click.echo(_("more: --before {cursor}", cursor=page.next_cursor))


@audit_group.command("export", help=_("Audit records of a period, oldest first, as CSV or "
                                      "JSON lines (streamed)."))
@CONFIG_OPTION
@_SINCE
@_UNTIL
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv",
              show_default=True)
@click.option("--actor", help=_("the operator or inbound client who acted"))
@click.option("--event", "--action", "event",
              help=_("the event, or a prefix ending in * (inbound.*)"))
@click.option("--business-no", help=_("the business number, exactly as recorded"))
@click.option("--all", "everything", is_flag=True,
              help=_("export from the first record (without --since)"))
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help=_("write to this file (default: standard output)"))
def export_command(config_path: str, since: str | None, until: str | None, fmt: str,
                   actor: str | None, event: str | None, business_no: str | None,
                   everything: bool, output: str | None) -> None:
    from bdchub.core.audit_query import export

    lines = export(_live_log(config_path), _filters(since, until, actor, event, business_no),
                   fmt, everything=everything)
    if output is None:
        for line in lines:
            sys.stdout.write(line)
        return
    count = -1 if fmt == "csv" else 0  # the CSV heading is no record
    with open(output, "w", encoding="utf-8", newline="") as out:
        for line in lines:
            out.write(line)
            count += 1
    click.echo(_("{n} records written to {path}", n=max(count, 0), path=output), err=True)
