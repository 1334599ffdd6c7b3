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

Rotation and retention (``Rotation``, the config's ``audit:`` block). The live
file is rotated, under the same lock, when it reaches ``max_bytes`` or when its
first record is of another day: the writer ends it with ``audit.rotated``,
links it as ``<stem>.<YYYYMMDD>-<first seq>.jsonl`` and puts a new live file in
its place whose first record, ``audit.continued``, names that archive and
chains onto its last hash (the new file is locked before it replaces the old
name, and a writer that locked a file no longer at the path retries, so no one
writes into an archive). The series is one chain: a missing middle file, an
archive cut short (its end no longer what the next file continues from) and an
altered record are each reported with the file. Archives whose newest record
is older than ``retention_days`` are removed at a rotation, after
``audit.pruned`` names them and the last hash of the newest one removed: the
first remaining file's link is checked against that record.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import re
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
ROTATED = "audit.rotated"
CONTINUED = "audit.continued"
PRUNED = "audit.pruned"
#: The log's own records; ``records()`` leaves them out.
BOOKKEEPING = frozenset({OPENED, CHECKPOINT, CLOSED, RECOVERED, ANCHOR_BROKEN, ROTATED,
                         CONTINUED, PRUNED})

DAY = 86400.0
#: Six months, the Cybersecurity Law's floor (the guide asks for a year: 400 by default).
MIN_RETENTION_DAYS = 183

SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False,
    "description": "the hub's audit log (audit.jsonl in the data folder): rotation and "
                   "retention; the chain stays verifiable across the rotated files",
    "properties": {
        "retention_days": {"type": "integer", "minimum": MIN_RETENTION_DAYS, "default": 400,
                           "description": "rotated files whose newest record is older are "
                                          "removed (the removal is recorded in the chain)"},
        "rotate": {
            "type": "object", "additionalProperties": False,
            "properties": {
                "max_bytes": {"type": "integer", "minimum": 4096, "default": 64 << 20,
                              "description": "rotate the live file once it is this big"},
                "daily": {"type": "boolean", "default": True,
                          "description": "rotate when the live file's first record is of "
                                         "an earlier day (local time)"},
            },
        },
    },
}


@dataclass(frozen=True)
class Rotation:
    """When the live file is rotated and how long rotated files are kept (None: never)."""

    max_bytes: int | None = 64 << 20
    daily: bool = True
    retention_days: float | None = 400


def rotation_from(config: Any) -> Rotation:
    """The ``audit:`` section as a ``Rotation`` (its defaults when absent)."""
    section = (config or {}).get("audit") or {}
    rotate = section.get("rotate") or {}
    return Rotation(max_bytes=rotate.get("max_bytes", 64 << 20),
                    daily=bool(rotate.get("daily", True)),
                    retention_days=section.get("retention_days", 400))


def archive_pattern(live: Path) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(live.stem)}\.(\d{{8}})-(\d+){re.escape(live.suffix)}$")


