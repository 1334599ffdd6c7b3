"""The console's audit page (issue #13, item 1 "Audit")::

    GET {path}/audit?source=&since=&until=&actor=&action=&business_no=&before=
        the records, newest first, LIST_LIMIT a page ("more" goes on below record
        ``before``), the filters in a form, the chain verified by a button
    GET {path}/api/audit/export?format=csv|jsonl&source=&since=&until=&…
        the records of a range, oldest first, streamed (as ``hub audit export``),
        audited as ``audit.exported``
    GET {path}/api/audit/verify?source=
        the chain verified across the rotated files under the log's key (as ``hub
        audit verify``): intact with N records from first to last, or each problem
        with its file, line, record number and why; audited as ``audit.verified``

Reading, paging and exporting are ``core.audit_query``'s; verifying is
``core.audit.AuditLog.report``. The sources (``sources``) are the hub's own
log (``audit.jsonl`` in the data folder: operator actions, inbound requests
accepted and refused, refusals the routes record) and, as files of their own,
the bridge's: the ferry inbox's log (``bridge.ferry_inbox``, under the hub's
audit key) and each diode connector's ``audit_log`` (under its
``audit_key_file``). One more source, ``calls``, is not an audit log: the
outbound calls to departments as the store's trace keeps them
(``console.audit_calls``), filtered and exported alike but not hash-chained,
which the page says.

Records are shown as their writers stored them (personal data already masked or
hashed, as ``hub audit list`` shows them); the details column goes through the
hub's masking of free text as well, since an error quoted there may hold an ID
number. A tenant-scoped operator sees the records of their tenants only; a
record naming no tenant (logins, account changes, refusals at the door) is the
whole hub's and shown to operators of every tenant (``*``) alone.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bdchub.core import i18n
from bdchub.core.audit import AuditLog, AuditReport, file_lines
from bdchub.core.audit_query import (
    FORMATS,
    Filters,
    actor_of,
    business_no_of,
    export,
    export_lines,
    newest_first,
    oldest_first,
    query,
)
from bdchub.core.errors import HubError
from bdchub.core.i18n import _
from bdchub.web.http import Answer, ApiError, json_answer

from . import audit_calls
from .api import ConsoleApp, ConsoleRequest, require
from .frame import LIST_LIMIT, e, layout, page, text, when

#: An export covers at most this many days: a longer range is refused, to be split.
MAX_EXPORT_DAYS = 366
#: The form's start when none is asked for: the last month.
DEFAULT_DAYS = 30
MAX_FIELD = 100  # characters of a filter kept
DETAILS = 400  # characters of a record's details shown in the table
CHUNK = 1 << 16  # bytes of an export sent at once
KINDS = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson; charset=utf-8"}
#: Fields the table shows in columns of their own, left out of the details.
SHOWN = frozenset({"by", "operator", "client", "business_no"})
#: The source of outbound calls, read from the store's trace (``console.audit_calls``).
CALLS = "calls"


@dataclass(frozen=True)
class Source:
    name: str
    label: str
    #: None for ``calls``, read from the store's trace rather than a chained log.
    log: AuditLog | None


def sources(hub: Any) -> dict[str, Source]:
    """What the page can read of ``hub``: its audit log, the bridge's, and last the
    outbound calls of the store's trace."""
    found = _logs(hub)
    if getattr(hub, "store", None) is not None:
        found[CALLS] = Source(CALLS, _("outbound calls (the store's trace)"), None)
    return found


def _logs(hub: Any) -> dict[str, Source]:
    """The audit logs of ``hub``: its own and the bridge's."""
    from bdchub.bridge.diode.connector import gate_audit
    from bdchub.bridge.ferry_inbox import FerryWatch
    from bdchub.core.datadir import data_dir

    found: dict[str, Source] = {}
    if callable(getattr(hub, "audit_log", None)):
        found["hub"] = Source("hub", _("the hub"), hub.audit_log())
    config = getattr(hub, "config", None) or {}
    if not config:
        return found
    ferry = FerryWatch.audit_path(config, data_dir(config))
    if ferry is not None:
        found["ferry"] = Source("ferry", _("bridge: ferry inbox"),
                                AuditLog(ferry, key=hub.audit_key()))
    base = Path(config.get("__dir__") or ".")
    for name, block in sorted((config.get("connectors") or {}).items()):
        if not isinstance(block, dict) or block.get("type") != "diode":
            continue
        log = gate_audit(block, lambda p: base / Path(str(p)).expanduser())
        if log is not None:
            found[f"diode:{name}"] = Source(f"diode:{name}",
                                            _("bridge: diode {name}", name=name), log)
    return found


