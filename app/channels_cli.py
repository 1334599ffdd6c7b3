"""``hub channel list|suspend|resume``: the direct channels as the registration agency
watches and governs them (guide §三(一)6: banks, developers and agencies submit
directly; the agency tracks, counts and analyses each channel and can close the
channel of one that misbehaves)::

    hub channel list [--json]                       every channel and client, with counts
    hub channel suspend agency_hm --reason "代办材料造假，暂停受理"
    hub channel suspend developer --channel --reason "…"   a whole channel
    hub channel resume agency_hm --reason "整改完毕"

NAME is a client of ``inbound.clients`` or a channel (``county``, ``bank``,
``developer``, ``agency`` …); ``--client`` / ``--channel`` say which when a name is
both. A suspension is kept in the store every hub process shares, with who, when and
why; each process refuses the suspended client's requests (403 ``channel_suspended``,
``web.suspensions``) within ``inbound.suspension_refresh`` seconds, without a
restart. Suspending and resuming are written to the hub's audit log
(``channel.suspended``, ``channel.resumed``).

The counts of ``list`` are the store's, so they cover every process and every day
since the store began: cases each client submitted, refused (不予受理, 不予登记),
archived, and with a dead letter waiting. The inbound API's own counts per channel
(requests accepted, refused by code, errors) are Prometheus metrics
(``bdchub_inbound_channel_*``, ``web.metrics``).
"""

from __future__ import annotations

import getpass
import json
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import click

from bdchub.core.cliopts import CONFIG_OPTION
from bdchub.core.errors import ConfigError
from bdchub.core.i18n import _
from bdchub.web.config_schema import CHANNELS
from bdchub.web.suspensions import resolve, resume, suspend  # the console's too

__all__ = ["channel_group", "listing", "resolve", "resume", "suspend"]

COUNTS = ("cases", "archived", "refused", "dead_letters")


@click.group("channel", help=_("Direct channels: counts per channel and client; suspend or "
                                "resume a client or a whole channel."))
def channel_group() -> None:
    pass


@contextmanager
def _hub(config_path: str) -> Iterator[Any]:
    from bdchub.core.config import load
    from bdchub.routes.runtime import Hub

    config = load(config_path)
    # No key is made here: a new one could not open what the hub sealed.
    hub = Hub.from_config(config, build_connectors=False, create_key=False)
    try:
        yield hub
    finally:
        hub.close()


