"""Command-line commands of the routes area, wired into ``hub`` by hub.py::

    hub dlq list|show|replay|drop     dead letters (replay resumes at the failed step)
    hub parked list|show              messages parked until their endpoint is back
    hub trace BUSINESS_NO             every step of an application's messages
    hub send TYPE FILE                publish a message (body from a JSON file)

Each takes ``-c/--config`` (default ``config.yaml``) and loads it with
``core.config.load``. Personal data is masked in what is printed. The list and
show commands take ``--json``: one JSON document, keys in English, times in Unix
seconds (docs/operations.md describes each). Lists show the shortest prefix of
each id that opens that row alone (at least 13 characters: UUIDv7 ids of one
millisecond, or derived from one parent, share more); a prefix that starts more
than one id is refused with the candidates (exit 2).
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

#: ``--json`` of every list and show command.
JSON_OPTION = click.option("--json", "as_json", is_flag=True,
                           help=_("print one JSON document (keys in English)"))
#: The fewest characters of an id a list shows.
SHORT_ID = 13
#: Candidates named when a prefix starts several ids.
CANDIDATES = 10


class LookupFailed(HubError):
    """An id typed by the operator designates no row, or several: like a usage
    error, exit 2."""

    exit_code = 2


@contextmanager
def one_shot_hub(config_path: str) -> Iterator[Any]:
    from bdchub.core.config import load

    from .runtime import Hub

    # HubError goes up as it is: ``hub`` prints it as 错误: … (Error: …), translated.
    # No key is made here: a new one could not open what the hub sealed.
    hub = Hub.from_config(load(config_path), build_connectors=False, create_key=False)
    try:
        yield hub
    finally:
        hub.close()


def local_time(ts: float | None) -> str:
    if not ts:
        return "-"
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def echo_json(document: Any) -> None:
    """``document`` as the one JSON document a ``--json`` command prints."""
    click.echo(json.dumps(document, ensure_ascii=False, indent=2, default=str))


def resolve_id(store: Any, table: str, text: str) -> str:
    """The whole id of the row of ``table`` (``dead_letters``, ``parked``) that
    ``text`` (an id or a prefix of one) designates; LookupFailed when none does or
    several do, naming the candidates."""
    rows = store.ids_with_prefix(table, text, limit=CANDIDATES + 1) if text else []
    if len(rows) == 1:
        return str(rows[0]["id"])
    what = _("dead letter") if table == "dead_letters" else _("parked message")
    if not rows:
        if table == "dead_letters":
            raise LookupFailed(_("no dead letter '{id}'", id=text))
        raise LookupFailed(_("no parked message '{id}'", id=text))
    count = (str(len(rows)) if len(rows) <= CANDIDATES
             else _("more than {n}", n=CANDIDATES))
    lines = [_("'{id}' is the start of the ids of {count} rows ({what}); give more of the id:",
               id=text, count=count, what=what)]
    lines += [f"  {r['id']}  {local_time(r['created_at'])}  {r['route']}  {r['step']}  "
              f"{r['business_no'] or '-'}" for r in rows[:CANDIDATES]]
    raise LookupFailed("\n".join(lines))


def masked_envelope(envelope: Any, masking: Any) -> Any:
    """A message as the commands show it: its body masked, and the details of the
    hops it carries, which may quote a value an endpoint refused."""
    if not isinstance(envelope, dict):
        return envelope
    trace = envelope.get("trace")
    return {**envelope, "body": masking(envelope.get("body")),
            **({"trace": [{**hop, "detail": masking.text(hop.get("detail") or "")}
                          if isinstance(hop, dict) else hop for hop in trace]}
               if isinstance(trace, list) else {})}


def text_table(headers: list[str], rows: list[list[str]]) -> str:
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
@JSON_OPTION
def dlq_list(config_path: str, route: str | None, limit: int, as_json: bool) -> None:
    """List dead letters (ids as their shortest unique prefixes; whole with --json)."""
    with one_shot_hub(config_path) as hub:
        rows = hub.dlq_list(route=route, limit=limit)
        short = hub.store.unique_prefixes("dead_letters", [r["id"] for r in rows], SHORT_ID)
    if as_json:
        echo_json({"dead_letters": rows})
        return
    if not rows:
        click.echo(_("no dead letters"))
        return
    click.echo(text_table(
        [_("id"), _("time"), _("route"), _("step"), _("business no"), _("reason"), _("error")],
        [[short[r["id"]], local_time(r["created_at"]), r["route"], r["step"], r["business_no"] or "-",
          r["reason"], (r["last_error"] or "")[:60]] for r in rows]))


@dlq_group.command("show")
@CONFIG_OPTION
@JSON_OPTION
@click.argument("dead_letter_id")
def dlq_show(config_path: str, dead_letter_id: str, as_json: bool) -> None:
    """Show one dead letter (an id or a unique prefix of it), personal data masked."""
    with one_shot_hub(config_path) as hub:
        row = hub.dlq_show(resolve_id(hub.store, "dead_letters", dead_letter_id))
    if row is None:  # dropped between the two reads
        raise LookupFailed(_("no dead letter '{id}'", id=dead_letter_id))
    row["envelope"] = masked_envelope(row["envelope"], hub.masking)
    if as_json:
        echo_json(row)
        return
    for key in ("id", "message_id", "route", "step", "type", "tenant", "business_no", "reason",
                "status", "replay_count"):
        click.echo(f"{_(key)}: {row[key]}")
    click.echo(f"{_('time')}: {local_time(row['created_at'])}")
    click.echo(f"{_('last error')}: {row['last_error']}")
    click.echo(json.dumps(row["envelope"], ensure_ascii=False, indent=2))


def _login() -> str:
    """Who runs the command, for the audit log: the operating system's user."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name for this uid (a bare container)
        return "-"


