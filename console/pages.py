"""The console's first pages: login, overview and dead letters (issue #13, item 1).

Server-rendered HTML (every value through ``html.escape``) plus one small script
(``static/console.js``) and Apache ECharts, all served by the hub under the
console's prefix, so the console works without the Internet::

    GET  {path}/                        -> the overview (or the login page)
    GET  {path}/login                   the login page (POST {path}/api/login)
    GET  {path}/overview                the overview (``console.overview``)
    GET  {path}/statistics?since=&until= statistics (``console.statistics``)
    GET  {path}/dead-letters?q=         dead letters (reason, route, step, last error, masked)
    GET  {path}/dead-letters/show?id=   one dead letter, its message masked
    POST {path}/api/dead-letters/replay {"id", "reason"}: as ``hub dlq replay``
    POST {path}/api/dead-letters/drop   {"id", "reason"}: as ``hub dlq drop``

Pages are in the operator's language: Chinese unless ``?lang=en`` (remembered
in a cookie) or the browser asks for English. A page the role does not allow
answers 403 with an HTML page (audited as ``console.refused`` like any
endpoint); without a session it sends the browser to the login page.

The overview reads the running hub's status through ``STATUS_SOURCES`` (the
assembly floor registers ``app.status.status`` there: the same document as
``hub status --json``), since the console sits below that floor.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from bdchub.core import i18n
from bdchub.core.i18n import _
from bdchub.routes.cli import masked_envelope
from bdchub.web.http import Answer, ApiError, json_answer, read_json

from . import audit_page, channels, messages, operators_page, overview, statistics
from .api import ConsoleApp, ConsoleRequest, require
from .api import mount as api_mount
from .frame import (
    LIST_LIMIT,
    MAX_REASON,
    NAV,
    STATIC_FILES,
    e,
    html_answer,
    layout,
    page,
    redirect,
    static,
    text,
    when,
    with_language,
)
from .overview import STATUS_SOURCES  # noqa: F401 - where app.parts registers it


def mount(hub: Any, config: dict[str, Any]) -> tuple[str, ConsoleApp] | None:
    """``console.api.mount`` with the pages added (``web.mounts``)."""
    found = api_mount(hub, config)
    if found is not None:
        install(found[1])
    return found


def install(app: ConsoleApp) -> None:
    """Add the pages, their JSON endpoints and the static files to ``app``."""
    app.add("GET", "/", _root)
    app.add("GET", "/login", _login_page)
    overview.install(app)
    app.add("GET", "/dead-letters", page("messages.read")(_dead_letters_page))
    app.add("GET", "/dead-letters/show", page("messages.read")(_dead_letter_page))
    app.add("POST", "/api/dead-letters/replay", require("dead_letters.replay")(_replay))
    app.add("POST", "/api/dead-letters/drop", require("dead_letters.drop")(_drop))
    for url in STATIC_FILES:
        app.add("GET", url, static)
    app.add("GET", "/statistics", page("statistics.read")(_statistics_page))
    statistics.install(app)
    channels.install(app)
    messages.install(app)
    operators_page.install(app)
    audit_page.install(app)


# ------------------------------------------------------------------ login

@with_language
def _root(req: ConsoleRequest) -> Answer:
    """The first page of the navigation the operator's role may read (an audit
    administrator lands on the audit, not on a page that would refuse them);
    without a session the login page."""
    try:
        operator = req.console.authorize(req, None)
    except ApiError:
        return redirect(req.console.prefix + "/login")
    first = next((href for href, _label, action in NAV if operator.may(action)), "overview")
    return redirect(f"{req.console.prefix}/{first}")


@with_language
def _login_page(req: ConsoleRequest) -> Answer:
    target = req.arg("next")
    if not target.startswith(req.console.prefix + "/") or target.startswith("//"):
        target = req.console.prefix + "/"  # never off the console; / picks the role's page
    return html_answer(200, layout(req, _("Log in"), f"""
