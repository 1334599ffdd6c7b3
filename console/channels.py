"""The console's channels and clients page (issue #13, item 1 "Channels and clients";
guide §三(一)6: the registration agency tracks, counts and analyses each channel and
can close the channel of one that misbehaves)::

    GET  {path}/channels?period=day            every channel and client of the config:
                                               requests accepted, refused (4xx) and
                                               errors (5xx), suspended or not
    GET  {path}/api/channels?period=day        the same as JSON (period: hour, day, week)
    POST {path}/api/channels/suspend           {"kind": "client"|"channel", "name", "reason"}
    POST {path}/api/channels/resume            the same; as ``hub channel suspend|resume``

The counts are the store's ``inbound_counts`` (``Store.count_request``, written by the
intake for every request): every process adds its own there within a few seconds
(``REQUEST_COUNTS_EVERY``), so they agree whichever process answers and survive a
restart. A period counts every minute it overlaps.

Suspending and resuming go through ``web.suspensions`` as ``hub channel`` does (the
same row, the same ``channel.suspended`` / ``channel.resumed`` audit events, here
with the operator and the remote address); every hub process then refuses or takes
the client's requests within ``inbound.suspension_refresh`` seconds.

Tenant scope: an operator scoped to some tenants sees the clients that may act for
one of them, and of their counts those of its tenants (and the refusals before a
tenant was known, when the client acts for its tenants only); it may suspend a
client that acts for its tenants only. A whole channel spans tenants: only an
operator of every tenant (``*``) sees requests of no known client or suspends a channel.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from bdchub.core.errors import ConfigError
from bdchub.core.i18n import _
from bdchub.web.config_schema import CHANNELS
from bdchub.web.http import Answer, ApiError, json_answer, read_json
from bdchub.web.suspensions import resolve, resume, suspend

from .accounts import Operator
from .api import ConsoleApp, ConsoleRequest, require
from .frame import MAX_REASON, e, layout, page, text, when

#: The periods an operator may choose, in seconds.
PERIODS = {"hour": 3600.0, "day": 86400.0, "week": 7 * 86400.0}
DEFAULT_PERIOD = "day"
OUTCOMES = ("accepted", "refused", "error")
#: Requests refused before a client was known (an unknown app key).
UNKNOWN = ""


def install(app: ConsoleApp) -> None:
    """Add the page, its JSON and the two actions to ``app``."""
    app.add("GET", "/channels", page("channels.read")(_page))
    app.add("GET", "/api/channels", require("channels.read")(_channels_api))
    app.add("POST", "/api/channels/suspend", require("channels.suspend")(_suspend))
    app.add("POST", "/api/channels/resume", require("channels.suspend")(_resume))


# ------------------------------------------------------------------ tenant scope

def _everywhere(operator: Operator) -> bool:
    return "*" in operator.tenants


def _reaches(operator: Operator, allowed: str) -> bool:
    """Whether a client allowed ``allowed`` (a tenant or a pattern) may act for one
    of the operator's tenants."""
    if not allowed.endswith("*"):
        return operator.sees(allowed)
    stem = allowed[:-1]
    return any(s == "*" or s.startswith(stem) or (s.endswith("*") and stem.startswith(s[:-1]))
               for s in operator.tenants)


def _covers(operator: Operator, tenants: Iterable[str]) -> bool:
    """Whether every tenant a client may act for is one of the operator's."""
    found = list(tenants)
    if _everywhere(operator):
        return True
    return bool(found) and all(
        operator.sees(t) if not t.endswith("*")
        else any(s.endswith("*") and t[:-1].startswith(s[:-1]) for s in operator.tenants)
        for t in found)


# ------------------------------------------------------------------ the data

def _clients(req: ConsoleRequest) -> Mapping[str, Any]:
    config = getattr(req.console.hub, "config", None) or {}
    return (config.get("inbound") or {}).get("clients") or {}


def _period(req: ConsoleRequest, *, strict: bool) -> str:
    chosen = req.arg("period")[:16] or DEFAULT_PERIOD
    if chosen in PERIODS:
        return chosen
    if strict:
        raise ApiError(400, "bad_period", _("choose the period: {periods}",
                                            periods=", ".join(PERIODS)), reason="form")
    return DEFAULT_PERIOD


