"""Hash-chained, keyed audit log: the hub's own (``Hub.audit``) and the bridge's.

One JSON line per event (accepted, refused, sent, received, delivered,
quarantined, imported …). Each line carries the hash of the line before it, so
editing, deleting or reordering any line breaks the chain from that point on.
The link is an HMAC-SHA256 under the log's key (the hub derives it from its
data key, ``core.sealing.load_audit_key``), so someone who can write the file
still cannot recompute a consistent chain; a log without a key (bridge tools
run with no key file) links with plain SHA-256 and only shows accidents.

Several writers share one file: every process of ``hub run`` (``processes:
2``), every hub on one data folder, a bridge connector in each worker. Each
append takes an exclusive ``flock`` on the file, reads the chain's tail under
it and appends after it, so the chain stays one line of links whoever writes.
A lock on a network file system needs NFSv4 locking (Linux maps ``flock`` onto
it).

The tail is anchored, so records cut off the end are noticed. A writer's first
record is ``audit.opened`` (who: host, process and its start, a random token);
every ``CHECKPOINT_EVERY`` records or ``CHECKPOINT_SECONDS`` it appends
``audit.checkpoint``, and at a clean stop ``audit.closed``. Each of those also
rewrites ``<log>.anchor`` (atomically): the last record's number, hash and
place, and the writers still open, under the same key. Verification then
tells apart:

- a record altered, a line missing or moved (the chain);
- a log that ends before its last checkpoint (the anchor names a record the
  file no longer has): cut after the fact;
- a writer with no closing checkpoint after an unclean stop (it is gone and
  never closed): what it wrote after its last checkpoint could have been cut,
  nothing proves otherwise. The next writer to open the log says so in the
  chain (``audit.recovered``), after which it is a notice, not a problem.

A writer that opens the log, or checkpoints, first checks the anchor against
the file; a mismatch (cut or anchor removed while no one was writing) is
written into the chain as ``audit.anchor_broken`` before the anchor moves on,
so verification reports it for good.

The file is never rotated or pruned by the hub: retention (at least one year,
BRIEF §7) is the operator's archive policy over whole files.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import IntegrityError_
from .fsutil import fsync_dir
from .i18n import _

GENESIS = "0" * 64
CHECKPOINT_EVERY = 64
CHECKPOINT_SECONDS = 60.0

OPENED = "audit.opened"
CHECKPOINT = "audit.checkpoint"
CLOSED = "audit.closed"
RECOVERED = "audit.recovered"
ANCHOR_BROKEN = "audit.anchor_broken"
#: The log's own records; ``records()`` leaves them out.
BOOKKEEPING = frozenset({OPENED, CHECKPOINT, CLOSED, RECOVERED, ANCHOR_BROKEN})

_TAIL_CHUNK = 8192  # a few records: the last is nearly always in the first read

# A process that ends normally (a one-shot command, a test) has stopped cleanly:
# its writers close, even those their owner dropped without closing (so held
# here, not weakly). A killed one leaves its writers open, which is the point.
_OPEN_LOGS: set[AuditLog] = set()
_OPEN_LOCK = threading.Lock()


@atexit.register
def _close_all() -> None:
    with _OPEN_LOCK:
        logs = list(_OPEN_LOGS)
    for log in logs:
        with contextlib.suppress(Exception):
            log.close()


def _link(key: bytes | None, prev: str, body: bytes) -> str:
    data = prev.encode() + b"\n" + body
    if key:
        return hmac.new(key, data, hashlib.sha256).hexdigest()
    return hashlib.sha256(data).hexdigest()


def _canonical(record: dict) -> bytes:
    return json.dumps(record, ensure_ascii=False, sort_keys=True,
                      separators=(",", ":")).encode("utf-8")


def _anchor_mac(key: bytes | None, anchor: dict) -> str:
    # Its own prefix: an anchor's MAC can never pass for a record's link, nor the reverse.
    return _link(key, "anchor", _canonical({k: v for k, v in anchor.items() if k != "mac"}))


@dataclass(frozen=True)
class AuditProblem:
    line: int
    reason: str

    def __str__(self) -> str:
        if not self.line:
            return self.reason
        return _("line {line}: {reason}", line=self.line, reason=self.reason)


@dataclass
class AuditReport:
    """What ``AuditLog.report`` found: ``problems`` mean tampering or a tail that
    cannot be vouched for; ``notices`` are facts an operator should know."""

    path: Path
    records: int = 0
    problems: list[AuditProblem] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    last_checkpoint: float | None = None
    unkeyed: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _process_start(pid: int) -> str | None:
    """Boot and start tick of process ``pid``: a pid reused by another process
    after a restart reads differently. None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return ""
    # The command name may hold spaces and parentheses: count fields after the last ')'.
    rest = stat[stat.rindex(")") + 2:].split()
    return f"{_boot_id()}:{rest[19]}"


