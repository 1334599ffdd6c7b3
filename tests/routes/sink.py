"""A loopback-free endpoint double for reliability tests, shared across processes.

Every call is written to a SQLite file: ``calls`` keeps one row per
idempotency key (with how often it was called), the way a real endpoint that
honours idempotency keys absorbs repeated calls. Files next to it switch
behaviour at run time, so a test can change an endpoint inside a worker
subprocess: ``<db>.down`` makes every call fail as recoverable (endpoint
down), ``<db>.reject`` (a file of business numbers, one a line) fails those
as permanent (a poison message).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from bdchub.connectors.base import CallContext, Connector
from bdchub.core.errors import PermanentError, RecoverableError


class SinkConnector(Connector):
    type_name = "testsink"
    config_schema = {"type": "object", "required": ["db"],
                     "properties": {"db": {"type": "string"}, "delay": {"type": "number"},
                                    "operations": {"type": "object"}}}

    def __init__(self, name: str, config: dict[str, Any], *, base_dir: Any = None):
        super().__init__(name, config, base_dir=base_dir)
        self.db = Path(config["db"])
        self.delay = float(config.get("delay") or 0)
        self._local = threading.local()
        init(self.db)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.db)
            self._local.conn = conn
        return conn

    def call(self, operation: str, payload: Any, context: CallContext | None = None) -> Any:
        context = context or CallContext()
        if Path(str(self.db) + ".down").exists():
            raise RecoverableError(f"{self.name} is down", connector=self.name,
                                   operation=operation)
        reject = Path(str(self.db) + ".reject")
        if reject.exists() and context.business_no in reject.read_text().split():
            raise PermanentError(f"{self.name} rejects {context.business_no}: bad unit code",
                                 connector=self.name, operation=operation, status=400)
        if self.delay:
            time.sleep(self.delay)
        conn = self._conn()
        conn.execute("INSERT INTO calls(key, connector, operation, business_no, n) "
                     "VALUES (?, ?, ?, ?, 1) ON CONFLICT(key) DO UPDATE SET n = n + 1",
                     (context.idempotency_key, self.name, operation, context.business_no))
        conn.commit()
        return {"ok": True}


def connect(db: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(db), timeout=60, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout=60000")
    return conn


def init(db: Path) -> None:
    conn = connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE IF NOT EXISTS calls (key TEXT PRIMARY KEY, connector TEXT, "
                 "operation TEXT, business_no TEXT, n INTEGER)")
    conn.commit()
    conn.close()


def done(db: Path, operation: str) -> dict[str, int]:
    """business_no -> number of distinct idempotency keys for ``operation``."""
    init(db)
    conn = connect(db)
    try:
        rows = conn.execute("SELECT business_no, COUNT(*) FROM calls WHERE operation = ? "
                            "GROUP BY business_no", (operation,)).fetchall()
    finally:
        conn.close()
    return dict(rows)


def total_calls(db: Path, operation: str) -> int:
    conn = connect(db)
    try:
        return int(conn.execute("SELECT COALESCE(SUM(n), 0) FROM calls WHERE operation = ?",
                                (operation,)).fetchone()[0])
    finally:
        conn.close()


def register() -> None:
    from bdchub.connectors import registry

    registry.register("testsink", "tests.routes.sink:SinkConnector")