def _audit_dead_letter(hub: Any, event: str, dl_id: str, reason: str, **extra: Any) -> None:
    """``event`` of one dead letter in the hub's audit log, as the console writes it
    (operator, route, step, business number, tenant, reason), the operator being the
    operating system's user and ``via`` the command line."""
    row = hub.store.dead_letter(dl_id) or {"id": dl_id, "route": "", "step": ""}
    hub.audit(event, operator=_login(), via="cli", dead_letter=row["id"], route=row["route"],
              step=row["step"], business_no=row.get("business_no") or "",
              tenant=row.get("tenant") or "", reason=reason, **extra)


REASON_OPTION = click.option("--reason", default="", help=_("why (kept in the audit log)"))


@dlq_group.command("replay")
@CONFIG_OPTION
@click.option("--from-start", is_flag=True,
              help="run the whole route again instead of resuming at the failed step")
@REASON_OPTION
@click.argument("dead_letter_id")
def dlq_replay(config_path: str, from_start: bool, reason: str, dead_letter_id: str) -> None:
    """Send a dead letter (or ``all``) back to its route, to go on at the step that
    failed (the steps before it are not done again). Audited as dead_letter.replayed."""
    with one_shot_hub(config_path) as hub:
        if dead_letter_id != "all":
            dead_letter_id = resolve_id(hub.store, "dead_letters", dead_letter_id)
        replays = hub.dlq_replays(dead_letter_id, from_start=from_start)
        for letter in dict.fromkeys(r["dead_letter"] for r in replays):
            _audit_dead_letter(hub, "dead_letter.replayed", letter, reason.strip(),
                               replays=[r["id"] for r in replays if r["dead_letter"] == letter])
    click.echo(_("replayed {n} message(s)", n=len(replays)))
    for r in replays:
        where = (_("from step {step}", step=r["resumed_at"]) if r["resumed_at"]
                 else _("from the start"))
        click.echo(f"  {r['id']}  {where}")


@dlq_group.command("drop")
@CONFIG_OPTION
@REASON_OPTION
@click.argument("dead_letter_id")
def dlq_drop(config_path: str, reason: str, dead_letter_id: str) -> None:
    """Drop a dead letter for good (it stays in the store, marked dropped). Audited as
    dead_letter.dropped."""
    with one_shot_hub(config_path) as hub:
        dl_id = resolve_id(hub.store, "dead_letters", dead_letter_id)
        dropped = hub.dlq_drop(dl_id)
        if dropped:
            _audit_dead_letter(hub, "dead_letter.dropped", dl_id, reason.strip())
    if not dropped:
        raise HubError(_("dead letter {id} was replayed or dropped already", id=dead_letter_id))
    click.echo(_("dropped {id}", id=dead_letter_id))