<section class="login"><h1>{e(_("Log in"))}</h1>
<form id="login-form" data-next="{e(target)}">
<label>{e(_("Account"))}<input name="username" id="username" autocomplete="username" required></label>
<label>{e(_("Password"))}<input name="password" id="password" type="password"
 autocomplete="current-password" required></label>
<button type="submit" id="login-button">{e(_("Log in"))}</button>
<p class="message" id="login-message" role="alert"></p>
</form></section>"""))


# ------------------------------------------------------------------ statistics

def _statistics_page(req: ConsoleRequest) -> str:
    prefix = req.console.prefix
    since, until = statistics.day_range(req)
    period = req.arg("period") if req.arg("period") in statistics.PERIODS \
        else statistics.DEFAULT_PERIOD
    labels = {"in_progress": _("in progress"), "accepted": _("accepted"),
              "correction": _("correction"), "refused": _("refused"),
              "closed": _("closed (archived)"), "applications": _("applications"),
              "failed": _("could not refresh"), "none": _("none")}
    exports = ""
    language = "en" if i18n.language().startswith("en") else "zh_CN"  # the file's, as the page's
    if req.operator is not None and req.operator.may("statistics.export"):
        exports = "".join(
            f'<a class="export" id="export-{kind}" href="{e(prefix)}/api/statistics/export?'
            f'format={kind}&amp;since={e(since)}&amp;until={e(until)}&amp;period={e(period)}'
            f'&amp;lang={e(language)}">'
            f'{e(text)}</a> '
            for kind, text in (("csv", _("Export CSV")), ("xlsx", _("Export XLSX"))))

    period_names = {"day": _("day"), "week": _("week"), "month": _("month")}
    periods = "".join(f'<option value="{p}"{" selected" if p == period else ""}>'
                      f'{e(period_names[p])}</option>' for p in statistics.PERIODS)

    def table(name: str, heads: list[str]) -> str:
        cells = "".join(f"<th>{e(h)}</th>" for h in heads)
        return f'<table id="{name}"><thead><tr>{cells}</tr></thead><tbody></tbody></table>'

    return layout(req, _("Statistics"), f"""
<h1>{e(_("Statistics"))}</h1>
<form class="search" id="range" method="get">
<label>{e(_("From"))}<input type="date" name="since" id="since" value="{e(since)}"></label>
<label>{e(_("to"))}<input type="date" name="until" id="until" value="{e(until)}"></label>
<label>{e(_("Count by"))} <select name="period" id="period">{periods}</select></label>
<button type="submit">{e(_("Show"))}</button> {exports}</form>
<p>{e(_("Applications"))}: <span id="total">-</span>
<span id="stats-error" class="message"></span></p>
<p id="summary" class="summary"></p>
<section id="statistics" data-since="{e(since)}" data-until="{e(until)}"
 data-period="{e(period)}" data-labels="{e(json.dumps(labels, ensure_ascii=False))}">
