"""``hub audit verify [-c config] [--json]``: check the hub's own audit logs.

The logs a hub writes under its audit key (``core.sealing.load_audit_key``):
``audit.jsonl`` in its data folder (``Hub.audit``: inbound requests, queries,
refusals) and the ferry inbox's log when ``bridge.ferry_inbox`` is set. Each is
checked by ``core.audit.AuditLog.report``, the code ``hub bridge audit verify``
runs too: the keyed chain, the anchor at its tail, the writers that never
closed. Like the other one-shot commands it makes no key: without one it says
where it looked (exit 2). Exit 1 when any log has a problem.
"""

from __future__ import annotations

import json
import time

import click

from bdchub.core.cliopts import CONFIG_OPTION
from bdchub.core.errors import HubError, IntegrityError_
from bdchub.core.i18n import _
from bdchub.routes.cli import JSON_OPTION


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
             "problems": [{"line": p.line, "reason": p.reason} for p in r.problems]}
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
