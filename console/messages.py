"""The console's messages pages (issue #13, item 1 "Messages")::

    GET  {path}/messages?q=&by=          search cases by business number, message id or
                                         applicant ID number (by its keyed hash only)
    GET  {path}/messages/show?tenant=&business_no=[&message_id=]   (or ?message_id=)
                                         a case's trace with timings, its verification
                                         records and what of it crossed the bridge
    GET  {path}/parked                   parked messages: route, step, error, count, due
    GET  {path}/parked/show?id=          one parked message, its content masked
    POST {path}/api/parked/retry         {"id", "reason"}: deliver it now, not when due

Everything is narrowed to the operator's tenants. An applicant's ID number is
looked up only through ``Hub.progress_by_applicant`` (the keyed hash the
progress rows keep), is never written anywhere, and is shown back masked.

The bridge's crossings of a case are what the store holds of them under its
business number: out through the one-way gate, the verification record a
``diode`` connector's call keeps (``record: diode_transfer`` in flow g: each
object's reference, size and hash, as the sender's audit log names them); in,
the messages the bridge published (``bridge.message_received`` /
``bridge.file_received``, from a ferry disc or a diode inbox) that a route ran
for the case. The bridge's own audit logs and the ferry's ledger know batches
and objects, not cases, so they are not read here.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from sqlalchemy import func, select

from bdchub.bridge.publish import FILE_RECEIVED, MESSAGE_RECEIVED
from bdchub.core.i18n import _
from bdchub.core.store import hops, progress
from bdchub.routes.cli import masked_envelope
from bdchub.web.http import Answer, ApiError, json_answer, read_json

from .api import ConsoleApp, ConsoleRequest, require
from .frame import LIST_LIMIT, MAX_REASON, e, layout, page, text, when

MAX_QUERY = 64  # longer than any business number, message id or ID number
RESULT_LIMIT = 50
TRACE_LIMIT = 2000
SEARCH_BY = ("business_no", "message_id", "applicant_id")
BRIDGE_TYPES = (MESSAGE_RECEIVED, FILE_RECEIVED)


def install(app: ConsoleApp) -> None:
    """Add the messages and parked pages and the retry-now action to ``app``."""
    app.add("GET", "/messages", page("messages.read")(_search_page))
    app.add("GET", "/messages/show", page("messages.read")(_case_page))
    app.add("GET", "/parked", page("messages.read")(_parked_page))
    app.add("GET", "/parked/show", page("messages.read")(_parked_one_page))
    app.add("POST", "/api/parked/retry", require("parked.retry")(_retry))


# ------------------------------------------------------------------ scope and look-ups

def _sees(req: ConsoleRequest, tenant: Any) -> bool:
    return req.operator is not None and req.operator.sees(str(tenant or ""))


def _held_tenants(req: ConsoleRequest) -> list[str]:
    """The tenants with cases in the store that the operator may see."""
    with req.console.hub.store.engine.connect() as conn:
        held = conn.execute(select(progress.c.tenant).distinct()).scalars().all()
    return sorted(t for t in held if t and _sees(req, t))


def _message_cases(req: ConsoleRequest, message_id: str) -> list[dict[str, Any]]:
    """(tenant, business_no, last hop) of every case a message's hops name."""
    q = (select(hops.c.tenant, hops.c.business_no, func.max(hops.c.started_at).label("at"))
         .where(hops.c.message_id == message_id)
         .group_by(hops.c.tenant, hops.c.business_no).limit(RESULT_LIMIT))
    with req.console.hub.store.engine.connect() as conn:
        return [dict(r) for r in conn.execute(q).mappings()]