<label>{e(_("Chart by"))} <select id="chart-by">
<option value="outcome">{e(_("outcome"))}</option>
<option value="type">{e(_("registration type"))}</option>
<option value="period">{e(_("period"))}</option>
<option value="division">{e(_("division"))}</option>
<option value="channel">{e(_("channel"))}</option></select></label>
<div id="stats-chart" class="chart"></div>
<h2>{e(_("Applications by period"))}</h2>
{table("by-period", [_("period"), _("applications")])}
<h2>{e(_("Applications by division"))}</h2>
{table("by-division", [_("division"), _("applications")])}
<h2>{e(_("Applications by registration type"))}</h2>
{table("by-type", [_("registration type"), _("applications")])}
<h2>{e(_("Applications by channel"))}</h2>
{table("by-channel", [_("channel"), _("applications")])}
<h2>{e(_("Applications by outcome"))}</h2>
{table("by-outcome", [_("outcome"), _("applications")])}
<h2>{e(_("Time at each stage"))}</h2>
{table("stage-times", [_("stage"), _("cases"), _("p50 (s)"), _("p90 (s)"), _("max (s)")])}
<h2>{e(_("Department calls"))}</h2>
{table("calls", [_("route"), _("step"), _("calls"), _("failed"), _("failure rate")])}
</section>""", script=f'<script src="{e(prefix)}/static/vendor/echarts/'
                       'echarts.min.js" defer></script>\n')


# ------------------------------------------------------------------ dead letters

def _visible(req: ConsoleRequest, row: dict[str, Any]) -> bool:
    operator = req.operator
    return operator is not None and operator.sees(str(row.get("tenant") or ""))


def _dead_letters_page(req: ConsoleRequest) -> str:
    hub, prefix = req.console.hub, req.console.prefix
    query = req.arg("q").strip()[:100]
    rows = [r for r in hub.dlq_list(limit=LIST_LIMIT) if _visible(req, r)]
    if query:
        rows = [r for r in rows if query in str(r.get("business_no") or "")
                or query in str(r["id"]) or query in str(r.get("message_id") or "")
                or query == r["route"]]
    body = "".join(f"""<tr data-id="{e(r['id'])}"><td><a href="{e(prefix)}/dead-letters/show?id={
        quote(str(r['id']))}">{e(str(r['id'])[:12])}</a></td><td>{e(when(r['created_at']))}</td>
<td>{e(text(r['route']))}</td><td>{e(text(r['step']))}</td>
<td class="business-no">{e(text(r.get('business_no')))}</td><td>{e(text(r['reason']))}</td>
<td class="error">{e(text(r['last_error'])[:200])}</td></tr>""" for r in rows)
    empty = "" if rows else f'<p id="no-dead-letters">{e(_("no dead letters"))}</p>'
    return layout(req, _("Dead letters"), f"""
<h1>{e(_("Dead letters"))}</h1>
<form class="search" method="get"><label>{e(_("Business number, message id or route"))}
<input name="q" id="search" value="{e(query)}"></label>
<button type="submit">{e(_("Search"))}</button></form>
<p>{e(_("Searched for"))}: <span id="searched">{e(query or "-")}</span></p>
<table id="dead-letters"><thead><tr><th>{e(_("id"))}</th><th>{e(_("time"))}</th>
<th>{e(_("route"))}</th><th>{e(_("step"))}</th><th>{e(_("business no"))}</th>
<th>{e(_("reason"))}</th><th>{e(_("last error"))}</th></tr></thead>
<tbody>{body}</tbody></table>{empty}""")


def _dead_letter_page(req: ConsoleRequest) -> str:
    hub, prefix = req.console.hub, req.console.prefix
    row = hub.dlq_show(req.arg("id")) if req.arg("id") else None
    if row is None:
        return layout(req, _("Dead letters"), '<p id="not-found">'
                      + e(_("no dead letter '{id}'", id=req.arg("id")[:64])) + "</p>")
    req.console.authorize_tenant(req, str(row.get("tenant") or ""))
    envelope = masked_envelope(row["envelope"], hub.masking)  # as hub dlq show
    fields = [(_("id"), row["id"]), (_("message id"), row["message_id"]),
              (_("route"), row["route"]), (_("step"), row["step"]), (_("type"), row["type"]),
              (_("tenant"), row["tenant"]), (_("business no"), row["business_no"]),
              (_("reason"), row["reason"]), (_("status"), row["status"]),
              (_("replays"), row["replay_count"]), (_("time"), when(row["created_at"])),
              (_("last error"), row["last_error"])]
    table = "".join(f"<tr><th>{e(k)}</th><td>{e(text(v))}</td></tr>" for k, v in fields)
    operator = req.operator
    actions = ""
    if row["status"] == "dead" and operator is not None:
        if operator.may("dead_letters.replay"):
            actions += (f'<button type="button" id="replay" data-action="replay">'
                        f'{e(_("Replay"))}</button>')
        if operator.may("dead_letters.drop"):
            actions += (f'<button type="button" id="drop" data-action="drop" class="danger">'
                        f'{e(_("Drop"))}</button>')
    dialog = f"""<dialog id="confirm"><form method="dialog" id="confirm-form">