def install(app: ConsoleApp) -> None:
    app.add("GET", "/audit", page("audit.read")(_audit_page))
    app.add("GET", "/api/audit/export", require("audit.export")(_export))
    app.add("GET", "/api/audit/verify", require("audit.read")(_verify))


# ------------------------------------------------------------------ the request's filters

def _source(req: ConsoleRequest) -> Source:
    found = sources(req.console.hub)
    name = req.arg("source") or "hub"
    if name not in found:
        raise ApiError(404, "no_audit_source", _("no audit log '{name}': choose one of {known}",
                                                 name=name[:40], known=", ".join(found) or "-"),
                       reason="form")
    return found[name]


def _time(value: str, *, end: bool = False) -> float | None:
    """A form's date (``2026-12-01``: its start, or with ``end`` its whole day) or date
    and time (``2026-12-01T08:30``), in the hub's local time."""
    value = value.strip()[:32]
    if not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ApiError(400, "bad_time", _("not a time: {text} (2026-12-01 or "
                                          "2026-12-01T08:30)", text=value),
                       reason="form") from None
    if end and "T" not in value and " " not in value:
        moment += dt.timedelta(days=1)  # a day asked for counts whole
    return moment.timestamp()


def _form(req: ConsoleRequest) -> dict[str, str]:
    """The filters as the form holds them (bounded); the start defaults to a month ago."""
    values = {key: req.arg(key).strip()[:MAX_FIELD]
              for key in ("since", "until", "actor", "action", "business_no", "source")}
    if not req.has_arg("since"):
        values["since"] = str(dt.date.today() - dt.timedelta(days=DEFAULT_DAYS - 1))
    values["source"] = values["source"] or "hub"
    return values


def _filters(req: ConsoleRequest, form: dict[str, str]) -> Filters:
    operator = req.operator
    assert operator is not None

    def visible(rec: dict) -> bool:
        fields = rec.get("fields") if isinstance(rec.get("fields"), dict) else {}
        return operator.sees(str(fields.get("tenant") or ""))

    return Filters(since=_time(form["since"]), until=_time(form["until"], end=True),
                   actor=form["actor"] or None, event=form["action"] or None,
                   business_no=form["business_no"] or None,
                   keep=None if "*" in operator.tenants else visible)


def _tenants(req: ConsoleRequest) -> list[str] | None:
    """The tenants whose calls the operator sees; None: every tenant's."""
    assert req.operator is not None
    return None if "*" in req.operator.tenants else list(req.operator.tenants)


def _page_of(req: ConsoleRequest, source: Source, filters: Filters,
             cursor: int | None) -> tuple[list[dict], int | None]:
    if source.log is None:
        found = audit_calls.query(req.console.hub.store, filters, _tenants(req),
                                  limit=LIST_LIMIT, cursor=cursor)
    else:
        found = query(source.log.path, filters, limit=LIST_LIMIT, cursor=cursor)
    return found.records, found.next_cursor


# ------------------------------------------------------------------ the page

def _details(req: ConsoleRequest, rec: dict) -> str:
    fields = rec.get("fields") if isinstance(rec.get("fields"), dict) else {}
    shown = json.dumps({k: v for k, v in fields.items() if k not in SHOWN},
                       ensure_ascii=False, sort_keys=True, default=str)
    masking = getattr(req.console.hub, "masking", None)
    if masking is not None:
        shown = masking.text(shown)  # an error quoted in a record may hold an ID number
    return shown if len(shown) <= DETAILS else shown[:DETAILS] + "…"


