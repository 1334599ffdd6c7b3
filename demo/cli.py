"""``hub demo``, wired into ``hub`` by hub.py's LAZY_COMMANDS.

    hub demo [--json] [--steps] [--lang en]          sandbox + hub + sample applications,
                                                     live progress, traces, summary
    hub demo --province [--json]                     a province hub and three county hubs
                                                     (demo/province.py)

``hub run`` lives on the assembly floor (``app.cli``); the demo assembles the
same ``app.service.HubService`` around the department sandbox.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from bdchub.core.cliopts import LANG_OPTION, config_option
from bdchub.core.errors import HubError
from bdchub.core.i18n import _

SHIPPED_CONFIG = Path(__file__).resolve().parent.parent / "config.yaml"


def _console(stderr: bool) -> Any:
    from rich.console import Console

    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal:
        console = Console(stderr=stderr, highlight=False, width=140)
    return console


def _clock(ts: float | None) -> str:
    return datetime.fromtimestamp(ts).strftime("%H:%M:%S.%f")[:-3] if ts else "-"


def _runs(trace: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Hops grouped into route runs: one row per (message, route)."""
    runs: dict[tuple[str, str], dict[str, Any]] = {}
    for h in trace:
        key = (h["message_id"], h["route"])
        run = runs.get(key)
        if run is None:
            run = runs[key] = {"start": h["started_at"], "route": h["route"], "type": h["type"],
                               "steps": 0, "ms": 0.0, "outcome": h["outcome"], "detail": ""}
        run["steps"] += 1
        run["ms"] += float(h["duration_ms"] or 0.0)
        run["outcome"] = h["outcome"]
        if h["detail"]:
            run["detail"] = h["detail"]
    return sorted(runs.values(), key=lambda r: r["start"])


def _summarise(record: dict[str, Any]) -> str:
    """One line about a verification record, personal data masked."""
    from bdchub.core.masking import DEFAULT as masked

    r = record.get("result")
    kind = record.get("kind")
    if isinstance(r, dict):
        if kind == "identity":
            return f"{r.get('result_code')} {r.get('result_msg')} (match={r.get('match')})"
        if kind == "household":
            return _("found: {found}, household {no}, {n} members", found=r.get("found"),
                     no=r.get("household_no") or "-", n=len(r.get("entries") or []))
        if kind == "marriage":
            rows = r.get("rows") or []
            last = rows[-1] if rows else {}
            return _("{n} record(s); latest {op} {date} {dept}", n=r.get("total", len(rows)),
                     op=last.get("op_type_name", "-"), date=last.get("op_date", "-"),
                     dept=last.get("dept_name", ""))
        if kind == "business_licence":
            return f"{r.get('company_name')} · {r.get('status')} · {r.get('reg_authority')}"
        if kind == "contract_filing":
            rows = r.get("rows") or []
            first = rows[0] if rows else {}
            return _("{n} filing(s); {no}, {area} m², price {price}", n=r.get("total", len(rows)),
                     no=first.get("filing_no", "-"), area=first.get("area", "-"),
                     price=first.get("price", "-"))
        if kind == "e_licence":
            return f"{r.get('license_type')} {r.get('license_no')} → {r.get('license_id')}"
    text = json.dumps(masked(r), ensure_ascii=False)
    return text[:100]


def _label(msgid: str) -> str:
    return _(msgid)


@click.command("demo")
@config_option(default=None, help="config to run (default: the shipped config.yaml)")
@click.option("--json", "as_json", is_flag=True,
              help="print a JSON summary on stdout (everything else goes to stderr)")
@click.option("--steps", is_flag=True, help="show every step in the traces, not one row per route")
@click.option("--deadline", type=float, default=60.0, show_default=True,
              help="seconds every case has to reach its end state")
@click.option("--keep", is_flag=True, help="keep the demo's broker and store folder")
@click.option("--verbose", is_flag=True, help="log the hub's warnings")
@click.option("--write-samples", "samples_dir", default=None, type=click.Path(file_okay=False),
              help="only write the sample messages as JSON into this folder (for hub send)")
@click.option("--serve", is_flag=True,
              help="after the cases, keep the demo's hub, departments and console running "
                   "until Ctrl-C, and print the console's address and a demo operator's login")
