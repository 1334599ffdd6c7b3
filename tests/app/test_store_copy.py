"""``hub store copy``: every table of a store into another, rows as stored (sealed
text stays sealed), counts compared, refused onto a store holding rows, from a store
a hub still runs on, or while the embedded broker holds messages. SQLite to SQLite
here; SQLite to PostgreSQL in tests/integration/test_store_copy_postgres.py."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Float, Integer, String, insert, text
from sqlalchemy.engine import Engine

from bdchub.app.store_copy import NOT_COPIED, copy_store, declared_tables
from bdchub.core.errors import StoreError
from bdchub.core.sealing import Sealer
from bdchub.core.store import Sealed, Store
from bdchub.hub import cli

KEY = Sealer(bytes.fromhex("00112233445566778899aabbccddeeff"))
OTHER_KEY = Sealer(bytes.fromhex("ffeeddccbbaa99887766554433221100"))
#: More rows than one batch of the tests' copies, so batches join up.
ROWS = 7
BATCH = 3


def value(column, i: int):
    """Row ``i``'s value of ``column``: distinct per row, so keys stay unique."""
    if isinstance(column.type, Sealed):
        return f"{column.name} 张三 320684199001011234 #{i}"
    if isinstance(column.type, Integer):
        return i + 1
    if isinstance(column.type, Float):
        return 1_700_000_000.25 + i
    if isinstance(column.type, String) and column.type.length:
        return f"{i}-{column.name}"[:column.type.length]
    return f"{column.name} {i}"


def seed(url: str, rows: int = ROWS) -> Store:
    """A store at ``url`` with ``rows`` rows in every table the hub declares, written
    through the hub's own table definitions and key (sealed columns sealed)."""
    store = Store(url, sealer=KEY, group_commit=False)
    with store.engine.begin() as conn:
        for table in declared_tables().values():
            table.create(conn, checkfirst=True)
            conn.execute(insert(table), [{c.name: value(c, i) for c in table.columns}
                                         for i in range(rows)])
    return store


def stored_rows(engine: Engine, table: str) -> list[tuple]:
    """``table``'s rows as stored, in a fixed order, with no type opening them."""
    with engine.connect() as conn:
        return sorted(tuple(r) for r in conn.execute(text(f"SELECT * FROM {table}")))


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


@pytest.fixture
def source(tmp_path: Path) -> str:
    url = sqlite_url(tmp_path / "hub.db")
    seed(url).close()
    return url


def assert_same_rows(source_url: str, target_url: str) -> None:
    src, dst = Store(source_url, create=False), Store(target_url, create=False)
    try:
        for name in set(declared_tables()) - set(NOT_COPIED):
            assert stored_rows(dst.engine, name) == stored_rows(src.engine, name), name
    finally:
        src.close()
        dst.close()


def test_every_table_arrives_with_every_row_as_stored(source: str, tmp_path: Path):
    target = sqlite_url(tmp_path / "moved.db")
    report = copy_store(source, target, batch=BATCH)
    assert {t.name for t in report.tables} == set(declared_tables()) - set(NOT_COPIED)
    assert all(t.source_rows == t.copied == ROWS and t.already_there == 0
               for t in report.tables)
    assert_same_rows(source, target)


def test_sealed_columns_stay_sealed_and_open_only_with_the_same_data_key(
        source: str, tmp_path: Path):
    target = sqlite_url(tmp_path / "moved.db")
    copy_store(source, target)
    plain = Store(target, create=False)
    try:
        (sealed,) = plain.engine.connect().execute(
            text("SELECT last_error FROM dead_letters WHERE id = '1-id'")).one()
    finally:
        plain.close()
    assert sealed.startswith("sm4g1:") and "张三" not in sealed
    same = Store(target, sealer=KEY, create=False)
    try:
        assert same.dead_letter("1-id")["last_error"] == \
            "last_error 张三 320684199001011234 #1"
    finally:
        same.close()
    other = Store(target, sealer=OTHER_KEY, create=False)
    try:
        with pytest.raises(StoreError, match="another data key"):
            other.dead_letter("1-id")
    finally:
        other.close()


def test_a_target_holding_rows_is_refused_and_left_as_it_was(source: str, tmp_path: Path):
    target = sqlite_url(tmp_path / "moved.db")
    seed(target, rows=2).close()
    before = {n: stored_rows(Store(target, create=False).engine, n) for n in ("hops", "progress")}
    with pytest.raises(StoreError, match="already holds rows: .*hops \\(2\\)"):
        copy_store(source, target)
    after = {n: stored_rows(Store(target, create=False).engine, n) for n in ("hops", "progress")}
    assert after == before


def test_append_keeps_the_targets_rows_and_numbers_the_appended_ones_after_them(
        source: str, tmp_path: Path):
    target = sqlite_url(tmp_path / "moved.db")
    seed(target, rows=2).close()  # rows 0 and 1: the same keys as the source's first two
    report = copy_store(source, target, append=True, batch=BATCH)
    tables = {t.name: t for t in report.tables}
    # Keyed rows the target had are kept, the others added.
    assert (tables["progress"].copied, tables["progress"].already_there) == (ROWS - 2, 2)
    # Numbered rows (hops.id) are never "already there": each is another hop.
    assert (tables["hops"].copied, tables["hops"].already_there) == (ROWS, 0)
    dst = Store(target, create=False)
    try:
        ids = [row[0] for row in stored_rows(dst.engine, "hops")]
    finally:
        dst.close()
    assert ids == list(range(1, 2 + ROWS + 1))


