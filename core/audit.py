"""Hash-chained audit record of every object that crosses the bridge.

One JSON line per event (sent, received, verified, filtered, delivered,
quarantined, imported, refused …). Each line carries the hash of the line
before it, so editing, deleting or reordering any line breaks the chain from
that point on. With a key the link is an HMAC-SHA256, so that someone who can
write the file still cannot forge a consistent chain without the key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import IntegrityError_
from .i18n import _

GENESIS = "0" * 64


def _link(key: bytes | None, prev: str, body: bytes) -> str:
    data = prev.encode() + b"\n" + body
    if key:
        return hmac.new(key, data, hashlib.sha256).hexdigest()
    return hashlib.sha256(data).hexdigest()


def _canonical(record: dict) -> bytes:
    return json.dumps(record, ensure_ascii=False, sort_keys=True,
                      separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True)
class AuditProblem:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


class AuditLog:
    """Append-only, hash-chained JSON-lines file. Safe for threads of one process."""

    def __init__(self, path: str | os.PathLike[str], key: bytes | None = None):
        self.path = Path(path)
        self.key = key
        self._lock = threading.Lock()
        self._last: str | None = None
        self._seq = 0

    def _tail(self) -> tuple[int, str]:
        if self._last is not None:
            return self._seq, self._last
        seq, last = 0, GENESIS
        if self.path.exists():
            with self.path.open("rb") as fh:
                for raw in fh:
                    if raw.strip():
                        rec = json.loads(raw)
                        seq, last = rec["seq"], rec["hash"]
        self._seq, self._last = seq, last
        return seq, last

    def record(self, event: str, object_id: str, **fields: object) -> dict:
        """Append one event and return the stored record (with seq and hash)."""
        with self._lock:
            seq, prev = self._tail()
            rec = {"seq": seq + 1, "time": time.time(), "event": event,
                   "object": object_id, "fields": fields, "prev": prev}
            rec["hash"] = _link(self.key, prev, _canonical(rec))
            self.path.parent.mkdir(parents=True, exist_ok=True)
            line = _canonical(rec) + b"\n"
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
            self._seq, self._last = rec["seq"], rec["hash"]
            return rec

    def records(self) -> list[dict]:
        if not self.path.exists():
            return []
        with self.path.open("rb") as fh:
            return [json.loads(raw) for raw in fh if raw.strip()]

    def verify(self) -> list[AuditProblem]:
        """Every break in the chain; an empty list means the log is intact."""
        problems: list[AuditProblem] = []
        if not self.path.exists():
            return problems
        prev, expected_seq = GENESIS, 1
        with self.path.open("rb") as fh:
            for lineno, raw in enumerate(fh, start=1):
                if not raw.strip():
                    continue
                try:
                    rec = json.loads(raw)
                    stored = rec.pop("hash")
                except (ValueError, KeyError, AttributeError):
                    problems.append(AuditProblem(lineno, _("not a valid audit record")))
                    break
                if rec.get("prev") != prev:
                    problems.append(AuditProblem(lineno, _("chain broken: previous hash does not match")))
                if rec.get("seq") != expected_seq:
                    problems.append(AuditProblem(lineno, _("sequence gap: expected {expected}, found {found}",
                                                           expected=expected_seq, found=rec.get("seq"))))
                if _link(self.key, rec.get("prev", ""), _canonical(rec)) != stored:
                    problems.append(AuditProblem(lineno, _("record altered: hash does not match its content")))
                prev, expected_seq = stored, (rec.get("seq") or expected_seq) + 1
        return problems

    def check(self) -> None:
        """Raise IntegrityError_ naming the first problem, if any."""
        problems = self.verify()
        if problems:
            raise IntegrityError_(_("audit log {path} is tampered: {problem}",
                                    path=str(self.path), problem=str(problems[0])))