@click.option("--province", is_flag=True,
              help="a province hub and three county hubs (hub run processes) on loopback: "
                   "results dispatched by division code, progress up to the national window")
@LANG_OPTION
def demo_command(config_path: str | None, as_json: bool, steps: bool, deadline: float,
                 keep: bool, verbose: bool, samples_dir: str | None, serve: bool,
                 province: bool) -> None:
    """End-to-end demo: simulated departments, the hub and the county's flows as sample cases."""
    if province:
        _province(as_json, deadline, keep)
        return
    if samples_dir:
        from bdchub.sandbox import Sandbox

        from .samples import write_samples

        # The platform's face comparison and signatures of the fully online sample,
        # made at a sandbox that is never started.
        platform = Sandbox(seed=42)
        try:
            for written in write_samples(samples_dir, platform.data, platform.endpoint("gov")):
                click.echo(_("wrote {file}", file=written))
        finally:
            platform.stop()
        return
    from rich.cells import cell_len
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.rule import Rule

    from .scenario import DemoRun

    logging.basicConfig(level=logging.WARNING if verbose else logging.CRITICAL, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    console = _console(stderr=as_json)
    path = Path(config_path) if config_path else (
        Path("config.yaml") if Path("config.yaml").is_file() else SHIPPED_CONFIG)
    began = time.monotonic()
    with DemoRun(path, keep=keep) as demo:
        hub = demo.service.hub
        console.print(Rule(_("bdc-hub demo — {name} ({tenant})", name=demo.config.get("name", ""),
                             tenant=hub.tenant)))
        console.print(_("config {file}: {routes} routes, {connectors} connectors",
                        file=path, routes=len(hub.routes), connectors=len(hub.connectors)))
        console.print(_("sandbox: {n} simulated departments on loopback (seed {seed})",
                        n=len(demo.sb.names()), seed=demo.sb.seed))
        console.print(_("hub: inbound endpoints on {url}; embedded SQLite broker and store in {dir}",
                        url=demo.service.url, dir=demo.workdir))
        cases = demo.submit_all()
        for line in demo.submissions:
            console.print("  " + line)
        console.print()
        progress = Progress(TextColumn("{task.description}"), BarColumn(bar_width=24),
                            MofNCompleteColumn(), TextColumn("{task.fields[state]}"),
                            TimeElapsedColumn(), console=console, refresh_per_second=8)
        tasks = []
        width = max(cell_len(_label(c.kind)) for c in cases)
        with progress:
            for case in cases:
                label = _label(case.kind)
                tasks.append(progress.add_task(
                    f"{case.ref:<17} {label}{' ' * (width - cell_len(label))}",
                    total=len(case.milestones), state=_("submitted")))
            end = began + deadline
            while True:
                finished = demo.poll()
                for task, case in zip(tasks, cases, strict=True):
                    progress.update(task, completed=case.done,
                                    state=("✓ " if case.reached else "") + _label(case.current))
                if finished or time.monotonic() > end:
                    break
                time.sleep(0.2)
        demo.refresh_all()
        summary = demo.summary()
        _print_traces(console, demo, steps)
        _print_summary(console, demo)
        summary["elapsed"] = round(time.monotonic() - began, 2)
        if serve and summary["ok"]:
            _reached(console, summary)
            _serve(console, demo)
    if as_json:
        click.echo(json.dumps(summary, ensure_ascii=False))
    _refuse_late(summary, deadline, "business_no")
    if not serve:
        _reached(console, summary)


def _province(as_json: bool, deadline: float, keep: bool) -> None:
    from .province import run_province

    console = _console(stderr=as_json)
    summary = run_province(console, deadline=deadline, keep=keep)
    if as_json:
        click.echo(json.dumps(summary, ensure_ascii=False))
    _refuse_late(summary, deadline, "ref")
    _reached(console, summary)


def _refuse_late(summary: dict[str, Any], deadline: float, ref: str) -> None:
    """Exit 1 naming the cases (by their ``ref`` key) that did not make it in time."""
    if summary["ok"]:
        return
    late = [c[ref] for c in summary["cases"] if not c["reached"]]
    raise HubError(_("{n} of {total} cases did not reach their expected end state "
                     "within {seconds:.0f} s: {numbers}", n=len(late),
                     total=len(summary["cases"]), seconds=deadline, numbers=", ".join(late)))


def _reached(console: Any, summary: dict[str, Any]) -> None:
    console.print(_("all {n} cases reached their expected end state in {seconds:.1f} s",
                    n=len(summary["cases"]), seconds=summary["elapsed"]), style="bold green")


def _serve(console: Any, demo: Any) -> None:
    """Keep the demo running for a look at the console: a one-off system administrator
    with a random password (this demo's store only), until Ctrl-C or SIGTERM."""
    import secrets
    import signal
    import threading

    from bdchub.console.accounts import Operators
    from bdchub.core.operators import OperatorStore

    hub = demo.service.hub
    password = "Hub#" + secrets.token_urlsafe(12)
    Operators(OperatorStore(hub.store), hub.audit).add(
        "demo", password, roles=["system_admin"], tenants=[hub.tenant], by="hub demo")
    path = str((demo.config.get("console") or {}).get("path") or "/console").rstrip("/")
    console.print(_("console: {url} (operator demo, password {password}; this demo only)",
                    url=f"{demo.service.url}{path}/", password=password), soft_wrap=True)
    console.print(_("the demo's hub, departments and console keep running: Ctrl-C stops them"))
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_args: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)


