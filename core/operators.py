"""Operator accounts and their console sessions, in the hub's store.

Beside ``core.store`` rather than in it: the console (``bdchub.console``) is the
only reader and writer, and these two tables are all it keeps. They live in the
store every process serving the hub opens, so a session opened through one
process is honoured by the others, and failed logins count once per account
whichever process saw them.

========================  ==============================================================
table                     what it holds
========================  ==============================================================
``operators``             one row per operator account: the password's argon2 hash (never
                          the password), roles and tenants (JSON lists), disabled or not,
                          consecutive failed logins and the end of a lock-out, the last
                          good login, who made and who last changed it
``operator_sessions``     open console sessions by the SHA-256 of their token (the token
                          itself is only in the operator's cookie): whose, since when,
                          last used, and when it expires
========================  ==============================================================

Times are Unix seconds (floats) on the caller's clock.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import (
    Column,
    Float,
    Integer,
    String,
    Table,
    Text,
    delete,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.exc import DBAPIError, IntegrityError

from .store import Store, metadata

operators = Table(
    "operators", metadata,
    Column("username", String(64), primary_key=True),
    Column("password_hash", String(255), nullable=False),
    Column("roles", Text, nullable=False),  # JSON list of role names
    Column("tenants", Text, nullable=False),  # JSON list of division codes or patterns
    Column("disabled", Integer, nullable=False, default=0),
    Column("failures", Integer, nullable=False, default=0),  # consecutive, since the last lock
    Column("locked_until", Float, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("password_changed_at", Float, nullable=False),
    Column("last_login_at", Float, nullable=True),
    Column("updated_by", String(200), nullable=True),
)

operator_sessions = Table(
    "operator_sessions", metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("username", String(64), nullable=False, index=True),
    Column("created_at", Float, nullable=False),
    Column("last_seen_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False, index=True),
)

TABLES = (operators, operator_sessions)
#: Columns of ``operators`` added after its first release: a store made before gets them.
ADDED_COLUMNS = ("last_login_at", "updated_by")
_LISTS = ("roles", "tenants")


def _add_missing_columns(store: Store) -> None:
    """create_all makes missing tables, not missing columns: add those of
    ``ADDED_COLUMNS`` a store made before them lacks (all nullable, so rows stay valid)."""
    def present() -> set[str]:
        return {c["name"] for c in inspect(store.engine).get_columns("operators")}

    for name in sorted(set(ADDED_COLUMNS) - present()):
        column = operators.c[name]
        try:
            with store.engine.begin() as conn:
                conn.execute(text(f"ALTER TABLE operators ADD COLUMN {name} "
                                  f"{column.type.compile(store.engine.dialect)}"))
        except DBAPIError:
            if name not in present():  # not another process adding it at the same time
                raise


def _row(row: Any) -> dict[str, Any]:
    found = dict(row)
    for key in _LISTS:
        if key in found:
            found[key] = json.loads(found[key] or "[]")
    if "disabled" in found:
        found["disabled"] = bool(found["disabled"])
    return found


def _lists(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (json.dumps(list(v), ensure_ascii=False) if k in _LISTS else v)
            for k, v in values.items()}


class OperatorStore:
    """The operator tables of ``store`` (created when missing)."""

    def __init__(self, store: Store):
        self.store = store
        # Stores made before these tables existed get them here, as create_all does.
        metadata.create_all(store.engine, tables=list(TABLES))
        _add_missing_columns(store)

    # -- accounts
    def add(self, **row: Any) -> bool:
        """Add an account; False when one of that name exists."""
        try:
            with self.store._tx() as conn:
                conn.execute(insert(operators).values(**_lists(row)))
        except IntegrityError:
            return False
        return True

    def get(self, username: str) -> dict[str, Any] | None:
        with self.store._read() as conn:
            row = conn.execute(select(operators).where(
                operators.c.username == username)).mappings().first()
        return _row(row) if row is not None else None

    def all(self) -> list[dict[str, Any]]:
        with self.store._read() as conn:
            rows = conn.execute(select(operators).order_by(operators.c.username)).mappings()
            return [_row(r) for r in rows]

    def change(self, username: str, **values: Any) -> bool:
        """Set ``values`` on an account; False when there is no such account."""
        with self.store._tx() as conn:
            return conn.execute(update(operators).where(operators.c.username == username)
                                .values(**_lists(values))).rowcount == 1

    def count_failure(self, username: str, *, now: float, after: int,
                      lock_for: float) -> tuple[int, float | None]:
        """One more failed login of ``username``, in one transaction (several processes
        may count at once): (failures counted, end of the lock-out it caused or None).
        The ``after``-th consecutive failure locks the account until ``now + lock_for``
        and starts the count again."""
        with self.store._tx() as conn:
            row = conn.execute(select(operators.c.failures).where(
                operators.c.username == username)).first()
            if row is None:
                return 0, None
            failures = int(row[0] or 0) + 1
            locked_until = now + lock_for if failures >= after else None
            # A lock-out starts the count again: the next failures after it lock again.
            values = ({"failures": 0, "locked_until": locked_until} if locked_until
                      else {"failures": failures})
            conn.execute(update(operators).where(operators.c.username == username)
                         .values(**values))
        return failures, locked_until

    # -- sessions
    def open_session(self, token_hash: str, username: str, *, now: float,
                     expires_at: float) -> None:
        with self.store._tx() as conn:
            conn.execute(insert(operator_sessions).values(
                token_hash=token_hash, username=username, created_at=now, last_seen_at=now,
                expires_at=expires_at))

    def session(self, token_hash: str) -> dict[str, Any] | None:
        with self.store._read() as conn:
            row = conn.execute(select(operator_sessions).where(
                operator_sessions.c.token_hash == token_hash)).mappings().first()
        return dict(row) if row is not None else None

    def touch_session(self, token_hash: str, *, now: float, expires_at: float) -> None:
        with self.store._tx() as conn:
            conn.execute(update(operator_sessions).where(
                operator_sessions.c.token_hash == token_hash).values(
                last_seen_at=now, expires_at=expires_at))

    def close_session(self, token_hash: str) -> bool:
        with self.store._tx() as conn:
            return conn.execute(delete(operator_sessions).where(
                operator_sessions.c.token_hash == token_hash)).rowcount == 1

    def close_sessions(self, usernames: Iterable[str]) -> int:
        """End every session of these accounts (disabled, password or roles changed)."""
        names = list(usernames)
        with self.store._tx() as conn:
            return conn.execute(delete(operator_sessions).where(
                operator_sessions.c.username.in_(names))).rowcount

    def purge_sessions(self, now: float) -> int:
        with self.store._tx() as conn:
            return conn.execute(delete(operator_sessions).where(
                operator_sessions.c.expires_at <= now)).rowcount

    def sessions_of(self, username: str) -> list[dict[str, Any]]:
        with self.store._read() as conn:
            rows = conn.execute(select(operator_sessions).where(
                operator_sessions.c.username == username)).mappings()
            return [dict(r) for r in rows]
