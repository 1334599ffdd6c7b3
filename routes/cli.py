"""Command-line commands of the routes area, wired into ``hub`` by hub.py::

    hub dlq list|show|replay|drop     dead letters (replay resumes at the failed step)
    hub trace BUSINESS_NO             every step of an application's messages
    hub send TYPE FILE                publish a message (body from a JSON file)

Each takes ``-c/--config`` (default ``config.yaml``) and loads it with
``core.config.load``. Personal data is masked in what is printed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from bdchub.core.cliopts import CONFIG_OPTION
from bdchub.core.errors import ConfigError, HubError
from bdchub.core.i18n import _


@contextmanager
def _hub(config_path: str) -> Iterator[Any]:
    from bdchub.core.config import load

    from .runtime import Hub

    # HubError goes up as it is: ``hub`` prints it as 错误: … (Error: …), translated.
    # No key is made here: a new one could not open what the hub sealed.
    hub = Hub.from_config(load(config_path), build_connectors=False, create_key=False)
    try:
        yield hub
    finally:
        hub.close()


def _time(ts: float | None) -> str:
    if not ts:
        return "-"
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(_width(h), *(_width(r[i]) for r in rows)) if rows else _width(h)
              for i, h in enumerate(headers)]
    lines = ["  ".join(_pad(h, w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(_pad(c, w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def _width(text: str) -> int:
    # CJK characters take two columns in a terminal.
    return sum(2 if ord(ch) > 0x2E7F else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))


@click.group("dlq")
def dlq_group() -> None:
    """Dead letters: messages no retry will help, kept with their reason."""


@dlq_group.command("list")
@CONFIG_OPTION
@click.option("--route", default=None, help="only this route's dead letters")
@click.option("--limit", default=100, show_default=True)
def dlq_list(config_path: str, route: str | None, limit: int) -> None:
    """List dead letters."""
    with _hub(config_path) as hub:
        rows = hub.dlq_list(route=route, limit=limit)
    if not rows:
        click.echo(_("no dead letters"))
        return
    click.echo(_table(
        [_("id"), _("time"), _("route"), _("step"), _("business no"), _("reason"), _("error")],
        [[r["id"][:13], _time(r["created_at"]), r["route"], r["step"], r["business_no"] or "-",
          r["reason"], (r["last_error"] or "")[:60]] for r in rows]))


@dlq_group.command("show")
@CONFIG_OPTION
@click.argument("dead_letter_id")
def dlq_show(config_path: str, dead_letter_id: str) -> None:
    """Show one dead letter (an id or a unique prefix of it), personal data masked."""
    with _hub(config_path) as hub:
        row = hub.dlq_show(dead_letter_id)
    if row is None:
        raise HubError(_("no dead letter '{id}'", id=dead_letter_id))
    for key in ("id", "message_id", "route", "step", "type", "tenant", "business_no", "reason",
                "status", "replay_count"):
        click.echo(f"{_(key)}: {row[key]}")
    click.echo(f"{_('time')}: {_time(row['created_at'])}")
    click.echo(f"{_('last error')}: {row['last_error']}")
    click.echo(json.dumps(row["envelope"], ensure_ascii=False, indent=2))


@dlq_group.command("replay")
@CONFIG_OPTION
@click.option("--from-start", is_flag=True,
              help="run the whole route again instead of resuming at the failed step")
@click.argument("dead_letter_id")
def dlq_replay(config_path: str, from_start: bool, dead_letter_id: str) -> None:
    """Send a dead letter (or ``all``) back to its route, to go on at the step that
    failed (the steps before it are not done again)."""
    with _hub(config_path) as hub:
        replays = hub.dlq_replays(dead_letter_id, from_start=from_start)
    click.echo(_("replayed {n} message(s)", n=len(replays)))
    for r in replays:
        where = (_("from step {step}", step=r["resumed_at"]) if r["resumed_at"]
                 else _("from the start"))
        click.echo(f"  {r['id']}  {where}")


@dlq_group.command("drop")
@CONFIG_OPTION
@click.argument("dead_letter_id")
def dlq_drop(config_path: str, dead_letter_id: str) -> None:
    """Drop a dead letter for good (it stays in the store, marked dropped)."""
    with _hub(config_path) as hub:
        dropped = hub.dlq_drop(dead_letter_id)
    if not dropped:
        raise HubError(_("no dead letter '{id}'", id=dead_letter_id))
    click.echo(_("dropped {id}", id=dead_letter_id))


@click.command("trace")
@CONFIG_OPTION
@click.option("--tenant", default=None, help="only this county's messages")
@click.argument("business_no")
def trace_command(config_path: str, tenant: str | None, business_no: str) -> None:
    """Every step each message of BUSINESS_NO went through, with timings, and the
    verification records kept for it (personal data masked)."""
    with _hub(config_path) as hub:
        rows = hub.trace(business_no, tenant)
        records = hub.store.verifications_for(business_no, tenant)
        masking = hub.masking
        text = masking.text  # a step's detail may quote a refused ID or phone number
    if not rows and not records:
        raise HubError(_("nothing recorded for business number {no}", no=business_no))
    if rows:
        click.echo(_table(
            [_("time"), _("message type"), _("route"), _("step"), _("ms"), _("outcome"),
             _("detail")],
            [[_time(r["started_at"]), r["type"], r["route"], r["step"],
              f"{r['duration_ms']:.1f}", r["outcome"], text((r["detail"] or "")[:60])]
             for r in rows]))
    if records:
        click.echo("")
        click.echo(_("verification records:"))
        click.echo(_table(
            [_("time"), _("kind"), _("connector"), _("operation"), _("result")],
            [[_time(r["created_at"]), r["kind"], r["connector"], r["operation"],
              json.dumps(masking(r["result"]), ensure_ascii=False)]
             for r in records]))


@click.command("send")
@CONFIG_OPTION
@click.option("--tenant", default=None, help="county division code (default: the config's)")
@click.option("--business-no", default=None, help="default: the body's business_no")
@click.argument("message_type")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
def send_command(config_path: str, tenant: str | None, business_no: str | None,
                 message_type: str, file: str) -> None:
    """Publish a message of MESSAGE_TYPE whose body is the JSON object in FILE."""
    text = Path(file).read_text(encoding="utf-8")
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{file}:{exc.lineno}:{exc.colno}: " + _(
            "not valid JSON: {error}", error=exc.msg)) from exc
    if not isinstance(body, dict):
        raise ConfigError(f"{file}:1:1: " + _("message body must be a JSON object"))
    with _hub(config_path) as hub:
        env = hub.send(message_type, body, tenant=tenant, business_no=business_no)
    click.echo(_("sent {type} {id}", type=env.type, id=env.id))