def listing(clients: Mapping[str, Any], suspensions: list[dict[str, Any]],
            counts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per channel: its suspension, its clients (each with its own suspension and the
    counts of the cases it submitted) and the channel's totals. Clients gone from the
    config but with cases in the store are listed too."""
    held = {(s["kind"], s["name"]): _suspension(s) for s in suspensions}
    by_client: dict[tuple[str, str], dict[str, Any]] = {}
    for name, block in clients.items():
        channel = str(block.get("channel") or "other")
        by_client[(channel, name)] = {"client": name, "description": block.get("description", ""),
                                      "in_config": True, **dict.fromkeys(COUNTS, 0)}
    for row in counts:
        entry = by_client.setdefault((row["channel"], row["client"]), {
            "client": row["client"], "description": "", "in_config": False,
            **dict.fromkeys(COUNTS, 0)})
        for key in COUNTS:
            entry[key] += int(row[key])
    channels = sorted({c for c, _n in by_client} | {n for k, n in held if k == "channel"},
                      key=lambda c: (CHANNELS.index(c) if c in CHANNELS else len(CHANNELS), c))
    out = []
    for channel in channels:
        members = [dict(entry, suspended=held.get(("client", entry["client"])))
                   for (c, _n), entry in sorted(by_client.items()) if c == channel]
        out.append({"channel": channel, "suspended": held.get(("channel", channel)),
                    **{key: sum(m[key] for m in members) for key in COUNTS},
                    "clients": members})
    return out


def _suspension(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"by": row["suspended_by"], "reason": row["reason"], "at": row["suspended_at"],
            "since": _when(row["suspended_at"])}


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(ts)))


def _clients(hub: Any) -> Mapping[str, Any]:
    return (hub.config.get("inbound") or {}).get("clients") or {}


def _refresh(hub: Any) -> float:
    return float((hub.config.get("inbound") or {}).get("suspension_refresh", 5))


@channel_group.command("list", help=_("Every channel and client: suspended or not, and the "
                                      "cases each submitted (archived, refused, with a dead "
                                      "letter)."))
@CONFIG_OPTION
@click.option("--json", "as_json", is_flag=True, help="one JSON document")
def list_command(config_path: str, as_json: bool) -> None:
    with _hub(config_path) as hub:
        rows = listing(_clients(hub), hub.store.suspensions(), hub.store.channel_counts())
    if as_json:
        click.echo(json.dumps({"channels": rows}, ensure_ascii=False, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=_("Direct channels"))
    for header in (_("channel"), _("client"), _("state")):
        table.add_column(header)
    for header in (_("cases"), _("archived"), _("refused cases"), _("dead letters")):
        table.add_column(header, justify="right")
    for channel in rows:
        for member in channel["clients"] or [{"client": "-", **dict.fromkeys(COUNTS, 0),
                                              "suspended": None}]:
            own = member["suspended"] or channel["suspended"]
            state = (_("suspended since {since} by {by}: {reason}", **own) if own
                     else _("open"))
            table.add_row(channel["channel"], member["client"], state,
                          *(str(member[key]) for key in COUNTS))
    Console(width=None if sys.stdout.isatty() else 160).print(table)


@channel_group.command("suspend", help=_("Suspend a client, or a whole channel: its requests "
                                         "are refused (403 channel_suspended) by every hub "
                                         "process until it is resumed."))
@click.argument("name")
@CONFIG_OPTION
@click.option("--reason", required=True, help="why (kept with the suspension and audited)")
@click.option("--by", default=None, help="who suspends it (default: the login name)")
@click.option("--client", "as_client", is_flag=True, help="NAME is a client")
@click.option("--channel", "as_channel", is_flag=True, help="NAME is a channel")
def suspend_command(name: str, config_path: str, reason: str, by: str | None, as_client: bool,
                    as_channel: bool) -> None:
    reason = reason.strip()
    if not reason:
        raise ConfigError(_("give the reason for the suspension (--reason)"))
    with _hub(config_path) as hub:
        kind, name = resolve(name, _clients(hub), client=as_client, channel=as_channel)
        held = suspend(hub, kind, name, by=by or _login(), reason=reason)
        refresh = _refresh(hub)
    what = _("client {name}", name=name) if kind == "client" else _("channel {name}", name=name)
    if held is not None:
        click.echo(_("{what} is already suspended since {since} by {by}: {reason}", what=what,
                     **_suspension(held)))
        return
    click.echo(_("{what} suspended; every hub process refuses its requests within {n} s",
                 what=what, n=_seconds(refresh)))


@channel_group.command("resume", help=_("Resume a suspended client or channel."))
@click.argument("name")
@CONFIG_OPTION
@click.option("--reason", default="", help="why (audited)")
@click.option("--by", default=None, help="who resumes it (default: the login name)")
@click.option("--client", "as_client", is_flag=True, help="NAME is a client")
@click.option("--channel", "as_channel", is_flag=True, help="NAME is a channel")
def resume_command(name: str, config_path: str, reason: str, by: str | None, as_client: bool,
                   as_channel: bool) -> None:
    with _hub(config_path) as hub:
        kind, name = resolve(name, _clients(hub), client=as_client, channel=as_channel)
        lifted = resume(hub, kind, name, by=by or _login(), reason=reason.strip())
        refresh = _refresh(hub)
    what = _("client {name}", name=name) if kind == "client" else _("channel {name}", name=name)
    if lifted is None:
        click.echo(_("{what} is not suspended", what=what))
        return
    click.echo(_("{what} resumed; every hub process takes its requests again within {n} s",
                 what=what, n=_seconds(refresh)))


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name for this uid (a bare container)
        return "-"


def _seconds(value: float) -> str:
    return f"{value:g}"