def _audit_page(req: ConsoleRequest) -> str:
    prefix = req.console.prefix
    form = _form(req)
    found = sources(req.console.hub)
    source = found.get(form["source"])
    before = req.arg("before")
    rows, more, refusal = [], None, ""
    try:
        if source is None:
            raise ApiError(404, "no_audit_source", _("no audit log '{name}'",
                                                     name=form["source"][:40]))
        cursor = int(before) if before.isdigit() else None
        rows, more = _page_of(req, source, _filters(req, form), cursor)
    except ApiError as err:
        refusal = err.message
    chosen = {k: v for k, v in form.items() if v}
    body = "".join(f"""<tr data-seq="{e(str(r.get('seq')))}"><td>{e(text(r.get('seq')))}</td>
<td>{e(when(r.get('time')))}</td><td class="event">{e(text(r.get('event')))}</td>
<td class="actor">{e(text(actor_of(r)))}</td>
<td class="business-no">{e(text(business_no_of(r)))}</td>
<td class="details">{e(_details(req, r))}</td></tr>""" for r in rows)
    empty = "" if rows or refusal else f'<p id="no-records">{e(_("no audit records match"))}</p>'
    more_link = ""
    if more is not None:
        more_link = (f'<p><a id="more" href="{e(prefix)}/audit?'
                     f'{e(urlencode({**chosen, "since": form["since"], "before": more}))}">'
                     f'{e(_("Older records"))}</a></p>')
    options = "".join(f'<option value="{e(s.name)}"{" selected" if s.name == form["source"] else ""}>'
                      f'{e(s.label)}</option>' for s in found.values())
    exports = ""
    if req.operator is not None and req.operator.may("audit.export"):
        language = "en" if i18n.language().startswith("en") else "zh_CN"  # the file's, as the page's
        exports = " ".join(
            f'<a class="export" id="export-{kind}" href="{e(prefix)}/api/audit/export?'
            f'{e(urlencode({**chosen, "since": form["since"], "format": kind, "lang": language}))}">'
            f'{e(label)}</a>'
            for kind, label in (("csv", _("Export CSV")), ("jsonl", _("Export JSON lines"))))
    return layout(req, _("Audit"), f"""
<h1>{e(_("Audit log"))}</h1>
<form class="search" id="audit-filters" method="get">
<label>{e(_("Log"))}<select name="source" id="source">{options}</select></label>
<label>{e(_("From"))}<input name="since" id="since" value="{e(form["since"])}"
 placeholder="2026-12-01" maxlength="{MAX_FIELD}"></label>
<label>{e(_("to"))}<input name="until" id="until" value="{e(form["until"])}"
 placeholder="2026-12-31" maxlength="{MAX_FIELD}"></label>
<label>{e(_("Actor"))}<input name="actor" id="actor" value="{e(form["actor"])}"
 maxlength="{MAX_FIELD}"></label>
<label>{e(_("Event"))}<input name="action" id="action" value="{e(form["action"])}"
 placeholder="inbound.*" maxlength="{MAX_FIELD}"></label>
<label>{e(_("Business number"))}<input name="business_no" id="business-no"
 value="{e(form["business_no"])}" maxlength="{MAX_FIELD}"></label>
<button type="submit" id="filter">{e(_("Search"))}</button></form>
<p class="actions">{exports}</p>{_chain(source, form["source"])}
<p class="message" id="audit-refusal">{e(refusal)}</p>
<table id="audit-records"><thead><tr><th>{e(_("No."))}</th><th>{e(_("Time"))}</th>
<th>{e(_("Event"))}</th><th>{e(_("Actor"))}</th><th>{e(_("Business number"))}</th>
<th>{e(_("Details"))}</th></tr></thead><tbody>{body}</tbody></table>{empty}{more_link}""",
                  script=f'<script src="{e(prefix)}/static/audit.js" defer></script>\n')


def _chain(source: Source | None, name: str) -> str:
    """The chain's verification, or for the store's trace the plain word that it has none."""
    if source is not None and source.log is None:
        note = _("Outbound calls are read from the store's trace of each case (the hops "
                 "of the steps that call departments): they are not in the hash-chained "
                 "audit log and cannot be verified as it can. The connector is the actor; "
                 "the event is operation/outcome.")
        return f'<p class="notice" id="not-chained">{e(note)}</p>'
    return f"""<section id="chain" data-source="{e(name)}">
<button type="button" id="verify">{e(_("Verify the chain"))}</button>
<p id="verify-result" role="status"></p><ul id="verify-problems"></ul></section>"""


# ------------------------------------------------------------------ export

