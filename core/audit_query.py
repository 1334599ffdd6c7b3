"""Reading the audit log for people: query a page, newest first, and export a range.

What ``hub audit list|export`` and the console's audit page call. Both walk the
series of ``core.audit.log_files`` (rotated files, then the live file) one
line at a time, so a range of any size is read in bounded memory: ``query``
reads files newest first and each file from its end, ``export`` yields one
output line at a time for the caller to stream. The log's own bookkeeping
records (writers, checkpoints, rotation) are left out; ``hub audit verify``
is where the chain is checked.

Records hold what their writers gave them: personal data already masked or
hashed (``Hub.audit`` takes no unmasked personal data), business numbers as
they are (they are not personal data), so ``business_no`` matches the number
exactly. The actor of a record is the operator (``by``) for operator actions,
else the inbound client (``client``).
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .audit import BOOKKEEPING, archive_pattern, file_lines, log_files
from .errors import HubError
from .i18n import _

_CHUNK = 1 << 16
FORMATS = ("csv", "jsonl")


@dataclass(frozen=True)
class Filters:
    """What a record must match; None matches anything. ``event`` ending in ``.``
    or ``*`` is a prefix (``inbound.*``); times are POSIX seconds, ``until`` exclusive."""

    since: float | None = None
    until: float | None = None
    actor: str | None = None
    event: str | None = None
    business_no: str | None = None
    #: What else a record must satisfy: the console keeps a tenant-scoped operator
    #: to the records of their tenants.
    keep: Callable[[dict], bool] | None = None


@dataclass
class Page:
    records: list[dict]
    #: Pass back as ``cursor`` for the next (older) page; None when there is none.
    next_cursor: int | None


def actor_of(rec: dict) -> str:
    if rec.get("actor"):  # a record read from elsewhere names its actor itself
        return str(rec["actor"])
    fields = rec.get("fields") if isinstance(rec.get("fields"), dict) else {}
    return str(fields.get("by") or fields.get("operator") or fields.get("client") or "")


def business_no_of(rec: dict) -> str:
    fields = rec.get("fields") if isinstance(rec.get("fields"), dict) else {}
    return str(fields.get("business_no") or "")


def matches(rec: dict, filters: Filters) -> bool:
    if rec.get("event") in BOOKKEEPING:
        return False
    when = rec.get("time")
    if not isinstance(when, int | float):
        return False
    if filters.since is not None and when < filters.since:
        return False
    if filters.until is not None and when >= filters.until:
        return False
    if filters.actor and actor_of(rec) != filters.actor:
        return False
    if filters.event:
        event = str(rec.get("event") or "")
        wanted = filters.event
        if wanted.endswith(("*", ".")):
            if not event.startswith(wanted.rstrip("*")):
                return False
        elif event != wanted:
            return False
    if filters.business_no and filters.business_no not in (
            business_no_of(rec), str(rec.get("object") or "")):
        return False
    return filters.keep is None or filters.keep(rec)


def _parse(raw: bytes) -> dict | None:
    try:
        rec = json.loads(raw)
    except ValueError:
        return None  # verification names it; a reader skips it
    return rec if isinstance(rec, dict) else None


def _lines_backwards(path: Path) -> Iterator[bytes]:
    """The file's lines from its last to its first, read in chunks from the end."""
    try:
        fh = path.open("rb")
    except FileNotFoundError:
        return
    with fh:
        pos = os.fstat(fh.fileno()).st_size
        carry = b""
        while pos > 0:
            step = min(_CHUNK, pos)
            pos -= step
            fh.seek(pos)
            lines = (fh.read(step) + carry).split(b"\n")
            carry = lines[0]  # may be cut by the chunk's start: completed by the next one
            for line in reversed(lines[1:]):
                if line.strip():
                    yield line
        if carry.strip():
            yield carry


def _first_seq(path: Path, live: Path) -> int | None:
    m = archive_pattern(live).match(path.name)
    return int(m.group(2)) if m else None


