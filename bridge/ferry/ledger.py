"""The importer's memory of consumed batches: the replay barrier.

SQLite, one row per delivered batch, unique on the batch id and on
(sender, sequence). Sequence policy (README.md here):

- a batch already in the ledger, by id or by (sender, sequence), is a replay
  and is refused;
- gaps are allowed (a disc lost, broken or still on its way) and reported;
- a late batch (lower than the newest seen, never consumed) is accepted and
  reported as out of order; the expiry on every batch bounds how late.

The check and the record happen in one ``BEGIN IMMEDIATE`` transaction that
also spans the delivery, so two importers sharing a ledger cannot both
deliver the same batch.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bdchub.core.errors import ReplayError, StoreError
from bdchub.core.i18n import _

from . import spec

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    batch_id TEXT PRIMARY KEY,
    sender TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    group_id TEXT NOT NULL,
    disc_index INTEGER NOT NULL,
    disc_count INTEGER NOT NULL,
    tagmanifest_sha256 TEXT NOT NULL,
    image TEXT NOT NULL,
    delivered_to TEXT NOT NULL,
    consumed_at TEXT NOT NULL,
    UNIQUE (sender, sequence)
);
"""


@dataclass(frozen=True)
class Consumed:
    batch_id: str
    sender: str
    sequence: int
    group_id: str
    disc_index: int
    disc_count: int
    tagmanifest_sha256: str
    image: str
    delivered_to: str
    consumed_at: str


@dataclass(frozen=True)
class BatchKey:
    """What the ledger needs to know about a batch (a subset of the bag header)."""

    batch_id: str
    sender: str
    sequence: int
    group_id: str
    disc_index: int
    disc_count: int


def ranges(numbers: list[int]) -> str:
    """[3, 5, 6, 7] -> '3, 5-7'."""
    out: list[str] = []
    run: list[int] = []
    for n in sorted(numbers):
        if run and n == run[-1] + 1:
            run.append(n)
            continue
        if run:
            out.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
        run = [n]
    if run:
        out.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
    return ", ".join(out)


class Ledger:
    def __init__(self, path: str | os.PathLike[str], *, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        try:
            if readonly:
                uri = self.path.resolve().as_uri() + "?mode=ro"
                self._db = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
                self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(_("cannot open the ferry ledger {path}: {error}",
                               path=str(self.path), error=exc)) from exc

    def close(self) -> None:
        self._db.close()

    def find(self, key: BatchKey) -> Consumed | None:
        row = self._db.execute(
            "SELECT batch_id, sender, sequence, group_id, disc_index, disc_count, "
            "tagmanifest_sha256, image, delivered_to, consumed_at FROM batches "
            "WHERE batch_id = ? OR (sender = ? AND sequence = ?) LIMIT 1",
            (key.batch_id, key.sender, key.sequence)).fetchone()
        return Consumed(*row) if row else None

    def refuse_replay(self, key: BatchKey) -> None:
        seen = self.find(key)
        if seen:
            raise ReplayError(_(
                "replay: batch {batch} (sender {sender}, sequence {sequence}) was already "
                "imported at {when} from {image}", batch=seen.batch_id, sender=seen.sender,
                sequence=seen.sequence, when=seen.consumed_at, image=seen.image))

    @contextmanager
    def claim(self, key: BatchKey) -> Iterator[None]:
        """Hold the write lock, refuse a replay, run the block, then commit the record.

        The caller fills ``record()`` inside the block; an exception rolls back.
        """
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self.refuse_replay(key)
            yield
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def record(self, key: BatchKey, *, tagmanifest_sha256: str, image: str,
               delivered_to: str) -> None:
        self._db.execute(
            "INSERT INTO batches VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (key.batch_id, key.sender, key.sequence, key.group_id, key.disc_index,
             key.disc_count, tagmanifest_sha256, image, delivered_to,
             spec.format_time(spec.utc_now())))

    def sequences(self, sender: str) -> list[int]:
        rows = self._db.execute("SELECT sequence FROM batches WHERE sender = ? ORDER BY sequence",
                                (sender,))
        return [r[0] for r in rows]

    def gaps(self, sender: str) -> list[int]:
        """Sequence numbers missing between the lowest and the highest consumed."""
        seen = self.sequences(sender)
        if not seen:
            return []
        have = set(seen)
        return [n for n in range(seen[0], seen[-1] + 1) if n not in have]

    def group(self, group_id: str) -> tuple[set[int], int]:
        """Disc numbers of a set already consumed, and the set's size (0 if unknown)."""
        rows = self._db.execute("SELECT disc_index, disc_count FROM batches WHERE group_id = ?",
                                (group_id,)).fetchall()
        return {r[0] for r in rows}, max((r[1] for r in rows), default=0)