def test_a_failure_part_way_leaves_the_target_as_it_was(tmp_path: Path):
    """The copy is one transaction: a row the target refuses (a column the hub
    requires, empty in a hand-made source) undoes the tables copied before it."""
    url = sqlite_url(tmp_path / "hub.db")
    seed(url).close()
    with sqlite3.connect(tmp_path / "hub.db") as db:
        db.execute("DROP TABLE verifications")
        db.execute("CREATE TABLE verifications (id INTEGER PRIMARY KEY, tenant TEXT, "
                   "business_no TEXT, message_id TEXT, kind TEXT, connector TEXT, "
                   "operation TEXT, result TEXT, created_at REAL)")
        db.execute("INSERT INTO verifications (id, tenant) VALUES (1, '320684')")
    target = tmp_path / "moved.db"
    with pytest.raises(StoreError, match="the target is left as it was"):
        copy_store(url, sqlite_url(target))
    with sqlite3.connect(target) as db:
        assert db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall() == []


def test_a_table_this_hub_does_not_declare_is_copied_as_the_source_defines_it(
        source: str, tmp_path: Path):
    with sqlite3.connect(source.removeprefix("sqlite:///")) as db:
        db.execute("CREATE TABLE county_receipts (message_id VARCHAR(40) PRIMARY KEY, "
                   "county VARCHAR(6) NOT NULL, at FLOAT NOT NULL, signature BLOB)")
        db.execute("INSERT INTO county_receipts VALUES ('m-1', '320684', 5.5, x'00ff')")
    target = sqlite_url(tmp_path / "moved.db")
    report = copy_store(source, target)
    assert "county_receipts" in {t.name for t in report.tables}
    dst = Store(target, create=False)
    try:
        assert stored_rows(dst.engine, "county_receipts") == [
            ("m-1", "320684", 5.5, b"\x00\xff")]
    finally:
        dst.close()


def report_process(url: str, reported_at: float) -> None:
    store = Store(url, create=False)
    try:
        with store.engine.begin() as conn:
            conn.execute(text("INSERT INTO hub_processes VALUES (:p, :s, :r, :report)"),
                         {"p": "host-a:4242:1", "s": reported_at - 60, "r": reported_at,
                          "report": json.dumps({"every": 5.0})})
    finally:
        store.close()


def test_a_source_a_hub_still_reports_itself_running_on_is_refused(
        source: str, tmp_path: Path):
    with sqlite3.connect(source.removeprefix("sqlite:///")) as db:
        db.execute("DELETE FROM hub_processes")
    report_process(source, time.time())
    with pytest.raises(StoreError, match="a hub is running on the source store "
                                         "\\(host-a:4242:1"):
        copy_store(source, sqlite_url(tmp_path / "moved.db"))


def test_a_hub_that_stopped_reporting_long_ago_does_not_hold_the_copy(
        source: str, tmp_path: Path):
    with sqlite3.connect(source.removeprefix("sqlite:///")) as db:
        db.execute("DELETE FROM hub_processes")
    report_process(source, time.time() - 600)  # killed ten minutes ago, its row left
    report = copy_store(source, sqlite_url(tmp_path / "moved.db"))
    assert "hub_processes" not in {t.name for t in report.tables}


def test_copying_while_the_embedded_broker_holds_messages_is_refused(
        source: str, tmp_path: Path):
    from bdchub.core.broker import broker_from_url

    broker_url = f"sqla+sqlite:///{tmp_path / 'broker.db'}"
    broker = broker_from_url(broker_url)
    try:
        broker.declare_queue("bdchub.online_application", ["application.submitted"])
        broker.publish(b'{"id": "m1"}', "application.submitted")
    finally:
        broker.close()
    with pytest.raises(StoreError, match="still holds 1 message"):
        copy_store(source, sqlite_url(tmp_path / "moved.db"), broker_url=broker_url)
    # An empty (drained) embedded broker lets the copy go on.
    with sqlite3.connect(tmp_path / "broker.db") as db:
        db.execute("DELETE FROM kombu_message")
    copy_store(source, sqlite_url(tmp_path / "moved.db"), broker_url=broker_url)


def test_a_mistyped_source_path_is_refused_and_no_empty_store_is_made(tmp_path: Path):
    missing = tmp_path / "hbu.db"
    with pytest.raises(StoreError, match="no store at"):
        copy_store(sqlite_url(missing), sqlite_url(tmp_path / "moved.db"))
    assert not missing.exists()


def test_hub_store_copy_prints_a_summary_and_refuses_a_second_copy_with_exit_1(
        source: str, tmp_path: Path):
    target = sqlite_url(tmp_path / "moved.db")
    args = ["--lang", "en", "store", "copy", "--from", source, "--to", target]
    done = CliRunner().invoke(cli, args)
    assert done.exit_code == 0, done.output
    assert f"hops                  {ROWS:>13}  {ROWS:>9}" in done.output
    assert "the counts of source and target agree" in done.output
    assert "the same data key (BDCHUB_DATA_KEY" in done.output
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 1
    assert "Error: the target store already holds rows" in again.output
