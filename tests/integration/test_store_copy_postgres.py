"""``hub store copy`` from the embedded store into a real PostgreSQL database: every
table and row as stored, sealed columns opened there with the same key, and the
sequences behind numbered keys moved on so the hub's next rows do not collide."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from bdchub.app.store_copy import NOT_COPIED, copy_store, declared_tables
from bdchub.core.envelope import Hop
from bdchub.core.store import Finish, Store
from bdchub.hub import cli
from tests.app.test_store_copy import KEY, ROWS, seed, sqlite_url, stored_rows

pytestmark = pytest.mark.integration


@pytest.fixture
def source(tmp_path: Path) -> str:
    url = sqlite_url(tmp_path / "hub.db")
    seed(url).close()
    return url


def test_every_table_of_the_embedded_store_arrives_in_postgresql_as_stored(
        source: str, pg_database: str):
    report = copy_store(source, pg_database, batch=3)
    names = set(declared_tables()) - set(NOT_COPIED)
    assert {t.name for t in report.tables} == names
    src, dst = Store(source, create=False), Store(pg_database, create=False)
    try:
        assert dst.dialect == "postgresql"
        for name in names:
            assert stored_rows(dst.engine, name) == stored_rows(src.engine, name), name
    finally:
        src.close()
        dst.close()
    assert {"hops.id", "verifications.id"} <= set(report.sequences)


def test_the_hub_on_postgresql_opens_the_copied_rows_and_numbers_its_next_ones_after_them(
        source: str, pg_database: str):
    copy_store(source, pg_database)
    store = Store(pg_database, sealer=KEY, group_commit=False)
    try:
        assert store.dead_letter("1-id")["last_error"] == \
            "last_error 张三 320684199001011234 #1"
        # A hop written by the hub after the move: its id is the sequence's next, past
        # the copied ids (a sequence left at 1 would collide with the copied row 1).
        store.finish(Finish(message_id="m-after-move", route="r", outcome="ok",
                            tenant="320684", business_no="B-AFTER", type="t",
                            hops=[Hop(route="r", step="s", started_at=1.0,
                                      duration_ms=1.0, outcome="ok")]))
        with store.engine.connect() as conn:
            (new_id,) = conn.execute(text(
                "SELECT id FROM hops WHERE business_no = 'B-AFTER'")).one()
    finally:
        store.close()
    assert new_id == ROWS + 1


def test_hub_store_copy_into_postgresql_says_what_it_did(source: str, pg_database: str):
    done = CliRunner().invoke(cli, ["--lang", "en", "store", "copy", "--from", source,
                                    "--to", pg_database])
    assert done.exit_code == 0, done.output
    assert "sequences moved past the copied ids: " in done.output
    assert pg_database.split("@")[-1] in done.output