@click.command("trace")
@CONFIG_OPTION
@click.option("--tenant", default=None, help="only this county's messages")
@JSON_OPTION
@click.argument("business_no")
def trace_command(config_path: str, tenant: str | None, business_no: str,
                  as_json: bool) -> None:
    """Every step each message of BUSINESS_NO went through, with timings, and the
    verification records kept for it (personal data masked)."""
    with one_shot_hub(config_path) as hub:
        rows = hub.trace(business_no, tenant)
        records = hub.store.verifications_for(business_no, tenant)
        masking = hub.masking
        text = masking.text  # a step's detail may quote a refused ID or phone number
    if not rows and not records:
        raise HubError(_("nothing recorded for business number {no}", no=business_no))
    if as_json:
        echo_json({"business_no": business_no, "tenant": tenant,
                   "hops": [{**r, "detail": text(r["detail"] or "")} for r in rows],
                   "verifications": [{**r, "result": masking(r["result"])} for r in records]})
        return
    if rows:
        click.echo(text_table(
            [_("time"), _("message type"), _("route"), _("step"), _("ms"), _("outcome"),
             _("detail")],
            [[local_time(r["started_at"]), r["type"], r["route"], r["step"],
              f"{r['duration_ms']:.1f}", r["outcome"], text((r["detail"] or "")[:60])]
             for r in rows]))
    if records:
        click.echo("")
        click.echo(_("verification records:"))
        click.echo(text_table(
            [_("time"), _("kind"), _("connector"), _("operation"), _("result")],
            [[local_time(r["created_at"]), r["kind"], r["connector"], r["operation"],
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
    with one_shot_hub(config_path) as hub:
        env = hub.send(message_type, body, tenant=tenant, business_no=business_no)
    click.echo(_("sent {type} {id}", type=env.type, id=env.id))


@click.group("parked", help=_("Parked messages: waiting for their endpoint to come back, "
                              "retried when they come due."))
def parked_group() -> None:
    pass


def _parked_row(row: dict[str, Any], masking: Any) -> dict[str, Any]:
    """A parked row as the commands show it: the error masked (it may quote the value
    the endpoint refused), the lease as ``claimed_until``."""
    return {**{k: v for k, v in row.items() if k != "envelope"},
            "last_error": masking.text(row["last_error"] or "")}


def _due(due_at: float, now: float) -> str:
    left = due_at - now
    if left <= 0:
        return _("due now")
    return _("in {n} s", n=f"{left:.0f}")


@parked_group.command("list", help=_("List parked messages, the next due first: route, step, "
                                     "business number, reason, last error and when each "
                                     "comes due."))
@CONFIG_OPTION
@click.option("--route", default=None, help=_("only this route's parked messages"))
@click.option("--limit", default=100, show_default=True)
@JSON_OPTION
def parked_list(config_path: str, route: str | None, limit: int, as_json: bool) -> None:
    with one_shot_hub(config_path) as hub:
        rows = [_parked_row(r, hub.masking) for r in hub.store.parked_list(
            limit if route is None else 10_000) if route is None or r["route"] == route][:limit]
        short = hub.store.unique_prefixes("parked", [r["id"] for r in rows], SHORT_ID)
        now = hub.engine.clock()
    if as_json:
        echo_json({"at": now, "parked": rows})
        return
    if not rows:
        click.echo(_("no parked messages"))
        return
    click.echo(text_table(
        [_("id"), _("due"), _("route"), _("step"), _("business no"), _("reason"),
         _("parked"), _("error")],
        [[short[r["id"]], f"{local_time(r['due_at'])} ({_due(r['due_at'], now)})", r["route"],
          r["step"], r["business_no"] or "-", r["reason"], str(r["park_count"]),
          (r["last_error"] or "")[:60]] for r in rows]))


@parked_group.command("show", help=_("Show one parked message (an id or a unique prefix of it), "
                                     "personal data masked."))
@CONFIG_OPTION
@JSON_OPTION
@click.argument("parked_id")
def parked_show(config_path: str, parked_id: str, as_json: bool) -> None:
    with one_shot_hub(config_path) as hub:
        row = hub.store.parked_message(resolve_id(hub.store, "parked", parked_id))
        if row is None:  # taken up between the two reads
            raise LookupFailed(_("no parked message '{id}'", id=parked_id))
        shown = _parked_row(row, hub.masking)
        try:
            envelope: Any = json.loads(row["envelope"])
        except ValueError:
            envelope = None
        shown["envelope"] = envelope = masked_envelope(envelope, hub.masking)
        now = hub.engine.clock()
    if as_json:
        echo_json(shown)
        return
    for key in ("id", "message_id", "route", "step", "tenant", "business_no", "reason",
                "park_count"):
        click.echo(f"{_(key)}: {shown[key]}")
    click.echo(f"{_('due')}: {local_time(shown['due_at'])} ({_due(shown['due_at'], now)})")
    click.echo(f"{_('time')}: {local_time(shown['created_at'])}")
    click.echo(f"{_('last error')}: {shown['last_error']}")
    click.echo(json.dumps(envelope, ensure_ascii=False, indent=2))
