"""The store's contract on a real PostgreSQL server (each test in a fresh database)."""

from __future__ import annotations

import uuid

import pytest

from bdchub.core.store import Store
from tests.routes.test_store import *  # noqa: F403 - the same tests, on PostgreSQL
from tests.routes.test_store_batches import *  # noqa: F403
from tests.routes.test_store_loops import *  # noqa: F403

pytestmark = pytest.mark.integration


@pytest.fixture
def store(postgres_url):
    import psycopg2

    name = f"bdchub_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(postgres_url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    base = postgres_url.rsplit("/", 1)[0]
    s = Store(f"{base}/{name}")
    assert s.dialect == "postgresql"
    yield s
    s.close()
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    admin.close()