def _business_no_cases(req: ConsoleRequest, business_no: str) -> list[dict[str, Any]]:
    q = (select(hops.c.tenant, hops.c.business_no, func.max(hops.c.started_at).label("at"))
         .where(hops.c.business_no == business_no)
         .group_by(hops.c.tenant, hops.c.business_no).limit(RESULT_LIMIT))
    with req.console.hub.store.engine.connect() as conn:
        found = {(r["tenant"], r["business_no"]): dict(r) for r in conn.execute(q).mappings()}
        # A case whose progress came without hops of its own (a stage from a poll).
        for tenant in conn.execute(select(progress.c.tenant).where(
                progress.c.business_no == business_no).limit(RESULT_LIMIT)).scalars():
            found.setdefault((tenant, business_no),
                             {"tenant": tenant, "business_no": business_no, "at": None})
    return list(found.values())


def _case_row(req: ConsoleRequest, tenant: str, business_no: str,
              at: float | None = None, message_id: str = "") -> dict[str, Any]:
    """A result row: the case's progress as the store keeps it (already masked)."""
    row = req.console.hub.store.progress(tenant, business_no) if business_no else None
    row = row or {}
    applicant = " ".join(v for v in (row.get("applicant_name"), row.get("applicant_id")) if v)
    return {"tenant": tenant, "business_no": business_no, "stage": row.get("stage") or "",
            "registration_type": row.get("registration_type") or "", "applicant": applicant,
            "updated_at": max(row.get("updated_at") or 0, at or 0) or None,
            "message_id": message_id}


def _search(req: ConsoleRequest, by: str, query: str) -> list[dict[str, Any]]:
    hub = req.console.hub
    if by == "applicant_id":
        rows = []
        for tenant in _held_tenants(req):
            for case in hub.progress_by_applicant(tenant, query):  # masked by the hub
                applicant = case.get("applicant") or {}
                rows.append({"tenant": case["tenant"], "business_no": case["business_no"],
                             "stage": case["stage"],
                             "registration_type": case["registration_type"],
                             "applicant": " ".join(v for v in (applicant.get("name"),
                                                               applicant.get("id_number")) if v),
                             "updated_at": case["updated_at"], "message_id": ""})
        return rows[:RESULT_LIMIT]
    if by == "message_id":
        found = _message_cases(req, query)
        return [_case_row(req, c["tenant"], c["business_no"], c["at"], query)
                for c in found if _sees(req, c["tenant"])]
    return [_case_row(req, c["tenant"], c["business_no"], c["at"])
            for c in _business_no_cases(req, query) if _sees(req, c["tenant"])]


def _case_url(req: ConsoleRequest, row: dict[str, Any]) -> str:
    params = [("tenant", row["tenant"])]
    if row.get("business_no"):
        params.append(("business_no", row["business_no"]))
    if row.get("message_id"):
        params.append(("message_id", row["message_id"]))
    return f"{req.console.prefix}/messages/show?{urlencode(params)}"


# ------------------------------------------------------------------ search

def _search_page(req: ConsoleRequest) -> str:
    by = req.arg("by") if req.arg("by") in SEARCH_BY else "business_no"
    query = req.arg("q").strip()[:MAX_QUERY]
    rows = _search(req, by, query) if query else []
    masking = req.console.hub.masking
    # An ID number is never shown back in clear, not even to the one who typed it.
    shown = masking.id_number(query) if by == "applicant_id" else query
    labels = {"business_no": _("business no"), "message_id": _("message id"),
              "applicant_id": _("applicant ID number")}
    options = "".join(f'<option value="{k}"{" selected" if k == by else ""}>{e(v)}</option>'
                      for k, v in labels.items())
    body = "".join(f"""<tr data-tenant="{e(r['tenant'])}" data-business-no="{e(r['business_no'])}">
<td>{e(text(r['tenant']))}</td><td class="business-no"><a href="{e(_case_url(req, r))}">{
        e(text(r['business_no'] or r['message_id']))}</a></td><td>{e(text(r['stage']))}</td>
<td>{e(text(r['registration_type']))}</td><td class="applicant">{e(text(r['applicant']))}</td>
<td>{e(when(r['updated_at']))}</td></tr>""" for r in rows)
    empty = ("" if rows or not query
             else f'<p id="no-cases">{e(_("no case found"))}</p>')
    found = layout(req, _("Messages"), f"""
<h1>{e(_("Messages"))}</h1>
<form class="search" method="get" id="message-search">
<label>{e(_("Search by"))} <select name="by" id="search-by">{options}</select></label>
<input name="q" id="search" maxlength="{MAX_QUERY}" value="{e("" if by == "applicant_id" else query)}"
 autocomplete="off"><button type="submit">{e(_("Search"))}</button></form>
<p>{e(_("Searched for"))}: <span id="searched">{e(shown or "-")}</span></p>
<table id="cases"><thead><tr><th>{e(_("tenant"))}</th><th>{e(_("business no"))}</th>
<th>{e(_("stage"))}</th><th>{e(_("registration type"))}</th><th>{e(_("applicant"))}</th>
<th>{e(_("last update"))}</th></tr></thead><tbody>{body}</tbody></table>{empty}
<p><a href="{e(req.console.prefix)}/parked">{e(_("Parked messages"))}</a></p>""")
    return _without_id_number(found) if by == "applicant_id" else found