def newest_first(live: str | os.PathLike[str], filters: Filters = Filters(),
                 cursor: int | None = None) -> Iterator[dict]:
    """Matching records, newest first, older than record ``cursor`` when given."""
    live = Path(live)
    for path in reversed(log_files(live)):
        first = _first_seq(path, live)
        if cursor is not None and first is not None and first >= cursor:
            continue
        for raw in _lines_backwards(path):
            rec = _parse(raw)
            if rec is None or (cursor is not None and int(rec.get("seq") or 0) >= cursor):
                continue
            when = rec.get("time")
            if (filters.since is not None and isinstance(when, int | float)
                    and when < filters.since and rec.get("event") not in BOOKKEEPING):
                return  # appended in time order: everything further back is older still
            if matches(rec, filters):
                yield rec


def oldest_first(live: str | os.PathLike[str], filters: Filters = Filters()) -> Iterator[dict]:
    """Matching records, oldest first."""
    for path in log_files(Path(live)):
        for _lineno, raw in file_lines(path):
            rec = _parse(raw)
            if rec is None:
                continue
            when = rec.get("time")
            if (filters.until is not None and isinstance(when, int | float)
                    and when >= filters.until and rec.get("event") not in BOOKKEEPING):
                return
            if matches(rec, filters):
                yield rec


def query(live: str | os.PathLike[str], filters: Filters = Filters(), limit: int = 50,
          cursor: int | None = None) -> Page:
    """One page of matching records, newest first; ``cursor`` is the previous page's
    ``next_cursor``."""
    records: list[dict] = []
    for rec in newest_first(live, filters, cursor):
        records.append(rec)
        if len(records) >= limit:
            break
    more = len(records) >= limit and records
    return Page(records, int(records[-1]["seq"]) if more else None)


def columns() -> list[tuple[str, str]]:
    """(key, heading) of an exported or listed row, headings in the operator's language."""
    return [("seq", _("No.")), ("time", _("Time")), ("event", _("Event")),
            ("actor", _("Actor")), ("business_no", _("Business number")),
            ("object", _("Object")), ("fields", _("Details"))]


def row(rec: dict) -> dict[str, Any]:
    when = rec.get("time")
    return {"seq": rec.get("seq"),
            "time": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when))
            if isinstance(when, int | float) else "",
            "event": rec.get("event") or "", "actor": actor_of(rec),
            "business_no": business_no_of(rec), "object": rec.get("object") or "",
            "fields": json.dumps(rec.get("fields") or {}, ensure_ascii=False, sort_keys=True)}


def export(live: str | os.PathLike[str], filters: Filters, fmt: str = "csv", *,
           everything: bool = False) -> Iterator[str]:
    """The matching records, oldest first, one output line (or CSV row) at a time.
    A range with no start is refused unless ``everything``: an export of years of
    records should be asked for on purpose."""
    if fmt not in FORMATS:
        raise HubError(_("unknown export format {fmt}: use one of {known}", fmt=fmt,
                         known=", ".join(FORMATS)))
    if filters.since is None and not everything:
        raise HubError(_("an export needs a start (--since), or --all for the whole log"))
    return _export(live, filters, fmt)


def _export(live: str | os.PathLike[str], filters: Filters, fmt: str) -> Iterator[str]:
    return export_lines(oldest_first(live, filters), fmt)


def export_lines(records: Iterator[dict], fmt: str) -> Iterator[str]:
    """``records`` as an export writes them, one output line (or CSV row) at a time."""
    if fmt == "jsonl":
        for rec in records:
            yield json.dumps(rec, ensure_ascii=False, sort_keys=True) + "\n"
        return
    buf = io.StringIO()
    writer = csv.writer(buf)
    keys = [key for key, _heading in columns()]
    writer.writerow([heading for _key, heading in columns()])
    yield "\ufeff" + buf.getvalue()  # a byte-order mark: spreadsheets then read it as UTF-8
    for rec in records:
        buf.seek(0)
        buf.truncate()
        fields = row(rec)
        writer.writerow([fields[key] for key in keys])
        yield buf.getvalue()