def _print_traces(console: Any, demo: Any, steps: bool) -> None:
    from rich.table import Table

    from .scenario import VERIFICATION_KINDS

    shown: set[str] = set()
    for case in demo.cases:
        if case.about in shown or not case.state.trace:
            continue  # a case that follows another shows in that one's trace
        shown.add(case.about)
        trace = case.state.trace
        title = _("{kind} {no} — trace", kind=_label(case.kind), no=case.about)
        table = Table(title=title, title_justify="left", expand=False)
        first = trace[0]["started_at"] if trace else 0.0
        table.add_column(_("at"), justify="right")
        if steps:
            for name in (_("route"), _("step")):
                table.add_column(name)
            table.add_column(_("ms"), justify="right")
            table.add_column(_("outcome"))
            table.add_column(_("detail"), overflow="ellipsis", max_width=48)
            for h in trace:
                table.add_row(f"+{h['started_at'] - first:.3f}s", h["route"], h["step"],
                              f"{h['duration_ms']:.1f}", h["outcome"], (h["detail"] or "")[:48])
        else:
            table.add_column(_("route"))
            table.add_column(_("message type"))
            table.add_column(_("steps"), justify="right")
            table.add_column(_("ms"), justify="right")
            table.add_column(_("outcome"))
            table.add_column(_("detail"), overflow="ellipsis", max_width=40)
            for run in _runs(trace):
                table.add_row(f"+{run['start'] - first:.3f}s", run["route"], run["type"],
                              str(run["steps"]), f"{run['ms']:.1f}", run["outcome"],
                              run["detail"][:40])
        console.print(table)
        if case.state.verifications:
            vt = Table(title=_("verification records (stored with the application)"),
                       title_justify="left")
            vt.add_column(_("time"))
            vt.add_column(_("kind"))
            vt.add_column(_("department call"))
            vt.add_column(_("result"), overflow="fold")
            for v in case.state.verifications:
                vt.add_row(_clock(v.get("created_at")),
                           _label(VERIFICATION_KINDS.get(str(v["kind"]), str(v["kind"]))),
                           f"{v['connector']}.{v['operation']}", _summarise(v))
            console.print(vt)
        console.print()


def _print_summary(console: Any, demo: Any) -> None:
    from rich.table import Table

    from .scenario import KINDS

    table = Table(title=_("summary"), title_justify="left")
    for name in (_("business no"), _("kind"), _("channel"), _("expected end state"),
                 _("reached"), _("time")):
        table.add_column(name)
    for case in demo.cases:
        reached = ("✓ " if case.reached else "✗ ") + _label(case.current)
        table.add_row(case.ref, _label(case.kind), case.channel,
                      _label(KINDS[case.kind].expected),
                      reached, "-" if case.seconds is None else f"{case.seconds:.1f} s",
                      style=None if case.reached else "red")
    console.print(table)