def _without_id_number(found: str) -> str:
    """The page without the searched ID number in the language switch's link (which
    repeats the page's query): the page holds it nowhere."""
    def drop_query(match: re.Match[str]) -> str:
        url = html.unescape(match.group(2))
        path, _sep, query = url.partition("?")
        kept = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != "q"]
        return f'{match.group(1)}"{e(path + "?" + urlencode(kept))}"'
    return re.sub(r'(id="lang-switch" href=)"([^"]*)"', drop_query, found, count=1)


# ------------------------------------------------------------------ one case

def _case_page(req: ConsoleRequest) -> str:
    hub = req.console.hub
    message_id = req.arg("message_id").strip()[:MAX_QUERY]
    business_no = req.arg("business_no").strip()[:MAX_QUERY]
    tenant = req.arg("tenant").strip()[:6]
    if message_id and not (tenant and business_no):
        found = _message_cases(req, message_id)
        if found:
            tenant, business_no = found[0]["tenant"], found[0]["business_no"]
    tenant = tenant or str(getattr(hub, "tenant", "") or "")
    req.console.authorize_tenant(req, tenant)  # another tenant's case: 403, audited
    if business_no:
        trace = hub.store.trace(business_no, tenant, limit=TRACE_LIMIT)
        records = hub.store.verifications_for(business_no, tenant)
    else:  # a message of no case: only its own hops
        trace = [h for h in _message_hops(req, message_id) if h["tenant"] == tenant]
        records = []
    if not trace and not records:
        return layout(req, _("Messages"), '<p id="not-found">' + e(
            _("nothing recorded for business number {no}", no=business_no or message_id))
            + "</p>")
    masking = hub.masking
    case = _case_row(req, tenant, business_no)
    fields = [(_("tenant"), tenant), (_("business no"), business_no),
              (_("stage"), case["stage"]), (_("registration type"), case["registration_type"]),
              (_("applicant"), case["applicant"]), (_("last update"), when(case["updated_at"]))]
    head = "".join(f"<tr><th>{e(k)}</th><td>{e(text(v))}</td></tr>" for k, v in fields)
    hop_rows, previous = [], None
    for h in trace:
        since = "-" if previous is None else f"+{h['started_at'] - previous:.3f} s"
        previous = h["started_at"]
        mine = ' class="this-message"' if message_id and h["message_id"] == message_id else ""
        hop_rows.append(f"""<tr{mine} data-route="{e(h['route'])}" data-outcome="{e(h['outcome'])}">
<td>{e(when(h['started_at']))}</td><td>{e(h['type'])}</td><td>{e(h['route'])}</td>
<td>{e(h['step'])}</td><td>{e(h['outcome'])}</td><td>{h['duration_ms']:.1f}</td>
<td>{e(since)}</td><td class="error">{e(masking.text(h['detail'] or '')[:300])}</td></tr>""")
    record_rows = "".join(f"""<tr data-kind="{e(r['kind'])}"><td>{e(when(r['created_at']))}</td>
<td>{e(r['kind'])}</td><td>{e(r['connector'])}</td><td>{e(r['operation'])}</td>
<td class="error">{e(json.dumps(masking(r['result']), ensure_ascii=False, default=str)[:600])}</td>
</tr>""" for r in records)
    crossings = _crossings(hub, trace, records)
    crossing_rows = "".join(f"""<tr data-way="{e(c['way'])}"><td>{e(when(c['at']))}</td>
<td>{e(c['label'])}</td><td>{e(c['via'])}</td><td class="error">{e(c['what'])}</td>
<td>{e(c['ref'])}</td></tr>""" for c in crossings)
    parked_here = [p for p in hub.store.parked_list(LIST_LIMIT)
                   if p["tenant"] == tenant and business_no and p["business_no"] == business_no]
    parked_links = "".join(
        f'<li><a href="{e(req.console.prefix)}/parked/show?id={quote(p["id"])}">'
        f'{e(p["route"])} · {e(p["step"])} · {e(when(p["due_at"]))}</a></li>'
        for p in parked_here)

    def table(name: str, heads: list[str], rows: str, none: str) -> str:
        if not rows:
            return f'<p id="{name}-none">{e(none)}</p>'
        cells = "".join(f"<th>{e(h)}</th>" for h in heads)
        return f'<table id="{name}"><thead><tr>{cells}</tr></thead><tbody>{rows}</tbody></table>'

    return layout(req, _("Messages"), f"""
<p><a href="{e(req.console.prefix)}/messages">{e(_("Search messages"))}</a></p>
<h1>{e(_("Case"))} <span id="case-business-no">{e(business_no or message_id)}</span></h1>
<table class="fields" id="case">{head}</table>
{f'<h2>{e(_("Parked messages"))}</h2><ul id="case-parked">{parked_links}</ul>'
 if parked_links else ""}
<h2>{e(_("Trace"))}</h2>
{table("trace", [_("time"), _("message type"), _("route"), _("step"), _("outcome"), _("ms"),
                 _("since the previous step"), _("detail")], "".join(hop_rows), "-")}
<h2>{e(_("Verification records"))}</h2>
{table("verifications", [_("time"), _("kind"), _("connector"), _("operation"), _("result")],
       record_rows, _("no verification records"))}
<h2>{e(_("Bridge crossings"))}</h2>
{table("crossings", [_("time"), _("direction"), _("connector or route"), _("what crossed"),
                     _("reference")], crossing_rows, _("nothing of this case crossed the bridge"))}
""")


