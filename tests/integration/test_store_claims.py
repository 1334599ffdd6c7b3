"""Claims of due work in the store by several workers (issue #14, item 4): every
worker's scheduler takes the parked messages that have come due
(``Store.claim_due_parked``). Two workers never both take one row; on PostgreSQL a
row another worker holds is passed over (``FOR UPDATE SKIP LOCKED``), not waited
for; on SQLite each row is claimed by a conditional update.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from bdchub.core.store import Store
from tests.conftest import fresh_pg_database
from tests.routes.test_store import _finish, _parked

ROWS = 120


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def url(request, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return fresh_pg_database(request.getfixturevalue("postgres_url"))


def _park(store: Store, n: int, route: str = "r", due: float = 100.0) -> list[str]:
    ids = [f"{route}-p-{i:04d}" for i in range(n)]
    for i, pid in enumerate(ids):
        store.finish(_finish(f"{route}-m-{i}", route=route, parked={
            **_parked(pid, due), "message_id": f"{route}-m-{i}", "route": route}))
    return ids


def test_two_workers_claiming_due_parked_messages_never_both_take_one(url):
    stores = [Store(url, group_commit=False) for _ in range(2)]
    try:
        ids = _park(stores[0], ROWS)
        taken: list[list[str]] = [[], []]
        start = threading.Barrier(2)

        def worker(n: int) -> None:
            start.wait()
            for _ in range(ROWS):  # bounded: each pass takes at least one row or ends
                rows = stores[n].claim_due_parked(200.0, limit=7, lease=60.0, routes=["r"])
                if not rows:
                    return
                taken[n].extend(r["id"] for r in rows)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not any(t.is_alive() for t in threads)
        assert not set(taken[0]) & set(taken[1]), "a row claimed by both workers"
        assert sorted(taken[0] + taken[1]) == ids  # each once, none left behind
        assert stores[0].claim_due_parked(259.0, 10, 60.0) == []  # still under their claims
        assert len(stores[1].claim_due_parked(261.0, ROWS, 60.0)) == ROWS  # the claims ran out
    finally:
        for store in stores:
            store.close()


def test_only_the_routes_asked_for_are_claimed(url):
    store = Store(url, group_commit=False)
    try:
        _park(store, 2, route="mine")
        _park(store, 2, route="another_hubs")
        assert {r["route"] for r in store.claim_due_parked(200.0, 10, 60.0, routes=["mine"])} \
            == {"mine"}
        assert len(store.claim_due_parked(200.0, 10, 60.0)) == 2  # the others were left
    finally:
        store.close()


@pytest.mark.integration
def test_on_postgresql_a_row_another_worker_holds_is_passed_over_not_waited_for(postgres_url):
    import psycopg2

    url = fresh_pg_database(postgres_url)
    store = Store(url, group_commit=False)
    holder = psycopg2.connect(url)
    try:
        ids = _park(store, 3)
        with holder.cursor() as cur:  # another worker, inside its claim's transaction
            cur.execute("SELECT id FROM parked WHERE id = %s FOR UPDATE", (ids[0],))
        claimed: list[list[str]] = []
        worker = threading.Thread(target=lambda: claimed.append(
            [r["id"] for r in store.claim_due_parked(200.0, 10, 60.0)]))
        worker.start()
        worker.join(30)
        assert not worker.is_alive(), "the claim waited for the other worker's lock"
        assert claimed == [ids[1:]]
    finally:
        holder.rollback()
        holder.close()
        store.close()
