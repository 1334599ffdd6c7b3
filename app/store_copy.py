"""``hub store copy --from URL --to URL``: move a hub's store to another database.

A county starts on the embedded store (SQLite, one file) and moves to
PostgreSQL when it runs several workers (docs/deployment.md). This copies
every table of the source store into the target, in one transaction on the
target, so a failed copy leaves it as it was:

- the target's tables are made as the hub makes them (the definitions in
  ``core.store``, ``core.operators`` and ``app.pollers``, indexes included); a
  table this hub version does not declare (a newer part's) is made from the
  source's own definition, its types mapped to their generic kinds;
- rows go over in batches of ``BATCH``, read in key order;
- sealed columns (names, ID numbers, whole messages; ``core.sealing``) are copied
  as they are, never opened: the copy needs no data key, and the hub on the
  target opens them only with the key that sealed them (``BDCHUB_DATA_KEY``, or
  the source's ``store.key``);
- PostgreSQL's sequences behind numbered keys (``hops.id``, ``verifications.id``)
  are moved past the copied ids, so the hub's next row does not collide;
- the row counts of source and target are compared before the commit.

Refused: a target that holds rows in any table to be copied (unless ``append``:
rows whose key the target has already are left as they are there, and numbered
rows get new numbers after the target's own, so appending twice doubles them),
a source on which a hub still reports itself running (``hub status``), and,
given ``broker_url``, an embedded broker still holding messages: those are
not in the store, so the hub must drain them before it stops.

``hub_processes`` and ``leases`` are not copied: they are what running processes
say of themselves and the singletons they hold, and the target's processes write
their own.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from sqlalchemy import MetaData, Table, func, insert, inspect, select, text
from sqlalchemy import column as sql_column
from sqlalchemy import table as sql_table
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from bdchub.core.cliopts import LANG_OPTION
from bdchub.core.errors import StoreError
from bdchub.core.i18n import _

__all__ = ["BATCH", "NOT_COPIED", "CopyReport", "TableCopy", "copy_store",
           "declared_tables", "running_processes", "store_group", "undelivered_messages"]

#: Rows read and written at a time.
BATCH = 1000
#: Tables of the store that are not data but the running processes' own: what each
#: reports of itself (``app.status``) and the singleton leases each holds
#: (``core.leases``); the target's processes write theirs.
NOT_COPIED = ("hub_processes", "leases")
#: How many report intervals old a process's report may be and the process still count
#: as running (``app.status.STALE_AFTER``, plus one for a report on its way).
RUNNING_AFTER = 4


@dataclass
class TableCopy:
    """One table: rows in the source, rows the copy added to the target, rows left
    out because the target had their key already (``append`` only)."""

    name: str
    source_rows: int
    copied: int = 0
    already_there: int = 0
    made: bool = False  # the target had no such table before


@dataclass
class CopyReport:
    source: str
    target: str
    append: bool
    tables: list[TableCopy] = field(default_factory=list)
    sequences: list[str] = field(default_factory=list)  # columns whose sequence was moved on
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        return sum(t.copied for t in self.tables)


def declared_tables() -> dict[str, Table]:
    """The tables this hub version makes in its store, by name."""
    import bdchub.core.operators  # noqa: F401 - declares its tables in the store's metadata
    from bdchub.core.store import metadata

    from .pollers import poller_cursors

    return {**metadata.tables, **poller_cursors.metadata.tables}


def running_processes(engine: Engine, now: float) -> list[dict[str, Any]]:
    """The processes of a hub that reported themselves into this store lately
    (``hub status``'s fresh ones): a hub still running on it."""
    from .status import EVERY

    if "hub_processes" not in inspect(engine).get_table_names():
        return []
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT process, reported_at, report FROM hub_processes"))
        found = []
        for process, reported_at, report in rows:
            try:
                every = float(json.loads(report).get("every") or EVERY)
            except (ValueError, AttributeError):
                every = EVERY
            if now - float(reported_at) <= every * RUNNING_AFTER:
                found.append({"process": process, "age_seconds": round(now - reported_at, 1)})
    return found


def undelivered_messages(broker_url: str) -> int | None:
    """Messages the embedded broker at ``broker_url`` still holds (queued or being
    handled); None for a broker that is not an embedded SQL one (RabbitMQ keeps its
    own queues and is not moved by a store copy)."""
    from sqlalchemy import create_engine

    url = broker_url
    for prefix in ("sqla+", "sqlalchemy+"):
        if url.startswith(prefix):
            url = url[len(prefix):]
    if not url.startswith("sqlite:"):
        return None
    path = url.split(":///", 1)[1] if ":///" in url else ""
    if path and not Path(path).exists():
        return 0  # never used: nothing in it
    engine = create_engine(url)
    try:
        if "kombu_message" not in inspect(engine).get_table_names():
            return 0
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT COUNT(*) FROM kombu_message")).scalar_one())
    finally:
        engine.dispose()


def copy_store(source_url: str, target_url: str, *, append: bool = False,
               broker_url: str | None = None, batch: int = BATCH,
               now: Callable[[], float] = time.time,
               progress: Callable[[str, int], None] | None = None) -> CopyReport:
    """Copy every table of the store at ``source_url`` into the one at ``target_url``
    (the module docstring says what is refused and how); ``progress(table, rows)``
    is told as batches go over."""
    from bdchub.core.store import Store

    if source_url == target_url:
        raise StoreError(_("the source and the target are the same store: {url}",
                           url=_safe_url(source_url)))
    _refuse_missing_sqlite(source_url)
    if broker_url:
        left = undelivered_messages(broker_url)
        if left:
            raise StoreError(_(
                "the embedded broker at {url} still holds {n} message(s), which a store copy "
                "does not move: let the hub finish them with no new work coming in (its "
                "clients cut off at the firewall or load balancer, hub run --no-pollers) "
                "until hub status shows every queue at 0, then stop it and copy",
                url=_safe_url(broker_url), n=left))
    started = now()
    source = Store(source_url, create=False, group_commit=False)
    target = Store(target_url, create=False, group_commit=False)
    try:
        running = running_processes(source.engine, now())
        if running:
            raise StoreError(_(
                "a hub is running on the source store ({processes}, as hub status shows): "
                "stop every hub process on it before copying its store",
                processes=", ".join(p["process"] for p in running)))
        report = CopyReport(_safe_url(source_url), _safe_url(target_url), append)
        try:
            _copy(source.engine, target.engine, report, batch, progress)
        except SQLAlchemyError as exc:
            raise StoreError(_("the store copy failed, the target is left as it was: "
                               "{error}", error=exc)) from exc
    finally:
        source.close()
        target.close()
    report.seconds = now() - started
    return report


def _safe_url(url: str) -> str:
    """``url`` without its password, for messages and the summary."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url.split("@", 1)[-1]


def _refuse_missing_sqlite(url: str) -> None:
    """SQLite makes a file it is asked to open: a mistyped source path would be
    copied as an empty store."""
    from bdchub.core.health import sqlite_path

    path = sqlite_path(url)
    if path is not None and not Path(path).exists():
        raise StoreError(_("no store at {path}", path=path))


def _copy(source: Engine, target: Engine, report: CopyReport, batch: int,
          progress: Callable[[str, int], None] | None) -> None:
    declared = declared_tables()
    found = inspect(source)
    names = sorted(n for n in found.get_table_names()
                   if n not in NOT_COPIED and not n.startswith("kombu_"))
    existing = set(inspect(target).get_table_names())
    # The source's own columns and keys: an older store lacks columns added since.
    shapes = {n: ([c["name"] for c in found.get_columns(n)],
                  found.get_pk_constraint(n).get("constrained_columns") or []) for n in names}
    tables = {n: declared.get(n) if n in declared else _reflected(source, n) for n in names}
    with target.connect() as conn, conn.begin():
        before = {n: _count(conn, n) if n in existing else 0 for n in names}
        if not report.append:
            holding = [f"{n} ({before[n]})" for n in names if before[n]]
            if holding:
                raise StoreError(_(
                    "the target store already holds rows: {tables}; copy into an empty "
                    "database, or pass --append to add to what it holds",
                    tables=", ".join(holding)))
        for name in names:
            table = tables[name]
            columns, keys = shapes[name]
            extra = [c for c in columns if c not in table.c]
            if extra:
                raise StoreError(_(
                    "table {table}: the source has columns this hub does not know "
                    "({columns}); copy with the hub version that wrote the source",
                    table=name, columns=", ".join(extra)))
            if name not in existing:
                table.create(conn)
            elif report.append:
                missing = [c for c in columns if c not in _columns(conn, name)]
                if missing:
                    raise StoreError(_(
                        "table {table} of the target lacks columns {columns}: start the "
                        "current hub on the target once so it adds them, then copy",
                        table=name, columns=", ".join(missing)))
            numbered = table.autoincrement_column
            # Appended numbered rows take the target's next numbers: theirs may be taken.
            carried = [c for c in columns
                       if not (report.append and numbered is not None and c == numbered.name)]
            rows = _rows(source, name, carried, keys, batch)
            copied = _write(conn, table, rows, append=report.append,
                            progress=(lambda n, name=name: progress(name, n))
                            if progress else None)
            after = _count(conn, name)
            entry = TableCopy(name, _source_count(source, name), after - before[name],
                              made=name not in existing)
            entry.already_there = entry.source_rows - entry.copied
            if copied != entry.source_rows or (not report.append and entry.already_there):
                raise StoreError(_(
                    "table {table}: {source} rows in the source, {copied} copied; the "
                    "source changed during the copy, or rows were lost",
                    table=name, source=entry.source_rows, copied=entry.copied))
            report.tables.append(entry)
            if numbered is not None and conn.dialect.name == "postgresql":
                _move_sequence_on(conn, name, numbered.name)
                report.sequences.append(f"{name}.{numbered.name}")


def _reflected(source: Engine, name: str) -> Table:
    """A table this hub does not declare, as the source defines it, with each type
    as its generic kind (SQLite's BLOB or DATETIME are not PostgreSQL's)."""
    table = Table(name, MetaData(), autoload_with=source)
    for col in table.columns:
        try:
            col.type = col.type.as_generic()
        except NotImplementedError:
            pass
    return table


def _count(conn: Connection, name: str) -> int:
    return int(conn.execute(select(func.count()).select_from(sql_table(name))).scalar_one())


def _source_count(source: Engine, name: str) -> int:
    with source.connect() as conn:
        return _count(conn, name)


def _columns(conn: Connection, name: str) -> set[str]:
    return {c["name"] for c in inspect(conn).get_columns(name)}


def _rows(source: Engine, name: str, columns: list[str], keys: list[str],
          batch: int) -> Iterable[list[dict[str, Any]]]:
    """The source's rows as they are stored (no type opens them: sealed text stays
    sealed), ``batch`` at a time, in key order."""
    stored = sql_table(name, *[sql_column(c) for c in dict.fromkeys([*columns, *keys])])
    query = select(*[stored.c[c] for c in columns]).order_by(*[stored.c[k] for k in keys])
    with source.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=batch).execute(query)
        for part in result.mappings().partitions(batch):
            yield [dict(r) for r in part]


def _write(conn: Connection, table: Table, batches: Iterable[list[dict[str, Any]]], *,
           append: bool, progress: Callable[[int], None] | None) -> int:
    """Insert each batch into ``table``; with ``append`` a row whose key the target
    has already is skipped. Returns the rows read."""
    stmt: Any = insert(table)
    if append:
        if conn.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        stmt = dialect_insert(table).on_conflict_do_nothing()
    # Columns written as they are: the Sealed type would seal or open with a key, and
    # this engine has none, so it passes sealed text through untouched.
    read = 0
    for rows in batches:
        conn.execute(stmt, rows)
        read += len(rows)
        if progress is not None:
            progress(read)
    return read


def _move_sequence_on(conn: Connection, name: str, column_name: str) -> None:
    """PostgreSQL's sequence behind ``name.column_name`` to just past its largest
    value: rows inserted with their ids leave it where it was."""
    conn.execute(text(
        f"SELECT setval(pg_get_serial_sequence(:t, :c), "
        f"COALESCE((SELECT MAX({column_name}) FROM {name}), 0) + 1, false)"),
        {"t": name, "c": column_name})


# ------------------------------------------------------------------ command line

@click.group("store", help=_("The hub's store: copy it to another database "
                             "(docs/deployment.md)."))
def store_group() -> None:
    pass


@store_group.command(
    "copy", help=_("Copy every table of the store at --from (the embedded SQLite store) "
                   "into the empty store at --to (PostgreSQL), in one transaction, and "
                   "compare the row counts. Stop the hub first; sealed columns are copied "
                   "as they are, so the hub on the target needs the same data key."))
@click.option("--from", "source_url", required=True, metavar="URL",
              help=_("the store to copy, e.g. sqlite:////var/lib/bdc-hub/hub.db"))
@click.option("--to", "target_url", required=True, metavar="URL",
              help=_("the store to copy into, e.g. postgresql://hub:…@db/bdchub"))
@click.option("--append", is_flag=True,
              help=_("copy into a store that holds rows already: rows whose key it has "
                     "are kept as they are there; numbered rows get new numbers"))
@click.option("--broker", "broker_url", metavar="URL", default=None,
              help=_("the embedded broker of the hub whose store this is: refuse while "
                     "it still holds messages"))
@click.option("--batch", type=click.IntRange(1, 100_000), default=BATCH, show_default=True,
              help=_("rows per batch"))
@LANG_OPTION
def copy_command(source_url: str, target_url: str, append: bool, broker_url: str | None,
                 batch: int) -> None:
    report = copy_store(source_url, target_url, append=append, broker_url=broker_url,
                        batch=batch)
    click.echo(_("copied the store {source} to {target} in {seconds:.1f} s:",
                 source=report.source, target=report.target, seconds=report.seconds))
    width = max([len(t.name) for t in report.tables] + [5])
    heads = _("table"), _("in the source"), _("copied"), _("already there")
    click.echo(f"  {heads[0]:<{width}}  {heads[1]:>13}  {heads[2]:>9}  {heads[3]:>13}")
    for t in report.tables:
        click.echo(f"  {t.name:<{width}}  {t.source_rows:>13}  {t.copied:>9}  "
                   f"{t.already_there:>13}")
    if report.append:
        click.echo(_("{rows} rows added in {tables} tables; every other source row's key "
                     "was in the target already", rows=report.rows, tables=len(report.tables)))
    else:
        click.echo(_("{rows} rows in {tables} tables; the counts of source and target agree",
                     rows=report.rows, tables=len(report.tables)))
    if report.sequences:
        click.echo(_("sequences moved past the copied ids: {columns}",
                     columns=", ".join(report.sequences)))
    click.echo(_("Sealed columns were copied as they are: the hub on the target opens them "
                 "only with the same data key (BDCHUB_DATA_KEY, or store.key from the "
                 "source hub's data folder)."))