def _suspension(row: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {"by": row["suspended_by"], "reason": row["reason"], "at": row["suspended_at"],
            "since": when(row["suspended_at"])}


def _zero() -> dict[str, Any]:
    return {"accepted": 0, "refused": 0, "errors": 0, "codes": {}}


def channels(req: ConsoleRequest, period: str) -> dict[str, Any]:
    """Every channel with its clients (those of the config the operator may see, and
    any other the store counted), each with its counts over ``period`` and its
    suspension; the channel's totals."""
    operator = req.operator
    assert operator is not None
    store = req.console.hub.store
    now = req.console.clock()
    store.flush_request_counts()  # this process's counts too, not only the others'
    counted = store.request_counts(now - PERIODS[period])
    configured = _clients(req)
    held = {(s["kind"], s["name"]): s for s in store.suspensions()}

    members: dict[str, dict[str, Any]] = {}
    for name, block in configured.items():
        tenants = [str(t) for t in block.get("tenants") or []]
        if not any(_reaches(operator, t) for t in tenants):
            continue
        members[name] = {"client": name, "channel": str(block.get("channel") or "other"),
                         "description": str(block.get("description") or ""),
                         "tenants": tenants, "enabled": bool(block.get("enabled", True)),
                         "in_config": True, "covered": _covers(operator, tenants),
                         **_zero()}
    for row in counted:
        name = row["client"]
        entry = members.get(name)
        if entry is None:
            if name in configured:
                continue  # a client of other tenants
            if not _everywhere(operator):
                continue  # gone from the config, or unknown: whose tenants is not known
            entry = members[name] = {"client": name, "channel": row["channel"] or "-",
                                     "description": "", "tenants": [], "enabled": False,
                                     "in_config": False, "covered": True, **_zero()}
        tenant = row["tenant"]
        if not (operator.sees(tenant) if tenant else entry["covered"]):
            continue
        key = {"accepted": "accepted", "refused": "refused", "error": "errors"}.get(
            row["outcome"])
        if key is None:
            continue
        entry[key] += row["count"]
        if row["code"]:
            entry["codes"][row["code"]] = entry["codes"].get(row["code"], 0) + row["count"]

    names = sorted({m["channel"] for m in members.values()}
                   | {n for k, n in held if k == "channel" and _everywhere(operator)},
                   key=lambda c: (CHANNELS.index(c) if c in CHANNELS else len(CHANNELS), c))
    found = []
    for channel in names:
        clients = sorted((m for m in members.values() if m["channel"] == channel),
                         key=lambda m: (m["client"] == UNKNOWN, m["client"]))
        for member in clients:
            member["suspended"] = _suspension(held.get(("client", member["client"])))
            member["may_suspend"] = member["in_config"] and member["covered"]
            member.pop("covered")
        found.append({"channel": channel,
                      "suspended": _suspension(held.get(("channel", channel))),
                      "may_suspend": channel in CHANNELS and _everywhere(operator),
                      **{k: sum(m[k] for m in clients) for k in ("accepted", "refused",
                                                                  "errors")},
                      "clients": clients})
    return {"period": period, "since": now - PERIODS[period], "until": now,
            "suspension_refresh": _refresh(req), "channels": found}


def _channels_api(req: ConsoleRequest) -> Answer:
    return json_answer(200, channels(req, _period(req, strict=True)))


# ------------------------------------------------------------------ the page

def _labels() -> dict[str, str]:
    return {"suspend": _("Suspend"), "resume": _("Resume"),
            "suspend-client": _("Suspend client {name}? Every hub process refuses its "
                                "requests until it is resumed."),
            "suspend-channel": _("Suspend the whole channel {name}? Every client of it is "
                                 "refused until it is resumed."),
            "resume-client": _("Resume client {name}? Its requests are taken again."),
            "resume-channel": _("Resume channel {name}? Its clients' requests are taken "
                                "again.")}


def _codes(codes: Mapping[str, int]) -> str:
    return ", ".join(f"{code} {n}" for code, n in sorted(codes.items(), key=lambda c: -c[1]))


def _state(held: Mapping[str, Any] | None, *, channel: Mapping[str, Any] | None = None) -> str:
    if held is not None:
        return _("suspended since {since} by {by}: {reason}", since=held["since"],
                 by=held["by"], reason=held["reason"])
    if channel is not None:
        return _("suspended with its channel")
    return _("open")


def _button(req: ConsoleRequest, kind: str, name: str, held: Any, allowed: bool) -> str:
    operator = req.operator
    if operator is None or not operator.may("channels.suspend") or not allowed:
        return ""
    action = "resume" if held else "suspend"
    label = _("Resume") if held else _("Suspend")
    return (f'<button type="button" class="{"" if held else "danger"}" '
            f'data-action="{action}" data-kind="{kind}" data-name="{e(name)}">{e(label)}</button>')


def _page(req: ConsoleRequest) -> str:
    period = _period(req, strict=False)
    doc = channels(req, period)
    prefix = req.console.prefix
    periods = {"hour": _("last hour"), "day": _("last 24 hours"), "week": _("last 7 days")}
    choices = " ".join(
        f'<a class="period{" chosen" if p == period else ""}" id="period-{p}" '
        f'href="{e(prefix)}/channels?period={p}">{e(label)}</a>' for p, label in periods.items())
    rows = []
    for channel in doc["channels"]:
        name = channel["channel"]
        rows.append(
            f'<tr class="channel" data-channel="{e(name)}" '
            f'data-state="{"suspended" if channel["suspended"] else "open"}">'
            f'<th colspan="2">{e(_("channel"))} {e(name)}</th>'
            f'<td class="state">{e(_state(channel["suspended"]))}</td>'
            f'<td class="n">{channel["accepted"]}</td><td class="n">{channel["refused"]}</td>'
            f'<td class="n">{channel["errors"]}</td><td></td>'
            f'<td>{_button(req, "channel", name, channel["suspended"], channel["may_suspend"])}'
            f'</td></tr>')
        for m in channel["clients"]:
            client = m["client"]
            shown = client if client != UNKNOWN else _("(no known client)")
            note = m["description"] if m["in_config"] else _("not in the configuration")
            if not m["enabled"] and m["in_config"]:
                note = f'{note} ({_("disabled")})'
            state = _state(m["suspended"], channel=channel["suspended"])
            suspended = m["suspended"] or channel["suspended"]
            rows.append(
                f'<tr class="client" data-client="{e(client)}" data-accepted="{m["accepted"]}" '
                f'data-refused="{m["refused"]}" data-errors="{m["errors"]}" '
                f'data-state="{"suspended" if suspended else "open"}">'
                f'<td class="name">{e(shown)}</td><td>{e(text(note))}</td>'
                f'<td class="state">{e(state)}</td>'
                f'<td class="n accepted">{m["accepted"]}</td>'
                f'<td class="n refused">{m["refused"]}</td>'
                f'<td class="n errors">{m["errors"]}</td>'
                f'<td class="codes">{e(text(_codes(m["codes"])))}</td>'
                f'<td>{_button(req, "client", client, m["suspended"], m["may_suspend"])}</td>'
                f'</tr>')
    empty = "" if rows else f'<p id="no-channels">{e(_("no inbound clients"))}</p>'
    dialog = f"""<dialog id="channel-confirm"><form method="dialog">
<p id="channel-question"></p>
<label>{e(_("Reason (kept in the audit log)"))}<textarea id="channel-reason" required
 maxlength="{MAX_REASON}"></textarea></label>
<button type="button" id="channel-ok">{e(_("Confirm"))}</button>
<button type="button" id="channel-cancel">{e(_("Cancel"))}</button></form></dialog>"""
    return layout(req, _("Channels and clients"), f"""
<h1>{e(_("Channels and clients"))}</h1>
<p class="periods">{e(_("Period"))}: {choices}</p>
<p>{e(_("Requests from {since} to {until}; every hub process adds its counts within a few "
        "seconds. A suspension or resumption reaches every process within {n} s.",
        since=when(doc["since"]), until=when(doc["until"]),
        n=_seconds(req)))}</p>
<p class="message" id="channel-message" role="status"></p>
<table id="channels" data-labels="{e(json.dumps(_labels(), ensure_ascii=False))}">
<thead><tr><th>{e(_("client"))}</th><th>{e(_("description"))}</th><th>{e(_("state"))}</th>
<th>{e(_("requests accepted"))}</th><th>{e(_("refused (4xx)"))}</th><th>{e(_("errors (5xx)"))}</th>
<th>{e(_("refusals by code"))}</th><th></th></tr></thead>
<tbody>{"".join(rows)}</tbody></table>{empty}{dialog}""",
                  script=f'<script src="{e(prefix)}/static/channels.js" defer></script>\n')


# ------------------------------------------------------------------ the actions

def _target(req: ConsoleRequest) -> tuple[str, str, str]:
    """(kind, name, reason) of a suspend or resume request, once the operator may."""
    body = read_json(req)
    kind, name, reason = body.get("kind"), body.get("name"), body.get("reason")
    if kind not in ("client", "channel") or not isinstance(name, str) or not name \
            or len(name) > 200:
        raise ApiError(400, "bad_request", _("give kind (client or channel) and name"),
                       reason="form")
    if not isinstance(reason, str) or not reason.strip():
        raise ApiError(400, "reason_required", _("give a reason; it is kept in the audit log"),
                       reason="form")
    clients = _clients(req)
    try:
        kind, name = resolve(name, clients, client=kind == "client",
                             channel=kind == "channel")
    except ConfigError as err:
        raise ApiError(404, "not_found", str(err), reason="no_channel") from None
    operator = req.operator
    assert operator is not None
    if kind == "client":
        tenants = [str(t) for t in clients[name].get("tenants") or []]
        if not _covers(operator, tenants):
            raise ApiError(403, "tenant_forbidden",
                           _("client {name} also acts for tenants your account is not "
                             "scoped to", name=name), reason="tenant",
                           audit_fields={"client": name})
    elif not _everywhere(operator):
        raise ApiError(403, "tenant_forbidden",
                       _("a whole channel spans tenants: only an operator of every tenant "
                         "may suspend or resume it"), reason="tenant",
                       audit_fields={"channel": name})
    return kind, name, reason.strip()[:MAX_REASON]


def _what(kind: str, name: str) -> str:
    return _("client {name}", name=name) if kind == "client" else _("channel {name}", name=name)


def _suspend(req: ConsoleRequest) -> Answer:
    """``hub channel suspend`` from the console."""
    kind, name, reason = _target(req)
    assert req.operator is not None
    held = suspend(req.console.hub, kind, name, by=req.operator.username, reason=reason,
                   at=req.console.clock(), operator=req.operator.username, remote=req.remote)
    if held is not None:
        found = _suspension(held)
        assert found is not None
        raise ApiError(409, "already_suspended",
                       _("{what} is already suspended since {since} by {by}: {reason}",
                         what=_what(kind, name), since=found["since"], by=found["by"],
                         reason=found["reason"]), reason="already_suspended")
    return json_answer(200, {"status": "suspended", "kind": kind, "name": name,
                             "message": _("{what} suspended; every hub process refuses its "
                                          "requests within {n} s", what=_what(kind, name),
                                          n=_seconds(req))})


def _resume(req: ConsoleRequest) -> Answer:
    """``hub channel resume`` from the console."""
    kind, name, reason = _target(req)
    assert req.operator is not None
    lifted = resume(req.console.hub, kind, name, by=req.operator.username, reason=reason,
                    operator=req.operator.username, remote=req.remote)
    if lifted is None:
        raise ApiError(409, "not_suspended", _("{what} is not suspended",
                                               what=_what(kind, name)), reason="not_suspended")
    return json_answer(200, {"status": "resumed", "kind": kind, "name": name,
                             "message": _("{what} resumed; every hub process takes its "
                                          "requests again within {n} s",
                                          what=_what(kind, name), n=_seconds(req))})


def _refresh(req: ConsoleRequest) -> float:
    config = getattr(req.console.hub, "config", None) or {}
    return float((config.get("inbound") or {}).get("suspension_refresh", 5))


def _seconds(req: ConsoleRequest) -> str:
    return f"{_refresh(req):g}"
