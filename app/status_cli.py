"""``hub status [-c config.yaml] [--json]``: the running hub as it sees itself.

Each process of ``hub run`` reports every few seconds into the store its
connectors' breakers and latency and its routes' messages in flight
(``app.status``); this command reads those reports, adds what the store holds
(parked, waiting at an await step, dead letters, per route), the depth of
each route's queue in the broker and which process holds each singleton's lease
(``core.leases``), and prints them. It connects to no endpoint.
Exit 0 while at least one process reports; 1 when none does or every report is
stale (the hub is not running, or stuck): the rest is printed all the same.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from bdchub.core.cliopts import CONFIG_OPTION, LANG_OPTION
from bdchub.core.i18n import _
from bdchub.core.leases import Leases
from bdchub.routes.cli import JSON_OPTION, echo_json, local_time, one_shot_hub, text_table

from .status import status


@click.command("status", short_help=_("The running hub: connectors, breakers, queues."),
               help=_("The running hub's connectors (health, breaker, latency, as "
                                "the hub sees them), and each route's queue depth and "
                                "messages in flight, parked, waiting and dead-lettered; "
                                "exit 1 when the hub is not running."))
@CONFIG_OPTION
@JSON_OPTION
@LANG_OPTION
def status_command(config_path: str, as_json: bool) -> None:
    with one_shot_hub(config_path) as hub:
        hub.declare()  # what the running hub declared: the queues are known by name
        doc = status(hub, hub.store.process_reports(), time.time(), hub.broker.queue_size,
                     leases=Leases(hub.store.engine).held())
    if as_json:
        echo_json(doc)
    else:
        _print(doc)
    if not doc["running"]:
        sys.exit(1)


def _print(doc: dict[str, Any]) -> None:
    fresh = [p for p in doc["processes"] if p["fresh"]]
    if fresh:
        click.echo(_("hub {tenant}: running, {n} process(es), last report {age} s ago",
                     tenant=doc["tenant"], n=len(fresh),
                     age=f"{min(p['age_seconds'] for p in fresh):.0f}"))
    elif doc["processes"]:
        last = doc["processes"][0]
        click.echo(_("hub {tenant}: not running: the last report ({host}, process {pid}) is "
                     "{age} s old, stale after {stale} s", tenant=doc["tenant"],
                     host=last["host"], pid=last["pid"], age=f"{last['age_seconds']:.0f}",
                     stale=f"{last['every'] * 3:.0f}"))
    else:
        click.echo(_("hub {tenant}: not running: no process has reported (hub run reports "
                     "every few seconds)", tenant=doc["tenant"]))
    if doc["processes"]:
        click.echo("")
        click.echo(text_table(
            [_("process"), _("host"), _("pid"), _("started"), _("reported"), _("state")],
            [[p["process"], str(p["host"]), str(p["pid"]), local_time(p["started_at"]),
              local_time(p["reported_at"]), _("fresh") if p["fresh"] else _("stale")]
             for p in doc["processes"]]))
    if doc["singletons"]:
        click.echo("")
        click.echo(_("singletons (run by the process holding the lease):"))
        click.echo(text_table(
            [_("singleton"), _("host"), _("pid"), _("since"), _("lease")],
            [[s["name"], str(s["host"]), str(s["pid"]), local_time(s["taken_at"]),
              _("expires in {n} s unless renewed", n=f"{s['expires_in']:.0f}") if s["held"]
              else _("expired {n} s ago", n=f"{-s['expires_in']:.0f}")]
             for s in doc["singletons"]]))
    click.echo("")
    click.echo(_("connectors:"))
    click.echo(text_table(
        [_("connector"), _("type"), _("health"), _("breaker"), _("latency ms"),
         _("calls (1 min)"), _("errors (1 min)")],
        [[c["name"], c["type"], _label(c["health"]), _breaker(c), _number(c["latency_ms"]),
          str(c["calls_1m"]), str(c["errors_1m"])] for c in doc["connectors"]]))
    click.echo("")
    click.echo(_("routes:"))
    click.echo(text_table(
        [_("route"), _("queue depth"), _("in flight"), _("parked"), _("waiting"),
         _("dead letters")],
        [[r["name"], _number(r["depth"]), _number(r["in_flight"]), str(r["parked"]),
          str(r["waiting"]), str(r["dead_letters"])] for r in doc["routes"]]))


def _label(value: str | None) -> str:
    labels = {"up": _("up"), "degraded": _("degraded"), "down": _("down")}
    return labels.get(value, value) if value else "-"


def _breaker(connector: dict[str, Any]) -> str:
    states = {"closed": _("circuit closed"), "half-open": _("circuit half-open"),
              "open": _("circuit open")}
    text = states.get(connector["breaker"], connector["breaker"] or "-")
    if connector["breaker"] == "open" and connector["retry_in_seconds"]:
        text += " " + _("(trial in {n} s)", n=f"{connector['retry_in_seconds']:.0f}")
    return text


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"