def _export(req: ConsoleRequest) -> Answer:
    """The range as ``hub audit export`` writes it, streamed: nothing of it is held
    whole, whatever its size."""
    kind = req.arg("format") or "csv"
    if kind not in FORMATS:
        raise ApiError(400, "bad_format", _("export as csv or jsonl"), reason="form")
    source = _source(req)
    form = _form(req)
    filters = _filters(req, form)
    if filters.since is None:
        raise ApiError(400, "export_needs_start", _(
            "an export needs a start date; export at most {days} days at a time",
            days=MAX_EXPORT_DAYS), reason="form")
    until = filters.until if filters.until is not None else time.time()
    if until - filters.since > MAX_EXPORT_DAYS * 86400:
        raise ApiError(400, "export_range_too_long", _(
            "an export covers at most {days} days: split the range", days=MAX_EXPORT_DAYS),
            reason="form")
    try:
        lines = (export(source.log.path, filters, kind) if source.log is not None else
                 export_lines(audit_calls.oldest_first(req.console.hub.store, filters,
                                                       _tenants(req)), kind))
    except HubError as err:
        raise ApiError(400, "bad_export", str(err), reason="form") from None
    # The first line now, in the operator's language (the CSV's headings): the
    # rest is read while it is sent, after this request's language is gone.
    first = next(lines, "")
    assert req.operator is not None
    req.console.audit("audit.exported", {
        "operator": req.operator.username, "source": source.name, "format": kind,
        "since": form["since"], "until": form["until"], "actor": form["actor"],
        "action": form["action"], "business_no": form["business_no"],
        "remote": req.remote})
    name = f"audit-{source.name.replace(':', '-')}-{form['since'][:10]}.{kind}"
    return 200, [("Content-Type", KINDS[kind]), ("Cache-Control", "no-store"),
                 ("Content-Disposition", f'attachment; filename="{name}"'),
                 ("X-Content-Type-Options", "nosniff")], _chunks(first, lines)  # type: ignore[return-value]


def _chunks(first: str, lines: Iterator[str]) -> Iterator[bytes]:
    """The lines as bytes, gathered into chunks of about ``CHUNK`` bytes."""
    buf = [first.encode("utf-8")]
    size = len(buf[0])
    for line in lines:
        raw = line.encode("utf-8")
        buf.append(raw)
        size += len(raw)
        if size >= CHUNK:
            yield b"".join(buf)
            buf, size = [], 0
    if buf:
        yield b"".join(buf)


# ------------------------------------------------------------------ verification

def _seq_at(folder: Path, name: str, line: int) -> int | None:
    """The record number on ``line`` of file ``name``, if that line is a record."""
    if not name or not line:
        return None
    for lineno, raw in file_lines(folder / name):
        if lineno == line:
            try:
                seq = json.loads(raw).get("seq")
            except (ValueError, AttributeError):
                return None
            return seq if isinstance(seq, int) else None
        if lineno > line:
            break
    return None


def _first(records: Iterator[dict]) -> float | None:
    rec = next(records, None)
    return rec.get("time") if rec is not None else None


def verification(log: AuditLog) -> dict[str, Any]:
    """What the page shows of ``log``'s chain: ``AuditLog.report`` (as ``hub audit
    verify``) with the span of its records and the record number of each problem."""
    report: AuditReport = log.report()
    first, last = _first(oldest_first(log.path)), _first(newest_first(log.path))
    return {"ok": report.ok, "records": report.records, "files": report.files,
            "first": first, "last": last, "first_text": when(first), "last_text": when(last),
            "notices": [str(n) for n in report.notices],
            "problems": [{"file": p.file or log.path.name, "line": p.line,
                          "seq": _seq_at(log.path.parent, p.file, p.line),
                          "reason": p.reason} for p in report.problems]}


def _verify(req: ConsoleRequest) -> Answer:
    source = _source(req)
    if source.log is None:
        raise ApiError(400, "not_chained", _("outbound calls are the store's trace, not a "
                                             "hash-chained log: there is no chain to verify"),
                       reason="form")
    if not source.log.files():
        raise ApiError(404, "no_audit_log", _("no audit log at {path}: nothing has been "
                                              "written there yet", path=source.log.path.name),
                       reason="no_log")
    found = verification(source.log)
    if found["ok"]:
        found["summary"] = _("intact: {n} records from {first} to {last}, in {files} files",
                             n=found["records"], first=found["first_text"],
                             last=found["last_text"], files=len(found["files"]))
    else:
        found["summary"] = _("broken: {n} problems", n=len(found["problems"]))
        for problem in found["problems"]:
            problem["text"] = _("{file}, line {line} (record {seq}): {reason}",
                                file=problem["file"], line=problem["line"] or "-",
                                seq=text(problem["seq"]), reason=problem["reason"])
    assert req.operator is not None
    req.console.audit("audit.verified", {
        "operator": req.operator.username, "source": source.name, "ok": found["ok"],
        "records": found["records"], "problems": len(found["problems"]),
        "remote": req.remote})
    return json_answer(200, {"source": source.name, **found})