def log_files(live: str | os.PathLike[str]) -> list[Path]:
    """The series of a log: its rotated files, oldest first, then the live file."""
    live = Path(live)
    pattern = archive_pattern(live)
    found = []
    if live.parent.is_dir():
        for entry in live.parent.iterdir():
            m = pattern.match(entry.name)
            if m:
                found.append((int(m.group(2)), entry))
    files = [path for _seq, path in sorted(found)]
    if live.exists():
        files.append(live)
    return files

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
    file: str = ""

    def __str__(self) -> str:
        if self.file and self.line:
            return _("{file}, line {line}: {reason}", file=self.file, line=self.line,
                     reason=self.reason)
        if self.file:
            return f"{self.file}: {self.reason}"
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
    files: list[str] = field(default_factory=list)

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
                 clock: Callable[[], float] = time.time,
                 rotation: Rotation | None = None):
        self.path = Path(path)
        self.rotation = rotation
        self._ino: int | None = None
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
            with self._rotated(fd) as live:
                rec = self._append(live, event, object_id, fields)
                self._since += 1
                if self._due():
                    self._checkpoint(live, CHECKPOINT)
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
        for _attempt in range(1000):
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
            fcntl.flock(fd, fcntl.LOCK_EX)
            ino = os.fstat(fd).st_ino
            with contextlib.suppress(FileNotFoundError):
                if os.stat(self.path).st_ino == ino:
                    break
            os.close(fd)  # another writer rotated it while we waited: lock the new file
        else:
            raise IntegrityError_(_("audit log {path} keeps being replaced", path=str(self.path)))
        if ino != self._ino:  # a new live file: what is cached of the old one's tail is not its
            self._ino, self._tail_cache = ino, None
        try:
            yield fd
        finally:
            os.close(fd)  # releases the lock

    # -- rotation and retention ----------------------------------------------------

    def _rotation_due(self, fd: int) -> bool:
        rotation = self.rotation
        if rotation is None or not (rotation.max_bytes or rotation.daily):
            return False
        size = os.fstat(fd).st_size
        if rotation.max_bytes and size >= rotation.max_bytes:
            return True
        if rotation.daily and size:
            first = _first_record(fd)
            if first is not None and isinstance(first.get("time"), int | float):
                return _day(first["time"]) != _day(self.clock())
        return False

    @contextlib.contextmanager
    def _rotated(self, fd: int) -> Iterator[int]:
        """``fd`` itself, or after a rotation the new live file (locked)."""
        if not self._rotation_due(fd):
            yield fd
            return
        first = _first_record(fd) or {}
        archive = self.path.with_name(
            f"{self.path.stem}.{_day(first.get('time') or self.clock())}-"
            f"{int(first.get('seq') or 0):09d}{self.path.suffix}")
        anchor = self._check_anchor(fd)
        open_writers = dict((anchor or {}).get("open") or {})
        self._append(fd, ROTATED, self.writer, {"writer": self.writer, "to": archive.name})
        seq, last, _start, _end = self._tail(fd)
        nxt = self.path.with_name(f".{self.path.name}.{os.getpid()}.next")
        new = os.open(nxt, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC, 0o640)
        try:
            fcntl.flock(new, fcntl.LOCK_EX)  # locked before anyone can open it by name
            self._tail_cache = (seq, last, 0, 0)  # the new file chains on from the old end
            self._append(new, CONTINUED, self.writer, {"writer": self.writer,
                                                       "from": archive.name, "seq": seq,
                                                       "hash": last})
            os.link(self.path, archive)  # the live name never goes missing (no gap to race)
            os.replace(nxt, self.path)
            fsync_dir(self.path.parent)
            self._ino = os.fstat(new).st_ino
            self._write_anchor(new, open_writers)
            self._prune(new)
            yield new
        finally:
            os.close(new)

    def _prune(self, fd: int) -> None:
        """Remove rotated files wholly older than the retention, recording it first."""
        days = self.rotation.retention_days if self.rotation else None
        if not days:
            return
        cutoff = self.clock() - days * DAY
        gone: list[tuple[Path, dict]] = []
        for path in log_files(self.path)[:-1]:
            with path.open("rb") as fh:
                found = _last_record(fh.fileno(), os.fstat(fh.fileno()).st_size)
            if found is None or not float(found[0].get("time") or 0) < cutoff:
                break
            gone.append((path, found[0]))
        if not gone:
            return
        newest, last = gone[-1]
        self._append(fd, PRUNED, self.writer, {
            "writer": self.writer, "files": [p.name for p, _r in gone], "cutoff": cutoff,
            "last": {"file": newest.name, "seq": last.get("seq"), "hash": last.get("hash")}})
        for path, _rec in gone:
            path.unlink(missing_ok=True)
        fsync_dir(self.path.parent)

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
        rec = {"seq": seq + 1, "time": self.clock(), "event": event,
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

    def files(self) -> list[Path]:
        """The rotated files, oldest first, then the live file."""
        return log_files(self.path)

    def _lines(self) -> Iterator[tuple[Path, int, bytes]]:
        for path in self.files():
            yield from ((path, lineno, raw) for lineno, raw in file_lines(path))

    def entries(self) -> list[dict]:
        """Every record of the series, the log's own included."""
        out = []
        for _path, _lineno, raw in self._lines():
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
        """Walk the whole chain, file after file, then hold it against its anchor,
        its writers and the rotated files removed by retention."""
        files = self.files()
        report = AuditReport(self.path, files=[f.name for f in files])
        problems = report.problems
        prev, expected_seq = GENESIS, 1
        keyed_seen = opened_seen = False
        last_seq, anchored_at, vouched = 0, None, 0
        unkeyed: list[tuple[str, int, int]] = []  # (file, line, seq) linked without the key
        anchor = self._read_anchor()
        writers: dict[str, dict[str, Any]] = {}
        pruned: list[dict] = []  # what audit.pruned records say was removed
        first_link: tuple[str, int, dict, str] | None = None  # the series' first continuation
        before: Path | None = None
        for path in files:
            name, starting = path.name, True
            for lineno, raw in file_lines(path):
                try:
                    rec = json.loads(raw)
                    stored = rec.pop("hash")
                    seq = rec["seq"]
                except (ValueError, KeyError, TypeError, AttributeError):
                    problems.append(AuditProblem(lineno, _("not a valid audit record"), name))
                    continue
                if starting:
                    starting = False
                    link = self._file_link(rec, name, lineno, before, prev, expected_seq, problems)
                    if link is not None and before is None:
                        first_link = (name, lineno, link, str(rec.get("prev", "")))
                    if link is not None:  # reported (or to be): go on from its own claim
                        prev, expected_seq = rec.get("prev"), seq
                if rec.get("prev") != prev:
                    problems.append(AuditProblem(lineno, _(
                        "chain broken: previous hash does not match"), name))
                if seq != expected_seq:
                    problems.append(AuditProblem(lineno, _(
                        "sequence gap: expected {expected}, found {found}",
                        expected=expected_seq, found=seq), name))
                body = _canonical(rec)
                keyed = False
                if self.key and hmac.compare_digest(_link(self.key, rec.get("prev", ""), body),
                                                    stored):
                    keyed = keyed_seen = True
                    if rec.get("event") == OPENED and isinstance(rec.get("fields"), dict):
                        until = rec["fields"].get("unkeyed_until")
                        vouched = max(vouched, until if isinstance(until, int) else 0)
                elif self.key and _link(None, rec.get("prev", ""), body) == stored:
                    if keyed_seen:
                        problems.append(AuditProblem(lineno, _(
                            "record not keyed: a plain hash after keyed records (rewritten "
                            "without the key)"), name))
                    else:
                        report.unkeyed += 1  # written before the log had a key, if vouched for
                        unkeyed.append((name, lineno, seq))
                elif not hmac.compare_digest(_link(self.key, rec.get("prev", ""), body), stored):
                    problems.append(AuditProblem(lineno, _(
                        "record altered: hash does not match its content")
                        if self.key else _("record altered: hash does not match its content "
                                           "(or the log is keyed: give its key)"), name))
                else:
                    keyed = True  # no key: a plain link that holds is all there is
                if keyed and rec.get("event") == PRUNED and isinstance(rec.get("fields"), dict):
                    pruned.append(rec["fields"])
                self._follow(rec, lineno, writers, report, name)
                opened_seen = opened_seen or rec.get("event") == OPENED
                if rec.get("event") not in BOOKKEEPING:
                    report.records += 1
                if (anchor and path == self.path and seq == anchor.get("seq")
                        and stored == anchor.get("hash")):
                    anchored_at = lineno
                prev, expected_seq, last_seq = stored, (seq if isinstance(seq, int)
                                                        else expected_seq) + 1, seq
            before = path
        if first_link is not None:
            self._hold_to_pruned(first_link, pruned, report)
        stray = [(f, line) for f, line, seq in unkeyed
                 if not isinstance(seq, int) or seq > vouched]
        if stray:
            # Whoever rewrites a log without the key can only make it look unkeyed;
            # a log from before keys is vouched for by the first keyed writer's record.
            problems.append(AuditProblem(stray[0][1], _(
                "{n} records are not keyed and no keyed record vouches for them (rewritten "
                "without the key, or a log from before keys that no hub has opened since)",
                n=len(stray)), stray[0][0]))
        self._hold_to_anchor(anchor, anchored_at, last_seq, opened_seen, report)
        self._hold_to_writers(writers, report)
        order = {name: i for i, name in enumerate(report.files)}
        live = len(report.files)
        problems.sort(key=lambda p: (order.get(p.file, live), p.line == 0, p.line))
        return report

    @staticmethod
    def _file_link(rec: dict, name: str, lineno: int, before: Path | None, prev: str,
                   expected_seq: int, problems: list[AuditProblem]) -> dict | None:
        """A file's first record against the file before it: the continuation's fields
        when it is one (None otherwise; a plain break is the chain's to report)."""
        fields = rec.get("fields")
        if rec.get("event") != CONTINUED or not isinstance(fields, dict):
            return None
        if before is None:
            return fields  # the files before it were removed: held to audit.pruned at the end
        if fields.get("from") != before.name:
            problems.append(AuditProblem(lineno, _(
                "continues from {missing}, which is missing (the series goes from {before} to "
                "{file})", missing=fields.get("from"), before=before.name, file=name), name))
        elif rec.get("prev") != prev or rec.get("seq") != expected_seq:
            problems.append(AuditProblem(0, _(
                "cut short or altered: it ends at record {last}, but {file} continues from "
                "record {seq}", last=expected_seq - 1, file=name, seq=fields.get("seq")),
                before.name))
        return fields

    @staticmethod
    def _hold_to_pruned(first_link: tuple[str, int, dict, str], pruned: list[dict],
                        report: AuditReport) -> None:
        name, lineno, link, prev = first_link
        for fields in pruned:
            last = fields.get("last")
            if (isinstance(last, dict) and last.get("file") == link.get("from")
                    and last.get("hash") == prev):
                report.notices.append(_(
                    "older files removed by retention: {files}",
                    files=", ".join(str(f) for f in fields.get("files") or [])))
                return
        report.problems.append(AuditProblem(lineno, _(
            "continues from {missing}, which is missing and no record of the log says it "
            "was removed", missing=link.get("from")), name))

    @staticmethod
    def _follow(rec: dict, lineno: int, writers: dict[str, dict[str, Any]],
                report: AuditReport, name: str = "") -> None:
        event, fields = rec.get("event"), rec.get("fields") or {}
        if event not in BOOKKEEPING or not isinstance(fields, dict):
            return
        writer = str(fields.get("writer") or "")
        if event == OPENED:
            writers[writer] = {**fields, "line": lineno, "last_checkpoint": lineno,
                               "checkpoint_file": name}
        elif event == CHECKPOINT and writer in writers:
            writers[writer].update(last_checkpoint=lineno, checkpoint_file=name)
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
                reason=reasons.get(str(fields.get("reason")), str(fields.get("reason")))),
                name))

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
                    "what it wrote after this line could have been cut", writer=writer),
                    str(info.get("checkpoint_file") or "")))


def _when(ts: Any) -> str:
    if not isinstance(ts, int | float):
        return "?"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _day(ts: float) -> str:
    return time.strftime("%Y%m%d", time.localtime(ts))


def file_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number, raw line) of one file, blank lines skipped; nothing if it is gone."""
    try:
        fh = path.open("rb")
    except FileNotFoundError:
        return
    with fh:
        for lineno, raw in enumerate(fh, start=1):
            if raw.strip():
                yield lineno, raw


def _first_record(fd: int) -> dict | None:
    """The file's first record (read up to its first line's end)."""
    buf, pos = b"", 0
    while True:
        chunk = os.pread(fd, _TAIL_CHUNK, pos)
        buf += chunk
        if b"\n" in buf or not chunk:
            break
        pos += len(chunk)
    with contextlib.suppress(ValueError):
        rec = json.loads(buf.split(b"\n", 1)[0])
        return rec if isinstance(rec, dict) else None
    return None


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