def _alive(info: dict) -> bool | None:
    """Whether the writer ``info`` describes still runs: None when this host cannot tell."""
    if info.get("host") != socket.gethostname():
        return None
    pid = info.get("pid")
    if not isinstance(pid, int):
        return False
    start = _process_start(pid)
    if start is None:
        return False
    if start == "" or not info.get("proc"):  # no /proc here: the pid is all there is
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return start == info["proc"]


class AuditLog:
    """An append-only, keyed, hash-chained JSON-lines file, anchored at its tail.
    Safe for threads, processes and hubs sharing the file (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str], key: bytes | None = None, *,
                 checkpoint_every: int = CHECKPOINT_EVERY,
                 checkpoint_seconds: float = CHECKPOINT_SECONDS,
                 clock: Callable[[], float] = time.time):
        self.path = Path(path)
        self.anchor_path = self.path.with_name(self.path.name + ".anchor")
        self.key = key
        self.checkpoint_every = checkpoint_every
        self.checkpoint_seconds = checkpoint_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._pid: int | None = None  # the process whose session this is (fork-safe)
        self.writer = ""
        self._reset()

    def _reset(self) -> None:
        self._pid = None
        self._tail_cache: tuple[int, str, int, int] | None = None  # seq, hash, start, end
        self._since = 0
        self._checkpointed = self.clock()

    # -- writing ---------------------------------------------------------------

    def record(self, event: str, object_id: str, **fields: object) -> dict:
        """Append one event and return the stored record (with seq and hash)."""
        with self._lock, self._locked() as fd:
            self._session(fd)
            rec = self._append(fd, event, object_id, fields)
            self._since += 1
            if self._due():
                self._checkpoint(fd, CHECKPOINT)
            return rec

    def checkpoint(self) -> None:
        """Anchor the tail now (the hub also does it when due, and at a clean stop)."""
        with self._lock:
            if self._pid != os.getpid():
                return  # nothing written by this process: nothing of its own to anchor
            with self._locked() as fd:
                self._checkpoint(fd, CHECKPOINT)

    def checkpoint_if_due(self) -> None:
        """A checkpoint when records wait for one and it is time (an idle writer's)."""
        with self._lock:
            if self._pid != os.getpid() or not self._due():
                return
            with self._locked() as fd:
                self._checkpoint(fd, CHECKPOINT)

    def close(self) -> None:
        """The closing checkpoint: this writer stopped cleanly. Writing again opens anew."""
        with self._lock:
            if self._pid != os.getpid():
                return
            with self._locked() as fd:
                self._checkpoint(fd, CLOSED)
            self._reset()
            with _OPEN_LOCK:
                _OPEN_LOGS.discard(self)

    def _due(self) -> bool:
        if not self._since:
            return False
        return (self._since >= self.checkpoint_every
                or self.clock() - self._checkpointed >= self.checkpoint_seconds)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[int]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield fd
        finally:
            os.close(fd)  # releases the lock

    def _session(self, fd: int) -> None:
        """Open this process's writer session on first write (and again after a fork)."""
        if self._pid == os.getpid():
            return
        self._reset()
        self._pid = os.getpid()
        host = socket.gethostname()
        self.writer = f"{host}/{self._pid}/{secrets.token_hex(4)}"
        anchor = self._check_anchor(fd)
        open_writers = dict((anchor or {}).get("open") or {})
        for writer, info in sorted(open_writers.items()):
            if _alive(info) is False:
                self._append(fd, RECOVERED, writer, {"writer": writer, "by": self.writer})
                del open_writers[writer]
        open_writers[self.writer] = {"host": host, "pid": self._pid,
                                     "proc": _process_start(self._pid) or ""}
        fields: dict[str, Any] = {"writer": self.writer, "file": self.path.name,
                                  **open_writers[self.writer]}
        unkeyed = self._unkeyed_tail(fd)
        if unkeyed:  # the first key on a log from before keys vouches for what it found
            fields["unkeyed_until"] = unkeyed
        self._append(fd, OPENED, self.writer, fields)
        self._write_anchor(fd, open_writers)
        with _OPEN_LOCK:
            _OPEN_LOGS.add(self)

    def _unkeyed_tail(self, fd: int) -> int:
        """The last record's number if it is linked without a key (a log from before
        keys), else 0."""
        if not self.key:
            return 0
        found = _last_record(fd, os.fstat(fd).st_size)
        if found is None:
            return 0
        rec = dict(found[0])
        stored = rec.pop("hash")
        body = _canonical(rec)
        if _link(None, str(rec.get("prev", "")), body) != stored:
            return 0
        return int(rec["seq"])

    def _checkpoint(self, fd: int, event: str) -> None:
        anchor = self._check_anchor(fd)
        open_writers = dict((anchor or {}).get("open") or {})
        if event == CLOSED:
            open_writers.pop(self.writer, None)
        else:
            open_writers.setdefault(self.writer, {"host": socket.gethostname(),
                                                  "pid": self._pid})
        self._append(fd, event, self.writer, {"writer": self.writer})
        self._write_anchor(fd, open_writers)

    def _append(self, fd: int, event: str, object_id: str, fields: dict) -> dict:
        seq, prev, _start, end = self._tail(fd)
        rec = {"seq": seq + 1, "time": time.time(), "event": event,
               "object": object_id, "fields": fields, "prev": prev}
        rec["hash"] = _link(self.key, prev, _canonical(rec))
        line = _canonical(rec) + b"\n"
        os.write(fd, line)
        os.fsync(fd)
        self._tail_cache = (rec["seq"], rec["hash"], end, end + len(line))
        return rec

    def _tail(self, fd: int) -> tuple[int, str, int, int]:
        """(seq, hash, start, file end) of the last record, whoever wrote it."""
        size = os.fstat(fd).st_size
        if self._tail_cache is not None and self._tail_cache[3] == size:
            return self._tail_cache
        if self._tail_cache is not None and size < self._tail_cache[3]:
            shrank = (self._tail_cache[3], size)
        else:
            shrank = None
        found = _last_record(fd, size)
        if size and os.pread(fd, 1, size - 1) != b"\n":
            # A torn last line (a crash mid-write): end it, so the next record stands
            # on a line of its own; verification names the torn one.
            os.write(fd, b"\n")
            size += 1
        if found is None:
            tail = (0, GENESIS, 0, size)
        else:
            rec, start, _end = found
            tail = (int(rec["seq"]), str(rec["hash"]), start, size)
        self._tail_cache = tail
        if shrank is not None:  # cut under a running writer
            self._append(fd, ANCHOR_BROKEN, self.writer, {
                "writer": self.writer, "reason": "shrank", "from": shrank[0], "to": shrank[1]})
            return self._tail_cache
        return tail

    # -- the anchor ------------------------------------------------------------

    def _read_anchor(self) -> dict | None:
        try:
            anchor = json.loads(self.anchor_path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            anchor = None
        return anchor if isinstance(anchor, dict) else {"mac": ""}  # unreadable: altered

    def _check_anchor(self, fd: int) -> dict | None:
        """The anchor if it still holds for the file; otherwise say so in the chain
        (``audit.anchor_broken``) and return None, so the next anchor starts afresh."""
        anchor = self._read_anchor()
        reason: dict[str, Any] | None = None
        if anchor is None:
            if _mentions(fd, OPENED):
                reason = {"reason": "missing"}
        elif not hmac.compare_digest(str(anchor.get("mac", "")),
                                     _anchor_mac(self.key, anchor)):
            reason = {"reason": "altered"}
        else:
            held = _record_at(fd, anchor)
            if held is None or held.get("hash") != anchor.get("hash"):
                reason = {"reason": "ends_before_checkpoint", "seq": anchor.get("seq"),
                          "checkpoint_time": anchor.get("time")}
        if reason is None:
            return anchor
        self._append(fd, ANCHOR_BROKEN, self.writer or "-", {"writer": self.writer, **reason})
        return None

    def _write_anchor(self, fd: int, open_writers: dict) -> None:
        seq, last, start, end = self._tail(fd)
        anchor = {"file": self.path.name, "seq": seq, "hash": last, "start": start,
                  "end": end, "time": time.time(), "open": open_writers}
        anchor["mac"] = _anchor_mac(self.key, anchor)
        tmp = self.anchor_path.with_name(f".{self.anchor_path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as out:
            out.write(_canonical(anchor))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.anchor_path)
        fsync_dir(self.anchor_path.parent)
        self._since = 0
        self._checkpointed = self.clock()

    # -- reading ---------------------------------------------------------------

    def _lines(self) -> Iterator[tuple[int, bytes]]:
        if not self.path.exists():
            return
        with self.path.open("rb") as fh:
            for lineno, raw in enumerate(fh, start=1):
                if raw.strip():
                    yield lineno, raw

    def entries(self) -> list[dict]:
        """Every record, the log's own included."""
        out = []
        for _lineno, raw in self._lines():
            with contextlib.suppress(ValueError):
                out.append(json.loads(raw))
        return out

    def records(self) -> list[dict]:
        """The events recorded (the log's own checkpoints and writer records left out)."""
        return [r for r in self.entries() if r.get("event") not in BOOKKEEPING]

    def verify(self) -> list[AuditProblem]:
        """Every problem found; an empty list means the log is intact."""
        return self.report().problems

    def check(self) -> None:
        """Raise IntegrityError_ naming the first problem, if any."""
        problems = self.verify()
        if problems:
            raise IntegrityError_(_("audit log {path} is tampered: {problem}",
                                    path=str(self.path), problem=str(problems[0])))

    def report(self) -> AuditReport:
        """Walk the whole chain, then hold it against its anchor and its writers."""
        report = AuditReport(self.path)
        problems = report.problems
        prev, expected_seq = GENESIS, 1
        keyed_seen = opened_seen = False
        last_seq, anchored_at, vouched = 0, None, 0
        unkeyed: list[tuple[int, int]] = []  # (line, seq) linked without the key
        anchor = self._read_anchor()
        writers: dict[str, dict[str, Any]] = {}
        for lineno, raw in self._lines():
            try:
                rec = json.loads(raw)
                stored = rec.pop("hash")
                seq = rec["seq"]
            except (ValueError, KeyError, TypeError, AttributeError):
                problems.append(AuditProblem(lineno, _("not a valid audit record")))
                continue
            if rec.get("prev") != prev:
                problems.append(AuditProblem(lineno, _("chain broken: previous hash does not match")))
            if seq != expected_seq:
                problems.append(AuditProblem(lineno, _("sequence gap: expected {expected}, found {found}",
                                                       expected=expected_seq, found=seq)))
            body = _canonical(rec)
            if self.key and hmac.compare_digest(_link(self.key, rec.get("prev", ""), body), stored):
                keyed_seen = True
                if rec.get("event") == OPENED and isinstance(rec.get("fields"), dict):
                    until = rec["fields"].get("unkeyed_until")
                    vouched = max(vouched, until if isinstance(until, int) else 0)
            elif self.key and _link(None, rec.get("prev", ""), body) == stored:
                if keyed_seen:
                    problems.append(AuditProblem(lineno, _(
                        "record not keyed: a plain hash after keyed records (rewritten "
                        "without the key)")))
                else:
                    report.unkeyed += 1  # written before the log had a key, if vouched for
                    unkeyed.append((lineno, seq))
            elif not hmac.compare_digest(_link(self.key, rec.get("prev", ""), body), stored):
                problems.append(AuditProblem(lineno, _(
                    "record altered: hash does not match its content")
                    if self.key else _("record altered: hash does not match its content "
                                       "(or the log is keyed: give its key)")))
            self._follow(rec, lineno, writers, report)
            opened_seen = opened_seen or rec.get("event") == OPENED
            if rec.get("event") not in BOOKKEEPING:
                report.records += 1
            if anchor and seq == anchor.get("seq") and stored == anchor.get("hash"):
                anchored_at = lineno
            prev, expected_seq, last_seq = stored, (seq if isinstance(seq, int)
                                                    else expected_seq) + 1, seq
        stray = [line for line, seq in unkeyed if not isinstance(seq, int) or seq > vouched]
        if stray:
            # Whoever rewrites a log without the key can only make it look unkeyed;
            # a log from before keys is vouched for by the first keyed writer's record.
            problems.append(AuditProblem(stray[0], _(
                "{n} records are not keyed and no keyed record vouches for them (rewritten "
                "without the key, or a log from before keys that no hub has opened since)",
                n=len(stray))))
        self._hold_to_anchor(anchor, anchored_at, last_seq, opened_seen, report)
        self._hold_to_writers(writers, report)
        problems.sort(key=lambda p: (p.line == 0, p.line))
        return report

    @staticmethod
    def _follow(rec: dict, lineno: int, writers: dict[str, dict[str, Any]],
                report: AuditReport) -> None:
        event, fields = rec.get("event"), rec.get("fields") or {}
        if event not in BOOKKEEPING or not isinstance(fields, dict):
            return
        writer = str(fields.get("writer") or "")
        if event == OPENED:
            writers[writer] = {**fields, "line": lineno, "last_checkpoint": lineno}
        elif event == CHECKPOINT and writer in writers:
            writers[writer]["last_checkpoint"] = lineno
            report.last_checkpoint = rec.get("time")
        elif event == CLOSED:
            writers.pop(writer, None)
            report.last_checkpoint = rec.get("time")
        elif event == RECOVERED:
            writers.pop(writer, None)
            report.notices.append(_(
                "writer {writer} stopped without a closing checkpoint; {by} noticed it at "
                "{time}", writer=writer, by=fields.get("by"), time=_when(rec.get("time"))))
        elif event == ANCHOR_BROKEN:
            reasons = {
                "missing": _("its checkpoint file was missing"),
                "altered": _("its checkpoint file was altered"),
                "ends_before_checkpoint": _(
                    "the log ended before its last checkpoint (record {seq} of {time})",
                    seq=fields.get("seq"), time=_when(fields.get("checkpoint_time"))),
                "shrank": _("the log shrank from {old} to {new} bytes while being written",
                            old=fields.get("from"), new=fields.get("to")),
            }
            report.problems.append(AuditProblem(lineno, _(
                "writer {writer} found the log cut or its anchor tampered with at {time}: "
                "{reason}", writer=writer or "-", time=_when(rec.get("time")),
                reason=reasons.get(str(fields.get("reason")), str(fields.get("reason"))))))

    def _hold_to_anchor(self, anchor: dict | None, anchored_at: int | None, last_seq: int,
                        opened_seen: bool, report: AuditReport) -> None:
        problems = report.problems
        if anchor is None:
            if opened_seen:
                problems.append(AuditProblem(0, _(
                    "its checkpoint file {anchor} is missing", anchor=self.anchor_path.name)))
            elif last_seq:
                report.notices.append(_("written before checkpoints: its end is not anchored"))
            return
        if not hmac.compare_digest(str(anchor.get("mac", "")), _anchor_mac(self.key, anchor)):
            problems.append(AuditProblem(0, _("its checkpoint file {anchor} is altered or "
                                              "under another key",
                                              anchor=self.anchor_path.name)))
            return
        if anchored_at is None:
            problems.append(AuditProblem(0, _(
                "the log ends before its last checkpoint: record {seq} of {time} is not "
                "there (it ends at record {last})", seq=anchor.get("seq"),
                time=_when(anchor.get("time")), last=last_seq)))
        report.last_checkpoint = max(report.last_checkpoint or 0.0,
                                     float(anchor.get("time") or 0.0)) or None

    @staticmethod
    def _hold_to_writers(writers: dict[str, dict[str, Any]], report: AuditReport) -> None:
        for writer, info in writers.items():
            alive = _alive(info)
            if alive:
                report.notices.append(_("being written by {writer}", writer=writer))
            elif alive is None:
                report.notices.append(_(
                    "writer {writer} of host {host} has no closing checkpoint: still "
                    "running, or stopped uncleanly (this host cannot tell)", writer=writer,
                    host=info.get("host")))
            else:
                report.problems.append(AuditProblem(info["last_checkpoint"], _(
                    "no closing checkpoint after an unclean stop: writer {writer} is gone; "
                    "what it wrote after this line could have been cut", writer=writer)))


def _when(ts: Any) -> str:
    if not isinstance(ts, int | float):
        return "?"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _last_record(fd: int, size: int) -> tuple[dict, int, int] | None:
    """The last parseable record before ``size`` with its byte span."""
    end = size
    pos = size
    buf = b""
    while pos > 0:
        step = min(_TAIL_CHUNK, pos)
        pos -= step
        buf = os.pread(fd, step, pos) + buf
        lines = buf.split(b"\n")
        # lines[0] may be cut by the chunk boundary unless we reached the start.
        candidates = lines if pos == 0 else lines[1:]
        offset = pos + (0 if pos == 0 else len(lines[0]) + 1)
        spans = []
        for line in candidates:
            spans.append((offset, line))
            offset += len(line) + 1
        for start, line in reversed(spans):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                if isinstance(rec, dict) and "seq" in rec and "hash" in rec:
                    return rec, start, min(start + len(line) + 1, end)
            except ValueError:
                continue
        buf = lines[0]  # the line the chunk cut, completed by the next one
    return None


def _record_at(fd: int, anchor: dict) -> dict | None:
    start, end = anchor.get("start"), anchor.get("end")
    if not isinstance(start, int) or not isinstance(end, int) or end <= start:
        return None
    raw = os.pread(fd, end - start, start)
    if len(raw) != end - start:
        return None
    try:
        rec = json.loads(raw)
    except ValueError:
        return None
    return rec if isinstance(rec, dict) and rec.get("seq") == anchor.get("seq") else None


def _mentions(fd: int, event: str) -> bool:
    """Whether the file holds a record of ``event`` (read in chunks, from the start)."""
    needle = f'"event":"{event}"'.encode()
    pos, carry = 0, b""
    while True:
        chunk = os.pread(fd, 1 << 20, pos)
        if not chunk:
            return False
        if needle in carry + chunk:
            return True
        carry = chunk[-len(needle):]
        pos += len(chunk)