<p id="confirm-question" data-replay="{e(_("Replay this dead letter? It goes back to its route "
                                          "at the step that failed."))}"
 data-drop="{e(_("Drop this dead letter for good?"))}"></p>
<label>{e(_("Reason (kept in the audit log)"))}<textarea id="confirm-reason" required
 maxlength="{MAX_REASON}"></textarea></label>
<button type="button" id="confirm-ok">{e(_("Confirm"))}</button>
<button type="button" id="confirm-cancel">{e(_("Cancel"))}</button></form></dialog>"""
    return layout(req, _("Dead letters"), f"""
<p><a href="{e(prefix)}/dead-letters">{e(_("All dead letters"))}</a></p>
<h1>{e(_("Dead letter"))} <span id="dead-letter-id">{e(row["id"])}</span></h1>
<table class="fields" id="dead-letter">{table}</table>
<div class="actions" id="actions" data-id="{e(row["id"])}">{actions}</div>
<p class="message" id="action-message" role="status"></p>{dialog}
<h2>{e(_("Message (personal data masked)"))}</h2>
<pre id="envelope">{e(json.dumps(envelope, ensure_ascii=False, indent=2, default=str))}</pre>""")


def _letter_for_action(req: ConsoleRequest) -> tuple[dict[str, Any], str]:
    body = read_json(req)
    dl_id, reason = body.get("id"), body.get("reason")
    if not isinstance(dl_id, str) or not dl_id:
        raise ApiError(400, "bad_request", _("give the dead letter's id"), reason="form")
    if not isinstance(reason, str) or not reason.strip():
        raise ApiError(400, "reason_required", _("give a reason; it is kept in the audit log"),
                       reason="form")
    row = req.console.hub.store.dead_letter(dl_id)
    if row is None:
        raise ApiError(404, "not_found", _("no dead letter '{id}'", id=dl_id[:64]),
                       reason="no_dead_letter")
    req.console.authorize_tenant(req, str(row.get("tenant") or ""))
    if row["status"] != "dead":
        raise ApiError(409, "already_handled",
                       _("dead letter {id} was replayed or dropped already", id=row["id"]),
                       reason="not_dead")
    return row, reason.strip()[:MAX_REASON]


def _audited(req: ConsoleRequest, event: str, row: dict[str, Any], reason: str,
             **extra: Any) -> None:
    assert req.operator is not None
    req.console.audit(event, {"operator": req.operator.username, "dead_letter": row["id"],
                              "route": row["route"], "step": row["step"],
                              "business_no": row.get("business_no") or "",
                              "tenant": row.get("tenant") or "", "reason": reason,
                              "remote": req.remote, **extra})


def _replay(req: ConsoleRequest) -> Answer:
    """``hub dlq replay`` from the console: on at the step that failed."""
    row, reason = _letter_for_action(req)
    replays = req.console.hub.dlq_replays(row["id"])
    _audited(req, "dead_letter.replayed", row, reason,
             replays=[r["id"] for r in replays])
    return json_answer(200, {"status": "replayed", "replays": replays,
                             "message": _("replayed {n} message(s)", n=len(replays))})


def _drop(req: ConsoleRequest) -> Answer:
    """``hub dlq drop`` from the console."""
    row, reason = _letter_for_action(req)
    if not req.console.hub.dlq_drop(row["id"]):
        raise ApiError(409, "already_handled",
                       _("dead letter {id} was replayed or dropped already", id=row["id"]),
                       reason="not_dead")
    _audited(req, "dead_letter.dropped", row, reason)
    return json_answer(200, {"status": "dropped", "message": _("dropped {id}", id=row["id"])})