def _message_hops(req: ConsoleRequest, message_id: str) -> list[dict[str, Any]]:
    q = (select(hops).where(hops.c.message_id == message_id)
         .order_by(hops.c.started_at, hops.c.id).limit(TRACE_LIMIT))
    with req.console.hub.store.engine.connect() as conn:
        return [dict(r) for r in conn.execute(q).mappings()]


def _crossings(hub: Any, trace: Iterable[dict[str, Any]],
               records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """What of the case crossed the bridge, as the store knows it (module docstring)."""
    connectors = (getattr(hub, "config", None) or {}).get("connectors") or {}
    gates = {name for name, block in connectors.items()
             if isinstance(block, dict) and block.get("type") == "diode"}
    out: list[dict[str, Any]] = []
    for r in records:
        if r["connector"] not in gates:
            continue
        receipt = hub.masking(r["result"]) if isinstance(r["result"], dict) else {}
        objects = [m for m in receipt.get("materials") or [] if isinstance(m, dict)]
        manifest = receipt.get("manifest") if isinstance(receipt.get("manifest"), dict) else {}
        what = ", ".join(f"{m.get('name') or '-'} ({str(m.get('sha256') or '')[:12]})"
                         for m in objects) or str(receipt.get("name") or "-")
        out.append({"at": r["created_at"], "way": "out",
                    "label": _("out, through the one-way gate"),
                    "via": f"{r['connector']}.{r['operation']}", "what": what,
                    "ref": str(manifest.get("ref") or receipt.get("ref") or "-")})
    seen: set[str] = set()
    for h in trace:
        if h["type"] in BRIDGE_TYPES and h["message_id"] not in seen:
            seen.add(h["message_id"])
            out.append({"at": h["started_at"], "way": "in",
                        "label": _("in, published by the bridge"), "via": h["route"],
                        "what": h["type"], "ref": h["message_id"]})
    return sorted(out, key=lambda c: c["at"] or 0)


# ------------------------------------------------------------------ parked

def _now(req: ConsoleRequest) -> float:
    engine = getattr(req.console.hub, "engine", None)
    return engine.clock() if engine is not None else req.console.clock()


def _due(due_at: float, now: float) -> str:
    left = due_at - now
    return _("due now") if left <= 0 else _("in {n} s", n=str(round(left)))


def _parked_page(req: ConsoleRequest) -> str:
    hub, prefix, now = req.console.hub, req.console.prefix, _now(req)
    rows = [r for r in hub.store.parked_list(LIST_LIMIT) if _sees(req, r["tenant"])]
    body = "".join(f"""<tr data-id="{e(r['id'])}"><td><a href="{e(prefix)}/parked/show?id={
        quote(str(r['id']))}">{e(str(r['id'])[:12])}</a></td><td>{e(text(r['tenant']))}</td>
<td>{e(text(r['route']))}</td><td>{e(text(r['step']))}</td>
<td class="business-no">{e(text(r['business_no']))}</td><td>{e(text(r['reason']))}</td>
<td class="error">{e(hub.masking.text(r['last_error'] or '')[:200])}</td>
<td>{e(str(r['park_count']))}</td>
<td>{e(when(r['due_at']))} ({e(_due(r['due_at'], now))})</td></tr>""" for r in rows)
    empty = "" if rows else f'<p id="no-parked">{e(_("no parked messages"))}</p>'
    return layout(req, _("Parked"), f"""
<h1>{e(_("Parked messages"))}</h1>
<p>{e(_("Messages whose department did not answer wait here and are retried when due."))}</p>
<table id="parked"><thead><tr><th>{e(_("id"))}</th><th>{e(_("tenant"))}</th>
<th>{e(_("route"))}</th><th>{e(_("step"))}</th><th>{e(_("business no"))}</th>
<th>{e(_("reason"))}</th><th>{e(_("last error"))}</th><th>{e(_("parked"))}</th>
<th>{e(_("due"))}</th></tr></thead><tbody>{body}</tbody></table>{empty}""")


def _parked_one_page(req: ConsoleRequest) -> str:
    hub, prefix, now = req.console.hub, req.console.prefix, _now(req)
    wanted = req.arg("id")[:MAX_QUERY]
    row = hub.store.parked_message(wanted) if wanted else None
    if row is None:
        return layout(req, _("Parked"), '<p id="not-found">'
                      + e(_("no parked message '{id}'", id=wanted)) + "</p>")
    req.console.authorize_tenant(req, str(row["tenant"] or ""))
    try:
        envelope: Any = masked_envelope(json.loads(row["envelope"]), hub.masking)
    except ValueError:
        envelope = None
    fields = [(_("id"), row["id"]), (_("message id"), row["message_id"]),
              (_("tenant"), row["tenant"]), (_("route"), row["route"]), (_("step"), row["step"]),
              (_("business no"), row["business_no"]), (_("reason"), row["reason"]),
              (_("parked"), row["park_count"]),
              (_("due"), f"{when(row['due_at'])} ({_due(row['due_at'], now)})"),
              (_("time"), when(row["created_at"])),
              (_("last error"), hub.masking.text(row["last_error"] or ""))]
    table = "".join(f"<tr><th>{e(k)}</th><td>{e(text(v))}</td></tr>" for k, v in fields)
    button = ""
    if req.operator is not None and req.operator.may("parked.retry"):
        button = (f'<button type="button" id="retry-now">{e(_("Retry now"))}</button>')
    case = ""
    if row["business_no"]:
        case = (f'<p><a id="case-link" href="{e(prefix)}/messages/show?'
                f'{e(urlencode([("tenant", row["tenant"]), ("business_no", row["business_no"])]))}">'
                f'{e(_("The case and its trace"))}</a></p>')
    dialog = f"""<dialog id="retry-dialog"><form method="dialog">
<p id="retry-question">{e(_("Deliver this parked message now instead of when it is due?"))}</p>
<label>{e(_("Reason (kept in the audit log)"))}<textarea id="retry-reason" required
 maxlength="{MAX_REASON}"></textarea></label>
<button type="button" id="retry-ok">{e(_("Confirm"))}</button>
<button type="button" id="retry-cancel">{e(_("Cancel"))}</button></form></dialog>"""
    return layout(req, _("Parked"), f"""
<p><a href="{e(prefix)}/parked">{e(_("All parked messages"))}</a></p>
<h1>{e(_("Parked message"))} <span id="parked-id">{e(row["id"])}</span></h1>
<table class="fields" id="parked-message">{table}</table>{case}
<div class="actions" id="parked-actions" data-id="{e(row["id"])}">{button}</div>
<p class="message" id="retry-message" role="status"></p>{dialog}
<h2>{e(_("Message (personal data masked)"))}</h2>
<pre id="envelope">{e(json.dumps(envelope, ensure_ascii=False, indent=2, default=str))}</pre>""",
                  script=f'<script src="{e(prefix)}/static/messages.js" defer></script>\n')


def _retry(req: ConsoleRequest) -> Answer:
    """Retry now: the parked message comes due at once (``Store.parked_due_now``) and
    the scheduler's next tick delivers it, at the step where it parked."""
    body = read_json(req)
    parked_id, reason = body.get("id"), body.get("reason")
    if not isinstance(parked_id, str) or not parked_id:
        raise ApiError(400, "bad_request", _("give the parked message's id"), reason="form")
    if not isinstance(reason, str) or not reason.strip():
        raise ApiError(400, "reason_required", _("give a reason; it is kept in the audit log"),
                       reason="form")
    store, now = req.console.hub.store, _now(req)
    row = store.parked_message(parked_id[:MAX_QUERY])
    if row is None:
        # Delivered already: the id the message was republished with is in the trace.
        ran = _message_hops(req, parked_id[:MAX_QUERY])[:1]
        if not ran:
            raise ApiError(404, "not_found", _("no parked message '{id}'", id=parked_id[:64]),
                           reason="no_parked_message")
        req.console.authorize_tenant(req, str(ran[0]["tenant"] or ""))
        raise ApiError(409, "already_delivered",
                       _("parked message {id} was delivered already", id=parked_id[:64]),
                       reason="delivered")
    req.console.authorize_tenant(req, str(row["tenant"] or ""))
    if not store.parked_due_now(row["id"], now):
        raise ApiError(409, "already_delivered",
                       _("parked message {id} is being delivered already", id=row["id"]),
                       reason="claimed")
    assert req.operator is not None
    reason = reason.strip()[:MAX_REASON]
    req.console.audit("parked.retried", {
        "operator": req.operator.username, "parked": row["id"], "route": row["route"],
        "step": row["step"], "business_no": row["business_no"] or "",
        "tenant": row["tenant"] or "", "reason": reason, "was_due_at": row["due_at"],
        "remote": req.remote})
    return json_answer(200, {"status": "due_now", "id": row["id"], "due_at": now,
                             "message": _("parked message {id} is delivered now",
                                          id=row["id"])})
