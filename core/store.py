"""The hub's durable state, in SQLAlchemy Core: SQLite by default, PostgreSQL supported.

What lives here, and why it is not in Python memory:

========================  ==============================================================
table                     what it holds
========================  ==============================================================
``processed``             (message_id, route) of every message a route finished, with the
                          outcome: the idempotency record that absorbs duplicate deliveries
``hops``                  one row per step a message went through (route, step, timing,
                          outcome), by business number, for ``hub trace`` and progress
``parked``                messages waiting for an endpoint to come back: the message as it
                          was at the failing step, the step, the due time, how often parked
``dead_letters``          messages no retry will help: reason, route, step, last error and
                          the whole envelope as received, for list / show / replay / drop
``dead_letter_states``    the message as it was at the failing step of a dead letter (its
                          body after the steps before), so a replay resumes at that step
``correlations``          ``await`` steps in progress: business number, awaited types,
                          deadline, and the continuation (route, step, message)
``correlation_inbox``     awaited messages as they arrive (also before their await step)
``verifications``         results of ``enrich`` steps with ``record:`` (shared-data checks)
``progress``              the latest stage of each application, with the applicant masked
                          and a keyed hash of the ID number for look-ups by applicant
``submitters``            who submitted each case (inbound client and channel), for clients
                          that may read only their own or their channel's cases
``inbound_requests``      inbound writes by their client's idempotency key or an
                          application's business number: the answer given, so a repeat
                          gets it again and is forwarded nowhere (``web.idempotency``)
``channel_suspensions``   inbound clients and whole channels an operator suspended
                          (``hub channel suspend``): who, when and why; every process
                          serving the hub refuses their requests (``web.suspensions``)
``held_applications``     applications the hub's own checklist sent back for correction
                          (sealed), until their corrected materials take them back in
``notices``               the electronic notice documents (受理通知书, 不予受理告知书,
                          补正通知书) the hub rendered for a case: the file (sealed), its
                          SHA-256 and size, for the platforms to fetch and for ``hub trace``;
                          also documents that answer a request (无房证明, kind no_property)
``notice_recipients``     whom a notice that answers a request was issued to (client,
                          channel): they fetch it as they fetch their own cases' notices
``hub_processes``         what each running hub process last reported of itself
                          (breakers, latency, deliveries in flight) for ``hub status``
``inbound_counts``        inbound requests per minute, client, tenant and outcome
                          (accepted, refused, error, with the refusal's code), added up
                          by every process for the console's channels page
========================  ==============================================================

``finish`` writes a route's whole outcome (processed record, hops, and the
parked row, dead letter, correlation, verifications or progress that came out
of it) in one transaction, so a crash leaves either all of it or none; a
second ``finish`` of the same (message, route) returns False and writes
nothing. Times are Unix seconds (floats), compared with the hub's clock.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    bindparam,
    case,
    create_engine,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.pool import StaticPool
from sqlalchemy.types import TypeDecorator

from . import greenloop
from .batches import take_batch
from .deferred_writes import DeferredWrites
from .errors import StoreError
from .health import sqlite_path
from .i18n import _
from .sealing import Sealer
from .writer_lock import WriterLock

log = logging.getLogger("bdchub.store")

#: The ``store:`` section of config.yaml (registered by ``core.config``).
SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["url"],
    "properties": {
        "url": {"type": "string", "minLength": 1,
                "description": "sqlite:///… (embedded) or postgresql://…"},
        "pool_size": {"type": "integer", "minimum": 1},
        "key_file": {"type": "string", "minLength": 1,
                     "description": "file with the 32-hex-digit SM4 key that seals personal "
                                    "data in the store (core.sealing); BDCHUB_DATA_KEY "
                                    "overrides it"},
    },
}

metadata = MetaData()


class Sealed(TypeDecorator):
    """Text holding personal data: sealed (``core.sealing``) with the store's key on
    the way in, opened on the way out. The key travels on the engine's dialect,
    so each ``Store`` seals with its own; without one, text is stored as it is."""

    impl = Text
    cache_ok = True

    def __init__(self, column: str):
        super().__init__()
        self.column = column

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        sealer: Sealer | None = getattr(dialect, "bdchub_sealer", None)
        if sealer is None or not value:  # nothing in an empty value to hide
            return value
        return sealer.seal(self.column, value)

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        sealer: Sealer | None = getattr(dialect, "bdchub_sealer", None)
        if sealer is None or value is None:
            return value
        return sealer.open(self.column, value)

ID = 40  # UUID text is 36; a little room
#: Seconds between sweeps of expired request nonces (done by the next insert).
NONCE_PURGE_EVERY = 60.0

processed = Table(
    "processed", metadata,
    Column("message_id", String(ID), primary_key=True),
    Column("route", String(200), primary_key=True),
    Column("outcome", String(32), nullable=False),
    Column("processed_at", Float, nullable=False, index=True),
)

hops = Table(
    "hops", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant", String(6), nullable=False),
    Column("business_no", String(64), nullable=False),
    Column("message_id", String(ID), nullable=False),
    Column("type", String(200), nullable=False),
    Column("route", String(200), nullable=False),
    Column("step", String(200), nullable=False),
    Column("started_at", Float, nullable=False),
    Column("duration_ms", Float, nullable=False),
    Column("outcome", String(32), nullable=False),
    Column("detail", Sealed("hops.detail"), nullable=False, default=""),
    # What a calling step called (``Hop.connector``/``operation``): the outbound calls
    # the console's audit page lists. Nullable: stores made before them get them
    # empty when next opened (``HOPS_ADDED``).
    Column("connector", String(200), nullable=True),
    Column("operation", String(200), nullable=True),
    Index("ix_hops_business", "business_no", "started_at"),
    # The console finds a message by its id (console.messages); stores made before
    # it get the index when next opened (``_LATER_INDEXES``).
    Index("ix_hops_message", "message_id"),
)

parked = Table(
    "parked", metadata,
    Column("id", String(ID), primary_key=True),  # the id the message is republished with
    Column("message_id", String(ID), nullable=False),
    Column("origin_id", String(ID), nullable=False),
    Column("route", String(200), nullable=False),
    Column("step", String(200), nullable=False),
    Column("tenant", String(6), nullable=False),
    Column("business_no", String(64), nullable=False),
    Column("reason", String(64), nullable=False),
    Column("last_error", Sealed("parked.last_error"), nullable=False),
    Column("envelope", Sealed("parked.envelope"), nullable=False),
    Column("park_count", Integer, nullable=False),
    Column("due_at", Float, nullable=False, index=True),
    Column("claimed_until", Float, nullable=True),
    Column("created_at", Float, nullable=False),
)

dead_letters = Table(
    "dead_letters", metadata,
    Column("id", String(ID), primary_key=True),
    Column("message_id", String(ID), nullable=False),
    Column("origin_id", String(ID), nullable=False),
    Column("route", String(200), nullable=False),
    Column("step", String(200), nullable=False),
    Column("type", String(200), nullable=False),
    Column("tenant", String(6), nullable=False),
    Column("business_no", String(64), nullable=False),
    Column("reason", String(64), nullable=False),
    Column("last_error", Sealed("dead_letters.last_error"), nullable=False),
    Column("envelope", Sealed("dead_letters.envelope"), nullable=False),
    Column("status", String(16), nullable=False),  # dead | replayed | dropped
    Column("replay_count", Integer, nullable=False, default=0),
    Column("created_at", Float, nullable=False),
    Column("replayed_at", Float, nullable=True),
    Index("ix_dead_letters_status", "status", "created_at"),
)

#: Beside ``dead_letters`` rather than a column of it: stores made before it get the
#: table from ``create_all``, and a dead letter without one is replayed from the start.
dead_letter_states = Table(
    "dead_letter_states", metadata,
    Column("id", String(ID), primary_key=True),  # the dead letter's id
    Column("envelope", Sealed("dead_letter_states.envelope"), nullable=False),
    Column("created_at", Float, nullable=False),
)

correlations = Table(
    "correlations", metadata,
    Column("id", String(ID), primary_key=True),
    Column("tenant", String(6), nullable=False),
    Column("business_no", String(64), nullable=False),
    Column("route", String(200), nullable=False),
    Column("step", String(200), nullable=False),
    Column("types", Text, nullable=False),  # JSON list of patterns
    Column("mode", String(8), nullable=False),
    Column("into", String(200), nullable=False),
    Column("deadline", Float, nullable=False),
    Column("envelope", Sealed("correlations.envelope"), nullable=False),
    Column("state", String(16), nullable=False),  # waiting | resumed | timed_out | done
    Column("decided_at", Float, nullable=True),
    Column("created_at", Float, nullable=False),
    Index("ix_correlations_key", "tenant", "business_no", "state"),
    Index("ix_correlations_due", "state", "deadline"),
)

correlation_inbox = Table(
    "correlation_inbox", metadata,
    Column("message_id", String(ID), primary_key=True),
    Column("tenant", String(6), nullable=False),
    Column("business_no", String(64), nullable=False),
    Column("type", String(200), nullable=False),
    Column("body", Sealed("correlation_inbox.body"), nullable=False),
    Column("arrived_at", Float, nullable=False, index=True),
    Index("ix_inbox_key", "tenant", "business_no"),
)

verifications = Table(
    "verifications", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant", String(6), nullable=False),
    Column("business_no", String(64), nullable=False, index=True),
    Column("message_id", String(ID), nullable=False),
    Column("kind", String(100), nullable=False),
    Column("connector", String(200), nullable=False),
    Column("operation", String(200), nullable=False),
    Column("result", Sealed("verifications.result"), nullable=False),
    Column("created_at", Float, nullable=False),
)

progress = Table(
    "progress", metadata,
    Column("tenant", String(6), primary_key=True),
    Column("business_no", String(64), primary_key=True),
    Column("stage", String(32), nullable=False, default=""),
    Column("status", String(32), nullable=False, default=""),
    Column("registration_type", String(8), nullable=False, default=""),
    Column("applicant_name", String(100), nullable=False, default=""),  # masked
    Column("applicant_id", String(64), nullable=False, default=""),     # masked
    Column("applicant_key", String(64), nullable=False, default=""),    # keyed hash
    Column("last_type", String(200), nullable=False, default=""),
    Column("updated_at", Float, nullable=False),
    # The source's sequence of the stage change the row holds (the registration
    # system's XH): a change of a lower one is older, whatever order it arrived in
    # (a callback and a poller's copy of one change are two messages). Stores made
    # before it get it empty when next opened (``PROGRESS_ADDED``).
    Column("stage_seq", BigInteger, nullable=True),
    Index("ix_progress_applicant", "tenant", "applicant_key"),
    Index("ix_progress_stage", "stage", "updated_at"),  # the reconciler's stale_progress
)

#: When each case first entered each stage (statistics: time at a stage, ``app.stats``).
#: ``progress`` keeps only where a case stands now and hops do not say the stage a
#: message moved it to. The first entry counts: a stage reported again (a poll, a
#: repeated callback) keeps its time; stores made before it get it from ``create_all``.
stage_entries = Table(
    "stage_entries", metadata,
    Column("tenant", String(6), primary_key=True),
    Column("business_no", String(64), primary_key=True),
    Column("stage", String(32), primary_key=True),
    Column("entered_at", Float, nullable=False),
    Index("ix_stage_entries_at", "entered_at"),
)

#: Beside ``progress`` rather than columns of it: stores made before it get the table
#: from ``create_all``. Written once per case: the first submission names its submitter,
#: so a later one under the same business number cannot take another's case over.
submitters = Table(
    "submitters", metadata,
    Column("tenant", String(6), primary_key=True),
    Column("business_no", String(64), primary_key=True),
    Column("client", String(200), nullable=False),
    Column("channel", String(32), nullable=False),
    Column("submitted_at", Float, nullable=False),
    Index("ix_submitters_client", "tenant", "client"),
)

#: Nonces of signed inbound requests, shared by every hub process on this store.
#: ``id`` is a digest of (scope + app key, nonce): fixed width whatever the client sent.
request_nonces = Table(
    "request_nonces", metadata,
    Column("id", String(64), primary_key=True),
    Column("expires_at", Float, nullable=False, index=True),
)

#: Inbound writes by idempotency key (``web.idempotency``), shared like the nonces.
#: ``id`` is a digest of (scope, tenant, client, key): a client's key may say anything,
#: so it is never stored as sent. A row is ``pending`` while its first request is
#: being handed over (until ``claimed_until``: a process that died lets go), then
#: ``done`` with the answer, until ``expires_at``.
inbound_requests = Table(
    "inbound_requests", metadata,
    Column("id", String(64), primary_key=True),
    Column("tenant", String(6), nullable=False),
    Column("client", String(200), nullable=False),
    Column("scope", String(16), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("state", String(16), nullable=False),  # pending | done
    Column("owner", String(ID), nullable=False),
    Column("message_id", String(ID), nullable=False, default=""),
    Column("answer", Sealed("inbound_requests.answer"), nullable=True),
    Column("created_at", Float, nullable=False),
    Column("claimed_until", Float, nullable=False),
    Column("expires_at", Float, nullable=False, index=True),
)


#: Electronic notices (``routes.steps.domain.render_notice``). ``id`` is derived from the
#: message the notice answers, so a run repeated after a crash keeps the first file.
#: The file may name the applicant or a reason about them: sealed like other personal data.
notices = Table(
    "notices", metadata,
    Column("id", String(ID), primary_key=True),
    Column("tenant", String(6), nullable=False),
    Column("business_no", String(64), nullable=False),
    Column("message_id", String(ID), nullable=False),
    Column("kind", String(32), nullable=False),  # acceptance | refusal | correction
    Column("name", String(200), nullable=False),
    Column("media_type", String(100), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("size", Integer, nullable=False),
    Column("content", Sealed("notices.content"), nullable=False),  # base64 of the file
    Column("created_at", Float, nullable=False),
    Index("ix_notices_case", "tenant", "business_no"),
)
#: Applications the hub sent back for correction before the registration system saw
#: them (``require_materials`` with ``hold``): the registration system cannot take their
#: corrected materials, so the hub keeps the application until they come
#: (``resume_held``). One row per case; a second send-back replaces it.
held_applications = Table(
    "held_applications", metadata,
    Column("tenant", String(6), primary_key=True),
    Column("business_no", String(64), primary_key=True),
    Column("route", String(200), nullable=False),
    Column("envelope", Sealed("held_applications.envelope"), nullable=False),
    Column("held_at", Float, nullable=False),
)

#: The date by which a case's correction is due, as its latest 补正通知书 stated it
#: (``render_notice``): corrected materials after it are refused at the door. A case
#: sent back without a date (the registration system's own 补正) has no row.
correction_deadlines = Table(
    "correction_deadlines", metadata,
    Column("tenant", String(6), primary_key=True),
    Column("business_no", String(64), primary_key=True),
    Column("deadline", String(10), nullable=False),  # YYYY-MM-DD, the last day it is taken
    Column("notice_id", String(ID), nullable=False),
    Column("noticed_at", Float, nullable=False),
)

#: Whom a notice was issued to when it answers a request rather than a case (a
#: no-property certificate answers the platform that asked, and no client submitted
#: its number): that client, or a client of that channel, may fetch it.
notice_recipients = Table(
    "notice_recipients", metadata,
    Column("notice_id", String(ID), primary_key=True),
    Column("client", String(200), nullable=False),
    Column("channel", String(32), nullable=False),
)

_NOTICE_FIELDS = ("id", "tenant", "business_no", "message_id", "kind", "name", "media_type",
                  "sha256", "size", "created_at")

#: Suspended inbound clients (``kind`` client) and channels (``kind`` channel), read by
#: every process serving the hub. Resuming deletes the row; the audit log keeps both.
channel_suspensions = Table(
    "channel_suspensions", metadata,
    Column("kind", String(8), primary_key=True),  # client | channel
    Column("name", String(200), primary_key=True),
    Column("suspended_by", String(200), nullable=False),
    Column("reason", Text, nullable=False),
    Column("suspended_at", Float, nullable=False),
)


#: What each running hub process last reported of itself (``app.status``): its
#: connectors' breakers and latency and its routes' deliveries in flight, as JSON. One
#: row per process, replaced every few seconds and deleted when the process stops;
#: ``hub status`` tells a fresh report from a stale one by ``reported_at``.
hub_processes = Table(
    "hub_processes", metadata,
    Column("process", String(200), primary_key=True),  # host:pid:start
    Column("started_at", Float, nullable=False),
    Column("reported_at", Float, nullable=False),
    Column("report", Text, nullable=False),
)

#: Inbound requests counted per minute (``minute``: its first second, Unix time),
#: client, channel, tenant, outcome (accepted | refused | error) and code (the refusal's
#: error code; empty when accepted). Every process adds its counts to the same rows
#: (``count_request``: kept in memory and added every ``REQUEST_COUNTS_EVERY`` seconds
#: and on ``close``), so the sums cover every process and outlive restarts; a client
#: not known yet (a bad app key) is counted as client "".
inbound_counts = Table(
    "inbound_counts", metadata,
    Column("minute", Integer, primary_key=True),
    Column("client", String(200), primary_key=True),
    Column("channel", String(32), primary_key=True),
    Column("tenant", String(6), primary_key=True),
    Column("outcome", String(8), primary_key=True),
    Column("code", String(64), primary_key=True),
    Column("count", Integer, nullable=False),
)
#: Seconds a process keeps its inbound counts before adding them to the store: a
#: request costs a dict update, not a store write; a process killed outright loses at
#: most this long of counts.
REQUEST_COUNTS_EVERY = 2.0
#: How long the per-minute inbound counts are kept.
REQUEST_COUNTS_KEEP = 92 * 86400.0


@dataclass
class Finish:
    """Everything one route run leaves behind, written by ``Store.finish`` at once."""

    message_id: str
    route: str
    outcome: str
    tenant: str
    business_no: str
    type: str
    hops: Sequence[Any] = ()  # core.envelope.Hop
    parked: dict[str, Any] | None = None
    dead_letter: dict[str, Any] | None = None
    correlation: dict[str, Any] | None = None
    verifications: Sequence[dict[str, Any]] = ()
    # progress columns; ``submitted_by`` / ``submitted_channel`` name the case's
    # submitter when the run's message opened it (kept only if none is known yet)
    progress: dict[str, Any] | None = None
    record_processed: bool = True
    at: float = field(default_factory=time.time)
    # Other (tenant, business number) keys the hops are also written under: a run
    # that re-keyed its message (``set: business_no``) stays in the former
    # number's trace too, as the hand-over it was.
    also_under: Sequence[tuple[str, str]] = ()


def _hop_keys(rec: Finish) -> list[tuple[str, str]]:
    """The distinct (tenant, business number) keys ``rec``'s hops are written under."""
    keys: list[tuple[str, str]] = []
    for key in ((rec.tenant, rec.business_no), *rec.also_under):
        if key[1] and key not in keys:
            keys.append(key)
    return keys


def _has_writes(rec: Finish) -> bool:
    """Whether ``Store._write`` would write anything for ``rec``."""
    return bool(rec.record_processed or ((rec.business_no or rec.also_under) and rec.hops)
                or rec.parked
                or rec.dead_letter or rec.correlation or rec.verifications or rec.progress)


# Statements used for every message are built once: building a Core statement
# costs more than executing it on SQLite.
_IS_PROCESSED = select(processed.c.outcome).where(
    processed.c.message_id == bindparam("m"), processed.c.route == bindparam("r"))
_PROCESSED_AMONG = select(processed.c.message_id).where(
    processed.c.route == bindparam("r"), processed.c.message_id.in_(bindparam("m", expanding=True)))
_INSERT_PROCESSED = insert(processed)
_INSERT_HOPS = insert(hops)
_PROGRESS_COLUMNS = ("stage", "status", "registration_type", "applicant_name", "applicant_id",
                     "applicant_key", "last_type")


def _dialect_insert(dialect: str) -> Any:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    return dialect_insert


#: The stages after which a case's recorded stage never moves back (BRIEF §4).
_FORWARD_ONLY = ("registration", "certificate", "archive")


def _progress_upsert(dialect: str) -> Any:
    stmt = _dialect_insert(dialect)(progress)
    # An empty value in a message leaves what the application already has.
    keep = {c: func.coalesce(func.nullif(stmt.excluded[c], ""), progress.c[c])
            for c in _PROGRESS_COLUMNS}
    # After its entry in the register a case only moves forward: a report of an earlier
    # stage that finishes late (routes finish in any order; the fan-out of 缮证 may end
    # after the 归档 itself) keeps the stage and status the case has.
    ranks = {stage: i for i, stage in enumerate(_FORWARD_ONLY)}
    late = and_(case(ranks, value=progress.c.stage, else_=-1) >= 0,
                case(ranks, value=keep["stage"], else_=-1)
                < case(ranks, value=progress.c.stage, else_=-1))
    # A stage change older at its source than the one the row holds (a lower
    # sequence) keeps the stage and status too: the application never reads backwards.
    older = and_(stmt.excluded.stage_seq.is_not(None), progress.c.stage_seq.is_not(None),
                 stmt.excluded.stage_seq < progress.c.stage_seq)
    late = or_(late, older)
    keep["stage"] = case((late, progress.c.stage), else_=keep["stage"])
    keep["status"] = case((late, progress.c.status), else_=keep["status"])
    keep["stage_seq"] = case((older, progress.c.stage_seq),
                             else_=func.coalesce(stmt.excluded.stage_seq, progress.c.stage_seq))
    # A report that changes nothing (a poll of the stage the case is at) writes
    # nothing: updated_at stays the time the case last moved, which the reconciler
    # measures a stage's time from.
    changed = or_(*(keep[c] != progress.c[c] for c in _PROGRESS_COLUMNS))
    return stmt.on_conflict_do_update(index_elements=[progress.c.tenant, progress.c.business_no],
                                      set_={**keep, "updated_at": stmt.excluded.updated_at},
                                      where=changed)


def in_memory(url: str) -> bool:
    """Whether ``url`` is an in-memory SQLite store (nothing of it rests on disk)."""
    return url in ("sqlite://", "sqlite:///:memory:")


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


#: Indexes added after their table first shipped.
_LATER_INDEXES = [i for i in hops.indexes if i.name == "ix_hops_message"]
#: Columns of ``hops`` added after its first release: a store made before gets them.
HOPS_ADDED = ("connector", "operation")
#: Columns of ``progress`` added after its first release.
PROGRESS_ADDED = ("stage_seq",)


class Store:
    """The store at ``url`` (``sqlite:///path``, ``sqlite://`` in memory, ``postgresql://…``)."""

    def __init__(self, url: str, *, pool_size: int | None = None, create: bool = True,
                 group_commit: bool = True, sealer: Sealer | None = None):
        self.url = url
        try:
            self.engine = self._engine(url, pool_size)
            # Read by the Sealed columns: personal data is sealed with this store's key.
            self.engine.dialect.bdchub_sealer = sealer  # type: ignore[attr-defined]
            self.sealer = sealer
            if create:
                metadata.create_all(self.engine)
                _add_missing_columns(self.engine, hops, HOPS_ADDED)
                _add_missing_columns(self.engine, progress, PROGRESS_ADDED)
                for index in _LATER_INDEXES:  # create_all leaves existing tables alone
                    index.create(self.engine, checkfirst=True)
        except SQLAlchemyError as exc:
            raise StoreError(_("the store at {url} cannot be opened: {error}",
                               url=_safe_url(url), error=exc)) from exc
        self.dialect = self.engine.dialect.name
        self._upsert = _progress_upsert(self.dialect)
        self._first_submitter = _dialect_insert(self.dialect)(submitters).on_conflict_do_nothing(
            index_elements=[submitters.c.tenant, submitters.c.business_no])
        self._first_entry = _dialect_insert(self.dialect)(stage_entries).on_conflict_do_nothing(
            index_elements=[stage_entries.c.tenant, stage_entries.c.business_no,
                            stage_entries.c.stage])
        self.group_commit = group_commit
        self._group: _GroupCommit | None = None
        self._group_lock = threading.Lock()
        # SQLite has one writer at a time; queueing writers here (and, across the
        # processes on one file, on a lock file: core.writer_lock) is cheaper than
        # letting them poll the database's lock.
        self._write_lock = WriterLock(sqlite_path(url)) if self.dialect == "sqlite" else None
        self._nonce_purge_at = 0.0
        self._request_purge_at = 0.0
        self._tally = _RequestTally(self)
        self._deferred: DeferredWrites[Finish] = DeferredWrites(self._write_deferred,
                                                                name="store-deferred")

    @staticmethod
    def _engine(url: str, pool_size: int | None) -> Engine:
        if url.startswith("sqlite"):
            memory = in_memory(url)
            kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": 60}}
            if memory:
                kwargs["poolclass"] = StaticPool
            engine = create_engine(url, **kwargs)

            @event.listens_for(engine, "connect")
            def _connect(dbapi_conn, _record):  # noqa: ANN001
                dbapi_conn.isolation_level = None  # we say BEGIN ourselves
                cur = dbapi_conn.cursor()
                if not memory:
                    cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.execute("PRAGMA busy_timeout=60000")
                cur.close()

            @event.listens_for(engine, "begin")
            def _begin(conn):  # noqa: ANN001
                # Writers take the lock up front: a deferred transaction that reads
                # and then writes can fail with "database is locked" under contention.
                write = conn.get_execution_options().get("bdchub_write")
                conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

            return engine
        if url.startswith("postgres://"):
            url = "postgresql://" + url[len("postgres://"):]
        if url.startswith("postgresql://"):
            url = "postgresql+" + _pg_driver() + url[len("postgresql"):]
        return create_engine(url, pool_pre_ping=True, pool_size=pool_size or 10, max_overflow=10)

    def ping(self, timeout: float = 2.0) -> None:
        """Raise unless the database answers now (``/readyz``)."""
        from .health import ping_sqlite, sqlite_path

        path = sqlite_path(self.url)
        if path is not None:
            ping_sqlite(path, timeout)
            return
        with self.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")

    def close(self) -> None:
        self._deferred.close()  # what requests left to write, while the store is open
        self._tally.close()  # the counts not added yet, while the store is still open
        group, self._group = self._group, None
        if group is not None:
            group.close()
        with contextlib.suppress(Exception):
            self.engine.dispose()
        if self._write_lock is not None:
            self._write_lock.close()

    # -- transactions
    @contextlib.contextmanager
    def _tx(self) -> Iterator[Connection]:
        lock = self._write_lock or contextlib.nullcontext()
        try:
            with lock, self.engine.connect() as conn:
                conn = conn.execution_options(bdchub_write=True)
                with conn.begin():
                    yield conn
        except IntegrityError:
            raise
        except SQLAlchemyError as exc:
            raise StoreError(_("store failure: {error}", error=exc)) from exc

    @contextlib.contextmanager
    def _read(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise StoreError(_("store failure: {error}", error=exc)) from exc

    # -- idempotency and outcomes
    def is_processed(self, message_id: str, route: str) -> bool:
        with self._read() as conn:
            row = conn.execute(_IS_PROCESSED, {"m": message_id, "r": route}).first()
        return row is not None

    def processed_among(self, message_ids: Sequence[str], route: str) -> set[str]:
        """Which of ``message_ids`` ``route`` has processed: ``is_processed`` of a
        batch of deliveries in one query."""
        if not message_ids:
            return set()
        with self._read() as conn:
            rows = conn.execute(_PROCESSED_AMONG, {"m": sorted(set(message_ids)), "r": route})
            return {row[0] for row in rows}

    def outcome_of(self, message_id: str, route: str) -> str | None:
        with self._read() as conn:
            row = conn.execute(select(processed.c.outcome).where(
                processed.c.message_id == message_id, processed.c.route == route)).first()
        return row[0] if row else None

    def finish(self, rec: Finish) -> bool:
        """Write a route's outcome at once. False (and nothing written) if already recorded.

        Outcomes of concurrent workers are committed together (group commit): one
        writer thread takes whatever is waiting and writes it in one transaction,
        so worker threads do not queue on the database one commit at a time. A
        batch that hits a conflict is written again one outcome at a time, so each
        caller still gets its own answer.
        """
        if not _has_writes(rec):
            # A request/reply route on a message without a business number leaves
            # nothing behind; skipping the empty transaction spares the write lock.
            return True
        # On the inbound server's event loop the write waits in a thread, not the loop.
        if not self.group_commit:
            return greenloop.blocking(self._finish_one, rec)
        # On the loop the request waits for the writer's answer in its greenlet: no
        # thread of the server's in between to hand it over (issue #15).
        return greenloop.result(self._writer().enqueue(rec))

    def defer(self, rec: Finish) -> None:
        """Write ``rec`` soon, not now: within ``deferred_writes.WITHIN`` seconds, with
        what other requests deferred, and at ``close`` (``core.deferred_writes``). For
        what nobody reads before the answer (a request/reply route's trace hops);
        what an answer promises goes through ``finish``."""
        if _has_writes(rec):
            self._deferred.submit(rec)

    def flush_deferred(self) -> None:
        """Write what ``defer`` holds, now."""
        self._deferred.flush()

    def _write_deferred(self, recs: Sequence[Finish]) -> None:
        try:
            self._finish_many(recs)
        except IntegrityError:
            for rec in recs:  # one at a time: a record that conflicts never will fit
                try:
                    self._finish_many([rec])
                except IntegrityError as exc:
                    log.error(_("route {route}: the trace of message {id} conflicts with "
                                "the store and is not written: {error}", route=rec.route,
                                id=rec.message_id, error=exc))

    def finish_many(self, recs: Sequence[Finish]) -> list[bool]:
        """``finish`` of each of ``recs``, in one transaction on the calling thread: a
        batch of one route's deliveries is together already, and handing each to
        the group writer would only add a thread hand-over per message. A batch
        that hits a conflict is written again one at a time; each answer is
        ``finish``'s (False: already recorded, nothing written)."""
        writing = [rec for rec in recs if _has_writes(rec)]
        if writing:
            try:
                self._finish_many(writing)
            except IntegrityError:
                return [self._finish_one(rec) if _has_writes(rec) else True for rec in recs]
        return [True] * len(recs)

    def _writer(self) -> _GroupCommit:
        if self._group is None:
            with self._group_lock:
                if self._group is None:
                    self._group = _GroupCommit(self)
        return self._group

    def _finish_one(self, rec: Finish) -> bool:
        try:
            with self._tx() as conn:
                self._write(conn, [rec])
        except IntegrityError as exc:
            # Only a processed record that is already there makes this a duplicate;
            # any other conflict must not be mistaken for one (the outcome would be lost).
            if rec.record_processed and self.is_processed(rec.message_id, rec.route):
                return False
            raise StoreError(_("store conflict: {error}", error=exc)) from exc
        return True

    def _finish_many(self, recs: Sequence[Finish]) -> None:
        """All of ``recs`` in one transaction; IntegrityError if any conflicts."""
        with self._tx() as conn:
            self._write(conn, recs)

    def _write(self, conn: Connection, recs: Sequence[Finish]) -> None:
        done = [{"message_id": r.message_id, "route": r.route, "outcome": r.outcome,
                 "processed_at": r.at} for r in recs if r.record_processed]
        if done:
            conn.execute(_INSERT_PROCESSED, done)
        steps = [{"tenant": tenant, "business_no": business_no, "message_id": r.message_id,
                  "type": r.type, "route": h.route, "step": h.step[:200],
                  "started_at": h.started_at, "duration_ms": h.duration_ms,
                  "outcome": h.outcome[:32], "detail": (h.detail or "")[:500],
                  "connector": h.connector[:200], "operation": h.operation[:200]}
                 for r in recs for tenant, business_no in _hop_keys(r) for h in r.hops]
        if steps:
            conn.execute(_INSERT_HOPS, steps)
        for r in recs:
            if r.parked:
                conn.execute(insert(parked).values(created_at=r.at, claimed_until=None,
                                                   **r.parked))
            if r.dead_letter:
                row = dict(r.dead_letter)
                state = row.pop("state", None)
                conn.execute(insert(dead_letters).values(
                    status="dead", replay_count=0, created_at=r.at, **row))
                if state:
                    conn.execute(insert(dead_letter_states).values(
                        id=row["id"], envelope=state, created_at=r.at))
            if r.correlation:
                conn.execute(insert(correlations).values(
                    state="waiting", created_at=r.at, **r.correlation))
            if r.verifications:
                conn.execute(insert(verifications), [
                    {"tenant": r.tenant, "business_no": r.business_no,
                     "message_id": r.message_id, "created_at": r.at, **v}
                    for v in r.verifications])
        # Several outcomes of one application in a batch: one row each, in order
        # (one statement may not touch the same row twice on PostgreSQL).
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        for r in recs:
            if r.progress:
                key = (r.tenant, r.business_no)
                row = rows.setdefault(key, {"tenant": r.tenant, "business_no": r.business_no,
                                            **{c: "" for c in _PROGRESS_COLUMNS},
                                            "stage_seq": None})
                seq = r.progress.get("stage_seq")
                older = seq is not None and row["stage_seq"] is not None \
                    and seq < row["stage_seq"]
                row.update({c: r.progress[c] for c in _PROGRESS_COLUMNS if r.progress.get(c)
                            and not (older and c in ("stage", "status"))})
                if seq is not None and not older:
                    row["stage_seq"] = seq
                row["updated_at"] = r.at
        if rows:
            conn.execute(self._upsert, list(rows.values()))
        entries = {(r.tenant, r.business_no, r.progress["stage"][:32]): r.at
                   for r in reversed(recs) if r.progress and r.progress.get("stage")}
        if entries:
            conn.execute(self._first_entry, [
                {"tenant": t, "business_no": b, "stage": st, "entered_at": at}
                for (t, b, st), at in entries.items()])
        opened: dict[tuple[str, str], dict[str, Any]] = {}
        for r in recs:
            if r.progress and r.progress.get("submitted_by"):
                opened.setdefault((r.tenant, r.business_no), {
                    "tenant": r.tenant, "business_no": r.business_no,
                    "client": r.progress["submitted_by"],
                    "channel": r.progress.get("submitted_channel") or "", "submitted_at": r.at})
        if opened:
            conn.execute(self._first_submitter, list(opened.values()))

    def purge_processed(self, before: float) -> int:
        """Forget idempotency records older than ``before`` (retention)."""
        with self._tx() as conn:
            return conn.execute(delete(processed).where(processed.c.processed_at < before)).rowcount

    # -- nonces of signed requests
    def remember_nonce(self, digest: str, expires_at: float, now: float) -> bool:
        """Record a request nonce (``digest``) until ``expires_at``. False when it is
        recorded and unexpired already: a replay, whichever process saw it first."""
        purge = now >= self._nonce_purge_at
        try:
            with self._tx() as conn:
                if purge:
                    conn.execute(delete(request_nonces).where(request_nonces.c.expires_at < now))
                conn.execute(insert(request_nonces).values(id=digest, expires_at=expires_at))
        except IntegrityError:
            # Seen before; still a replay unless that record has run out.
            try:
                with self._tx() as conn:
                    gone = conn.execute(delete(request_nonces).where(
                        request_nonces.c.id == digest,
                        request_nonces.c.expires_at < now)).rowcount
                    if not gone:
                        return False
                    conn.execute(insert(request_nonces).values(id=digest, expires_at=expires_at))
            except IntegrityError:
                return False  # another process took it in between
        if purge:
            self._nonce_purge_at = now + NONCE_PURGE_EVERY
        return True

    # -- inbound requests by idempotency key
    def claim_request(self, request_id: str, *, tenant: str, client: str, scope: str,
                      fingerprint: str, owner: str, now: float, lease: float,
                      expires_at: float) -> dict[str, Any] | None:
        """Take ``request_id`` for ``owner`` (insert-or-fail: whichever process inserts
        first forwards the request). None when taken; else the row that holds it, with
        its answer once done. An expired row, or one pending past its lease (its owner
        died before answering), is taken over."""
        row = {"id": request_id, "tenant": tenant, "client": client, "scope": scope,
               "fingerprint": fingerprint, "state": "pending", "owner": owner,
               "message_id": "", "answer": None, "created_at": now,
               "claimed_until": now + lease, "expires_at": expires_at}
        purge = now >= self._request_purge_at
        try:
            with self._tx() as conn:
                if purge:
                    conn.execute(delete(inbound_requests).where(
                        inbound_requests.c.expires_at < now))
                conn.execute(insert(inbound_requests).values(**row))
        except IntegrityError:
            held = self.inbound_request(request_id)
            if held is None:  # released in between: try once more, as a newcomer
                return self._claim_again(row)
            if held["expires_at"] >= now and (held["state"] == "done"
                                              or held["claimed_until"] >= now):
                return held
            with self._tx() as conn:
                taken = conn.execute(update(inbound_requests).where(
                    inbound_requests.c.id == request_id,
                    inbound_requests.c.owner == held["owner"]).values(**row)).rowcount
            return None if taken else (self.inbound_request(request_id) or row)
        if purge:
            self._request_purge_at = now + NONCE_PURGE_EVERY
        return None

    def _claim_again(self, row: dict[str, Any]) -> dict[str, Any] | None:
        try:
            with self._tx() as conn:
                conn.execute(insert(inbound_requests).values(**row))
        except IntegrityError:
            return self.inbound_request(row["id"]) or row
        return None

    def inbound_request(self, request_id: str) -> dict[str, Any] | None:
        # Under the write lock: an in-memory store is one connection for every thread,
        # and a repeat reads while the first request writes.
        with self._tx() as conn:
            row = conn.execute(select(inbound_requests).where(
                inbound_requests.c.id == request_id)).mappings().first()
        return dict(row) if row else None

    def settle_request(self, request_id: str, owner: str, *, message_id: str, answer: str,
                       expires_at: float) -> bool:
        """Keep ``answer`` for the request ``owner`` holds; False if it no longer does."""
        with self._tx() as conn:
            return conn.execute(update(inbound_requests).where(
                inbound_requests.c.id == request_id, inbound_requests.c.owner == owner,
                inbound_requests.c.state == "pending").values(
                state="done", message_id=message_id, answer=answer,
                expires_at=expires_at)).rowcount == 1

    def release_request(self, request_id: str, owner: str) -> bool:
        """Forget a pending request ``owner`` holds (nothing was accepted)."""
        with self._tx() as conn:
            return conn.execute(delete(inbound_requests).where(
                inbound_requests.c.id == request_id, inbound_requests.c.owner == owner,
                inbound_requests.c.state == "pending")).rowcount == 1

    # -- suspended clients and channels
    def suspend(self, kind: str, name: str, *, by: str, reason: str,
                at: float) -> dict[str, Any] | None:
        """Suspend a client or channel (``kind`` client | channel). None when done; the
        row already there when it was suspended before (kept as it is: the first
        suspension's who, when and why stand until it is resumed)."""
        row = {"kind": kind, "name": name, "suspended_by": by, "reason": reason,
               "suspended_at": at}
        try:
            with self._tx() as conn:
                conn.execute(insert(channel_suspensions).values(**row))
        except IntegrityError:
            return next((r for r in self.suspensions()
                         if (r["kind"], r["name"]) == (kind, name)), row)
        return None

    def resume(self, kind: str, name: str) -> dict[str, Any] | None:
        """Lift a suspension; the row it removed, or None when there was none."""
        where = and_(channel_suspensions.c.kind == kind, channel_suspensions.c.name == name)
        with self._tx() as conn:
            row = conn.execute(select(channel_suspensions).where(where)).mappings().first()
            if row is None:
                return None
            conn.execute(delete(channel_suspensions).where(where))
        return dict(row)

    def suspensions(self) -> list[dict[str, Any]]:
        """Every suspension in force, oldest first."""
        # Under the write lock: an in-memory store is one connection for every thread,
        # and the inbound server reads this while other requests write.
        with self._tx() as conn:
            rows = conn.execute(select(channel_suspensions).order_by(
                channel_suspensions.c.suspended_at)).mappings()
            return [dict(r) for r in rows]

    def channel_counts(self) -> list[dict[str, Any]]:
        """Cases by the channel and client that submitted them (``submitters``): how
        many, how many were refused (不予受理, 不予登记), archived, and have a dead
        letter waiting for an operator."""
        same_case = and_(progress.c.tenant == submitters.c.tenant,
                         progress.c.business_no == submitters.c.business_no)
        refused = func.sum(case((progress.c.stage.in_(("refusal", "refusal_to_register")), 1),
                                else_=0))
        archived = func.sum(case((progress.c.stage == "archive", 1), else_=0))
        by = (submitters.c.channel, submitters.c.client)
        totals = (select(*by, func.count().label("cases"), refused.label("refused"),
                         archived.label("archived"))
                  .select_from(submitters.outerjoin(progress, same_case)).group_by(*by))
        failed = (select(*by, func.count(func.distinct(dead_letters.c.business_no)))
                  .select_from(submitters.join(dead_letters, and_(
                      dead_letters.c.tenant == submitters.c.tenant,
                      dead_letters.c.business_no == submitters.c.business_no)))
                  .where(dead_letters.c.status == "dead").group_by(*by))
        with self._read() as conn:
            rows = [dict(r) for r in conn.execute(totals).mappings()]
            errors = {(c, n): int(k) for c, n, k in conn.execute(failed)}
        for row in rows:
            row["refused"] = int(row["refused"] or 0)
            row["archived"] = int(row["archived"] or 0)
            row["dead_letters"] = errors.get((row["channel"], row["client"]), 0)
        return rows

    # -- parked
    def due_parked(self, now: float, limit: int = 100) -> list[dict[str, Any]]:
        with self._read() as conn:
            rows = conn.execute(select(parked).where(
                parked.c.due_at <= now,
                or_(parked.c.claimed_until.is_(None), parked.c.claimed_until < now))
                .order_by(parked.c.due_at).limit(limit)).mappings().all()
        return [dict(r) for r in rows]

    def claim_due_parked(self, now: float, limit: int, lease: float,
                         routes: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Parked messages (of ``routes``, or any) due at ``now``, each claimed for
        ``lease`` seconds by this caller alone (every worker's scheduler asks).

        On PostgreSQL one transaction takes them ``FOR UPDATE SKIP LOCKED``: rows
        another worker is claiming are passed over, not waited for, so the workers
        share out the due rows instead of queueing on the same ones. On SQLite, which
        has one writer at a time, each row is claimed by a conditional update
        (``claim_parked``)."""
        due = and_(parked.c.due_at <= now,
                   or_(parked.c.claimed_until.is_(None), parked.c.claimed_until < now))
        if routes is not None:
            due = and_(due, parked.c.route.in_(list(routes)))
        if self.engine.dialect.name != "postgresql":
            with self._read() as conn:
                rows = [dict(r) for r in conn.execute(
                    select(parked).where(due).order_by(parked.c.due_at).limit(limit)).mappings()]
            return [row for row in rows if self.claim_parked(row["id"], now, lease)]
        with self._tx() as conn:
            rows = [dict(r) for r in conn.execute(
                select(parked).where(due).order_by(parked.c.due_at).limit(limit)
                .with_for_update(skip_locked=True)).mappings()]
            if rows:
                conn.execute(update(parked).where(parked.c.id.in_([r["id"] for r in rows]))
                             .values(claimed_until=now + lease))
        return rows

    def claim_parked(self, parked_id: str, now: float, lease: float) -> bool:
        with self._tx() as conn:
            return conn.execute(update(parked).where(
                parked.c.id == parked_id,
                or_(parked.c.claimed_until.is_(None), parked.c.claimed_until < now))
                .values(claimed_until=now + lease)).rowcount == 1

    def delete_parked(self, parked_id: str) -> None:
        with self._tx() as conn:
            conn.execute(delete(parked).where(parked.c.id == parked_id))

    def parked_due_now(self, parked_id: str, now: float) -> bool:
        """An operator's "retry now": the parked message comes due at ``now``, so the
        scheduler's next tick republishes it. False when no such row waits (never
        parked, delivered already, or being delivered under a claim)."""
        with self._tx() as conn:
            return conn.execute(update(parked).where(
                parked.c.id == parked_id,
                or_(parked.c.claimed_until.is_(None), parked.c.claimed_until < now))
                .values(due_at=now)).rowcount == 1

    def parked_list(self, limit: int = 100) -> list[dict[str, Any]]:
        with self._read() as conn:
            rows = conn.execute(select(parked).order_by(parked.c.due_at).limit(limit)).mappings()
            return [dict(r) for r in rows]

    def count(self, table_name: str, **where: Any) -> int:
        table = metadata.tables[table_name]
        with self._read() as conn:
            q = select(func.count()).select_from(table)
            for key, value in where.items():
                q = q.where(table.c[key] == value)
            return int(conn.execute(q).scalar_one())

    # -- dead letters
    def add_dead_letter(self, **row: Any) -> None:
        with self._tx() as conn:
            conn.execute(insert(dead_letters).values(
                status="dead", replay_count=0, created_at=row.pop("at", time.time()), **row))

    def dead_letters(self, *, status: str = "dead", limit: int = 100,
                     route: str | None = None) -> list[dict[str, Any]]:
        q = select(dead_letters).where(dead_letters.c.status == status)
        if route:
            q = q.where(dead_letters.c.route == route)
        with self._read() as conn:
            rows = conn.execute(q.order_by(dead_letters.c.created_at).limit(limit)).mappings()
            return [dict(r) for r in rows]

    def dead_letter(self, dl_id: str) -> dict[str, Any] | None:
        with self._read() as conn:
            row = conn.execute(select(dead_letters).where(
                or_(dead_letters.c.id == dl_id, dead_letters.c.id.startswith(dl_id, autoescape=True))
                if len(dl_id) >= 8 else dead_letters.c.id == dl_id)).mappings().all()
        if len(row) != 1:
            return None
        return dict(row[0])

    def dead_letter_state(self, dl_id: str) -> str | None:
        """The envelope (JSON) of dead letter ``dl_id`` as it was at its failing step,
        or None when it was not kept (a malformed message, an older dead letter)."""
        with self._read() as conn:
            row = conn.execute(select(dead_letter_states.c.envelope).where(
                dead_letter_states.c.id == dl_id)).first()
        return row[0] if row else None

    def mark_replayed(self, dl_id: str, now: float) -> int | None:
        """Move a dead letter to ``replayed``; its new replay count, or None if not dead."""
        with self._tx() as conn:
            row = conn.execute(select(dead_letters.c.replay_count).where(
                dead_letters.c.id == dl_id, dead_letters.c.status == "dead")).first()
            if row is None:
                return None
            count = int(row[0]) + 1
            conn.execute(update(dead_letters).where(dead_letters.c.id == dl_id).values(
                status="replayed", replay_count=count, replayed_at=now))
            return count

    def drop_dead_letter(self, dl_id: str) -> bool:
        with self._tx() as conn:
            return conn.execute(update(dead_letters).where(
                dead_letters.c.id == dl_id, dead_letters.c.status == "dead")
                .values(status="dropped")).rowcount == 1

    # -- correlation
    def inbox_add(self, message_id: str, tenant: str, business_no: str, type_: str,
                  body: Any, now: float) -> bool:
        try:
            with self._tx() as conn:
                conn.execute(insert(correlation_inbox).values(
                    message_id=message_id, tenant=tenant, business_no=business_no,
                    type=type_, body=_dumps(body), arrived_at=now))
        except IntegrityError:
            return False
        return True

    def inbox(self, tenant: str, business_no: str) -> list[dict[str, Any]]:
        with self._read() as conn:
            rows = conn.execute(select(correlation_inbox).where(
                correlation_inbox.c.tenant == tenant,
                correlation_inbox.c.business_no == business_no)
                .order_by(correlation_inbox.c.arrived_at)).mappings()
            return [{**r, "body": json.loads(r["body"])} for r in rows]

    def purge_inbox(self, before: float) -> int:
        with self._tx() as conn:
            return conn.execute(delete(correlation_inbox).where(
                correlation_inbox.c.arrived_at < before)).rowcount

    def correlation(self, corr_id: str) -> dict[str, Any] | None:
        with self._read() as conn:
            row = conn.execute(select(correlations).where(correlations.c.id == corr_id)).mappings().first()
        return _corr(row) if row else None

    def waiting_correlations(self, tenant: str, business_no: str) -> list[dict[str, Any]]:
        with self._read() as conn:
            rows = conn.execute(select(correlations).where(
                correlations.c.tenant == tenant, correlations.c.business_no == business_no,
                correlations.c.state == "waiting")).mappings()
            return [_corr(r) for r in rows]

    def due_correlations(self, now: float, limit: int = 100) -> list[dict[str, Any]]:
        with self._read() as conn:
            rows = conn.execute(select(correlations).where(
                correlations.c.state == "waiting", correlations.c.deadline <= now)
                .order_by(correlations.c.deadline).limit(limit)).mappings()
            return [_corr(r) for r in rows]

    def undelivered_decisions(self, before: float, limit: int = 100) -> list[dict[str, Any]]:
        """Correlations decided (resumed or timed out) before ``before`` whose
        continuation was perhaps never published (the deciding process died)."""
        with self._read() as conn:
            rows = conn.execute(select(correlations).where(
                correlations.c.state.in_(("resumed", "timed_out")),
                correlations.c.decided_at < before).limit(limit)).mappings()
            return [_corr(r) for r in rows]

    def decide_correlation(self, corr_id: str, state: str, now: float,
                           envelope: str | None = None) -> bool:
        """waiting -> ``state``, exactly once across every worker."""
        values: dict[str, Any] = {"state": state, "decided_at": now}
        if envelope is not None:
            values["envelope"] = envelope
        with self._tx() as conn:
            return conn.execute(update(correlations).where(
                correlations.c.id == corr_id, correlations.c.state == "waiting")
                .values(**values)).rowcount == 1

    def close_correlation(self, corr_id: str) -> None:
        with self._tx() as conn:
            conn.execute(update(correlations).where(
                correlations.c.id == corr_id,
                correlations.c.state.in_(("resumed", "timed_out"))).values(state="done"))

    # -- trace and progress
    def trace(self, business_no: str, tenant: str | None = None,
              limit: int = 10_000) -> list[dict[str, Any]]:
        self._deferred.flush()  # this process's deferred hops are part of the case
        q = select(hops).where(hops.c.business_no == business_no)
        if tenant:
            q = q.where(hops.c.tenant == tenant)
        with self._read() as conn:
            rows = conn.execute(q.order_by(hops.c.started_at, hops.c.id).limit(limit)).mappings()
            return [dict(r) for r in rows]

    def calls(self, *, since: float | None = None, until: float | None = None,
              business_no: str | None = None, connector: str | None = None,
              action: str | None = None, tenants: Sequence[str] | None = None,
              before: int | None = None, after: int | None = None, newest_first: bool = True,
              limit: int = 200) -> list[dict[str, Any]]:
        """Hops of calling steps (the outbound calls to departments), by hop id: newest
        first below ``before``, or oldest first above ``after``. ``connector`` is one
        the step called; ``action`` its operation, its outcome or ``operation/outcome``;
        ``tenants`` None is every tenant's. Ids grow with time, so paging by id pages
        by time with no index of its own (inserts, the hub's hot path, stay as they
        are); a business number goes through its index."""
        self._deferred.flush()
        q = select(hops).where(hops.c.connector.is_not(None), hops.c.connector != "")
        if since is not None:
            q = q.where(hops.c.started_at >= since)
        if until is not None:
            q = q.where(hops.c.started_at < until)
        if business_no:
            q = q.where(hops.c.business_no == business_no)
        if connector:
            q = q.where(_listed(hops.c.connector, connector))
        if action:
            operation, _slash, outcome = action.partition("/")
            q = q.where(and_(_listed(hops.c.operation, operation), hops.c.outcome == outcome)
                        if outcome else
                        or_(_listed(hops.c.operation, action), hops.c.outcome == action))
        if tenants is not None:
            q = q.where(hops.c.tenant.in_(list(tenants)))
        if before is not None:
            q = q.where(hops.c.id < before)
        if after is not None:
            q = q.where(hops.c.id > after)
        q = q.order_by(hops.c.id.desc() if newest_first else hops.c.id).limit(limit)
        with self._read() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    def progress(self, tenant: str, business_no: str, *, client: str | None = None,
                 channel: str | None = None) -> dict[str, Any] | None:
        """The progress row of one case; with ``client`` (``channel``) only if that
        client (a client of that channel) submitted it."""
        q = _submitted(select(progress), client, channel).where(
            progress.c.tenant == tenant, progress.c.business_no == business_no)
        with self._read() as conn:
            row = conn.execute(q).mappings().first()
        return dict(row) if row else None

    def stale_progress(self, stage: str, before: float, limit: int = 100) -> list[dict[str, Any]]:
        """Progress rows at ``stage`` not updated since ``before``, oldest first, except
        completed ones: the cases that may be stuck there (``app.reconciler``)."""
        with self._read() as conn:
            rows = conn.execute(select(progress).where(
                progress.c.stage == stage, progress.c.updated_at < before,
                progress.c.status != "completed")
                .order_by(progress.c.updated_at).limit(limit)).mappings()
            return [dict(r) for r in rows]

    def progress_by_key(self, tenant: str, key: str, limit: int = 100, *,
                        client: str | None = None,
                        channel: str | None = None) -> list[dict[str, Any]]:
        """Progress rows of ``tenant`` whose applicant has lookup ``key`` (with
        ``client`` / ``channel``: of those it submitted, as ``progress``)."""
        q = _submitted(select(progress), client, channel).where(
            and_(progress.c.tenant == tenant, progress.c.applicant_key == key))
        with self._read() as conn:
            rows = conn.execute(q.order_by(progress.c.updated_at.desc()).limit(limit)).mappings()
            return [dict(r) for r in rows]

    def submitter(self, tenant: str, business_no: str) -> dict[str, Any] | None:
        """Who submitted the case (``client``, ``channel``, ``submitted_at``), or None."""
        with self._read() as conn:
            row = conn.execute(select(submitters).where(
                submitters.c.tenant == tenant, submitters.c.business_no == business_no)
            ).mappings().first()
        return dict(row) if row else None

    # -- applications held for correction
    def hold_application(self, tenant: str, business_no: str, *, route: str, envelope: str,
                         at: float) -> None:
        """Keep the application (``envelope``, JSON) until its corrected materials come;
        a case held before is held again with this one."""
        with self._tx() as conn:
            conn.execute(delete(held_applications).where(
                held_applications.c.tenant == tenant,
                held_applications.c.business_no == business_no))
            conn.execute(insert(held_applications).values(
                tenant=tenant, business_no=business_no, route=route, envelope=envelope,
                held_at=at))

    def held_application(self, tenant: str, business_no: str) -> dict[str, Any] | None:
        with self._read() as conn:
            row = conn.execute(select(held_applications).where(
                held_applications.c.tenant == tenant,
                held_applications.c.business_no == business_no)).mappings().first()
        return dict(row) if row else None

    def update_held_application(self, tenant: str, business_no: str, *, envelope: str,
                                held_at: float, at: float) -> bool:
        """Replace a held application with ``envelope`` only if it is still the one held
        at ``held_at`` (what the caller read); False when another writer came first or
        it is held no more. The new ``held_at`` is ``at``, or just after the old one."""
        with self._tx() as conn:
            return bool(conn.execute(update(held_applications).where(
                held_applications.c.tenant == tenant,
                held_applications.c.business_no == business_no,
                held_applications.c.held_at == held_at).values(
                    envelope=envelope, held_at=max(at, held_at + 0.001))).rowcount)

    def release_application(self, tenant: str, business_no: str) -> bool:
        """Forget a held application (it went on); False when none was held."""
        with self._tx() as conn:
            return bool(conn.execute(delete(held_applications).where(
                held_applications.c.tenant == tenant,
                held_applications.c.business_no == business_no)).rowcount)

    # -- correction deadlines
    def note_correction_deadline(self, tenant: str, business_no: str, *, deadline: str | None,
                                 notice_id: str, at: float) -> None:
        """What the correction notice ``notice_id`` (issued ``at``) says is due when:
        a later notice replaces an earlier one's date, or removes it (``deadline``
        None); an earlier one delivered again changes nothing."""
        key = (correction_deadlines.c.tenant == tenant,
               correction_deadlines.c.business_no == business_no)
        with self._tx() as conn:
            row = conn.execute(select(correction_deadlines.c.noticed_at).where(*key)).first()
            if row is not None and float(row[0]) > at:
                return
            conn.execute(delete(correction_deadlines).where(*key))
            if deadline:
                conn.execute(insert(correction_deadlines).values(
                    tenant=tenant, business_no=business_no, deadline=deadline,
                    notice_id=notice_id, noticed_at=at))

    def correction_deadline(self, tenant: str, business_no: str) -> str | None:
        """The last day (YYYY-MM-DD) the case's correction is taken, or None."""
        with self._read() as conn:
            row = conn.execute(select(correction_deadlines.c.deadline).where(
                correction_deadlines.c.tenant == tenant,
                correction_deadlines.c.business_no == business_no)).first()
        return str(row[0]) if row else None

    # -- electronic notices
    def add_notice(self, *, recipient: Mapping[str, str] | None = None, **row: Any) -> bool:
        """Keep a rendered notice (``content`` base64), with the ``{client, channel}``
        it was issued to when it answers a request. False, and the first one kept,
        when a notice of that id is there already."""
        try:
            with self._tx() as conn:
                conn.execute(insert(notices).values(**row))
                if recipient:
                    conn.execute(insert(notice_recipients).values(
                        notice_id=row["id"], client=str(recipient.get("client") or "")[:200],
                        channel=str(recipient.get("channel") or "")[:32]))
        except IntegrityError:
            return False
        return True

    def notices_for(self, tenant: str, business_no: str, *, client: str | None = None,
                    channel: str | None = None) -> list[dict[str, Any]]:
        """The case's notices without their files, oldest first; with ``client``
        (``channel``) only of a case that client (a client of that channel) submitted."""
        q = _readable_notices(select(*(notices.c[f] for f in _NOTICE_FIELDS)), client,
                              channel).where(notices.c.tenant == tenant,
                                             notices.c.business_no == business_no)
        with self._read() as conn:
            return [dict(r) for r in conn.execute(
                q.order_by(notices.c.created_at, notices.c.id)).mappings()]

    def notice(self, tenant: str, business_no: str, notice_id: str, *,
               client: str | None = None, channel: str | None = None) -> dict[str, Any] | None:
        """One notice with its ``content`` (base64), scoped as ``notices_for``."""
        q = _readable_notices(select(notices), client, channel).where(
            notices.c.tenant == tenant, notices.c.business_no == business_no,
            notices.c.id == notice_id)
        with self._read() as conn:
            row = conn.execute(q).mappings().first()
        return dict(row) if row else None

    def verifications_for(self, business_no: str,
                          tenant: str | None = None) -> list[dict[str, Any]]:
        q = select(verifications).where(verifications.c.business_no == business_no)
        if tenant:
            q = q.where(verifications.c.tenant == tenant)
        with self._read() as conn:
            rows = conn.execute(q.order_by(verifications.c.id)).mappings()
            return [{**r, "result": json.loads(r["result"])} for r in rows]


    # -- inbound requests counted per client (the console's channels page)
    def count_request(self, *, client: str, channel: str, tenant: str, outcome: str,
                      code: str = "", at: float) -> None:
        """Count one inbound request (``outcome`` accepted | refused | error). Kept in
        memory and added to ``inbound_counts`` within ``REQUEST_COUNTS_EVERY`` seconds
        (or at ``close``): no store write on the request's path."""
        self._tally.add((int(at // 60) * 60, client[:200], channel[:32], tenant[:6], outcome,
                         code[:64]))

    def flush_request_counts(self) -> None:
        """Add the counts kept in memory to the store now."""
        self._tally.flush()

    def _add_request_counts(self, counts: Mapping[tuple[Any, ...], int]) -> None:
        stmt = _dialect_insert(self.dialect)(inbound_counts)
        stmt = stmt.on_conflict_do_update(
            index_elements=[c for c in inbound_counts.c if c.primary_key],
            set_={"count": inbound_counts.c.count + stmt.excluded["count"]})
        keys = ("minute", "client", "channel", "tenant", "outcome", "code")
        with self._tx() as conn:
            conn.execute(stmt, [{**dict(zip(keys, key, strict=True)), "count": n}
                                for key, n in counts.items()])

    def purge_request_counts(self, before: float) -> int:
        """Forget the inbound counts of the minutes before ``before`` (retention)."""
        with self._tx() as conn:
            return conn.execute(delete(inbound_counts).where(
                inbound_counts.c.minute < before)).rowcount

    def request_counts(self, since: float, until: float | None = None) -> list[dict[str, Any]]:
        """The inbound counts of every minute that overlaps [``since``, ``until``),
        summed by client, channel, tenant, outcome and code."""
        keys = (inbound_counts.c.client, inbound_counts.c.channel, inbound_counts.c.tenant,
                inbound_counts.c.outcome, inbound_counts.c.code)
        query = (select(*keys, func.sum(inbound_counts.c.count).label("count"))
                 .where(inbound_counts.c.minute > since - 60).group_by(*keys))
        if until is not None:
            query = query.where(inbound_counts.c.minute < until)
        with self._read() as conn:
            return [{**r, "count": int(r["count"])} for r in conn.execute(query).mappings()]

    # -- what running processes report of themselves (app.status, hub status)
    def report_process(self, process: str, *, started_at: float, at: float,
                       report: Mapping[str, Any]) -> None:
        """Replace ``process``'s report: one row per process, whatever its age."""
        stmt = _dialect_insert(self.dialect)(hub_processes).values(
            process=process, started_at=started_at, reported_at=at, report=_dumps(report))
        stmt = stmt.on_conflict_do_update(
            index_elements=[hub_processes.c.process],
            set_={"reported_at": stmt.excluded.reported_at, "report": stmt.excluded.report})
        with self._tx() as conn:
            conn.execute(stmt)

    def process_reports(self) -> list[dict[str, Any]]:
        """Every process's last report (``report`` parsed), the latest first."""
        with self._read() as conn:
            rows = conn.execute(select(hub_processes).order_by(
                hub_processes.c.reported_at.desc())).mappings()
            return [{**r, "report": json.loads(r["report"])} for r in rows]

    def forget_process(self, process: str, *, before: float | None = None) -> int:
        """Delete ``process``'s report (a process that stops); with ``before``, also
        every report older than that (processes that died without a word)."""
        where = hub_processes.c.process == process
        if before is not None:
            where = or_(where, hub_processes.c.reported_at < before)
        with self._tx() as conn:
            return conn.execute(delete(hub_processes).where(where)).rowcount

    def route_counts(self) -> dict[str, dict[str, int]]:
        """Per route: messages ``parked``, ``waiting`` at an await step and
        ``dead_letters`` not yet replayed or dropped."""
        queries = {
            "parked": select(parked.c.route, func.count()).group_by(parked.c.route),
            "waiting": select(correlations.c.route, func.count()).where(
                correlations.c.state == "waiting").group_by(correlations.c.route),
            "dead_letters": select(dead_letters.c.route, func.count()).where(
                dead_letters.c.status == "dead").group_by(dead_letters.c.route),
        }
        out: dict[str, dict[str, int]] = {}
        with self._read() as conn:
            for key, query in queries.items():
                for route, n in conn.execute(query):
                    out.setdefault(route, {"parked": 0, "waiting": 0, "dead_letters": 0})[
                        key] = int(n)
        return out

    # -- ids of dead letters and parked messages, typed by people as prefixes
    def ids_with_prefix(self, table_name: str, prefix: str,
                        limit: int = 10) -> list[dict[str, Any]]:
        """The rows of ``table_name`` (``dead_letters``, ``parked``) that ``prefix``
        designates, without their messages: the one whose id equals it, else up to
        ``limit`` whose ids start with it (id, route, step, business_no, created_at)."""
        table = metadata.tables[table_name]
        q = select(table.c.id, table.c.route, table.c.step, table.c.business_no,
                   table.c.created_at)
        with self._read() as conn:
            exact = conn.execute(q.where(table.c.id == prefix)).mappings().first()
            if exact is not None:
                return [dict(exact)]
            return [dict(r) for r in conn.execute(
                q.where(table.c.id.startswith(prefix, autoescape=True))
                .order_by(table.c.id).limit(limit)).mappings()]

    def parked_message(self, parked_id: str) -> dict[str, Any] | None:
        """One parked message by its whole id, with its envelope (JSON)."""
        with self._read() as conn:
            row = conn.execute(select(parked).where(parked.c.id == parked_id)).mappings().first()
        return dict(row) if row else None

    def unique_prefixes(self, table_name: str, ids: Sequence[str],
                        minimum: int = 13) -> dict[str, str]:
        """For each of ``ids``, its shortest prefix (at least ``minimum`` characters)
        that no other id of ``table_name`` starts with: ids that only differ after
        ``minimum`` characters (UUIDv7 ids of the same millisecond, or derived from
        one parent) get longer ones, so each prefix shown opens its own row."""
        id_ = metadata.tables[table_name].c.id
        out: dict[str, str] = {}
        with self._read() as conn:
            for value in ids:
                before = conn.execute(select(func.max(id_)).where(id_ < value)).scalar()
                after = conn.execute(select(func.min(id_)).where(id_ > value)).scalar()
                shared = max(_common_prefix(value, before), _common_prefix(value, after))
                out[value] = value[:max(minimum, shared + 1)]
        return out


def _common_prefix(a: str, b: str | None) -> int:
    if not b:
        return 0
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n

def _pg_driver() -> str:
    """psycopg2 (what the hub's extra installs) unless only psycopg 3 is there; SQLAlchemy
    2.1 would otherwise pick psycopg 3 for a bare postgresql:// URL."""
    import importlib.util

    if importlib.util.find_spec("psycopg2") is None and importlib.util.find_spec("psycopg"):
        return "psycopg"
    return "psycopg2"


class _GroupCommit:
    """One writer thread committing the outcomes that are waiting, together."""

    MAX_BATCH = 256

    def __init__(self, store: Store):
        self.store = store
        self.queue: queue.SimpleQueue[tuple[Finish, Future[bool]] | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self.thread.start()

    def enqueue(self, rec: Finish) -> Future[bool]:
        """``rec`` to be written; the future answers as ``Store.finish`` does."""
        future: Future[bool] = Future()
        self.queue.put((rec, future))
        return future

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            self._commit(take_batch(self.queue, item, self.MAX_BATCH))

    def _commit(self, batch: list[tuple[Finish, Future[bool]]]) -> None:
        try:
            self.store._finish_many([rec for rec, _f in batch])
        except IntegrityError:
            for rec, future in batch:  # find out which one conflicted
                try:
                    future.set_result(self.store._finish_one(rec))
                except BaseException as exc:  # noqa: BLE001 - handed to the caller
                    future.set_exception(exc)
            return
        except BaseException as exc:  # noqa: BLE001 - handed to every caller
            for _rec, future in batch:
                future.set_exception(exc if isinstance(exc, StoreError)
                                     else StoreError(_("store failure: {error}", error=exc)))
            return
        for _rec, future in batch:
            future.set_result(True)


class _RequestTally:
    """A store's inbound counts not added yet: a thread of its own adds them every
    ``REQUEST_COUNTS_EVERY`` seconds (started with the first count), and forgets the
    minutes older than ``REQUEST_COUNTS_KEEP`` once an hour. Counts a failed write
    could not add are kept for the next one."""

    def __init__(self, store: Store):
        self.store = store
        self.counts: dict[tuple[Any, ...], int] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        self.purge_at = 0.0

    def add(self, key: tuple[Any, ...]) -> None:
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + 1
            if self.thread is None and not self.stop.is_set():
                self.thread = threading.Thread(target=self._run, name="store-counts",
                                               daemon=True)
                self.thread.start()

    def flush(self) -> None:
        with self.lock:
            counts, self.counts = self.counts, {}
        if not counts:
            return
        try:
            self.store._add_request_counts(counts)
        except BaseException:
            with self.lock:
                for key, n in counts.items():
                    self.counts[key] = self.counts.get(key, 0) + n
            raise
        now = time.time()
        if now >= self.purge_at:
            self.purge_at = now + 3600
            self.store.purge_request_counts(now - REQUEST_COUNTS_KEEP)

    def close(self) -> None:
        self.stop.set()
        thread, self.thread = self.thread, None
        if thread is not None:
            thread.join(timeout=10)
        try:
            self.flush()
        except Exception as exc:  # noqa: BLE001 - closing goes on; the counts are lost
            log.warning("inbound counts not stored at close: %s", exc)

    def _run(self) -> None:
        while not self.stop.wait(REQUEST_COUNTS_EVERY):
            try:
                self.flush()
            except Exception as exc:  # noqa: BLE001 - the next interval tries again
                log.warning("inbound counts not stored: %s", exc)


def _submitted(q: Any, client: str | None, channel: str | None, of: Table = progress) -> Any:
    """``q`` over ``of`` (``progress``, ``notices``) narrowed to cases ``client`` / a
    client of ``channel`` submitted; unchanged when neither is given."""
    if client is None and channel is None:
        return q
    q = q.join(submitters, and_(submitters.c.tenant == of.c.tenant,
                                submitters.c.business_no == of.c.business_no))
    if client is not None:
        q = q.where(submitters.c.client == client)
    if channel is not None:
        q = q.where(submitters.c.channel == channel)
    return q


def _listed(column: Any, value: str) -> Any:
    """``column`` (names joined with ``,``) names ``value``."""
    like = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return or_(column == value, column.like(f"{like},%", escape="\\"),
               column.like(f"%,{like}", escape="\\"), column.like(f"%,{like},%", escape="\\"))


def _add_missing_columns(engine: Engine, table: Table, names: Sequence[str]) -> None:
    """create_all makes missing tables, not missing columns: add those of ``names``
    a store made before them lacks (nullable, so its rows stay valid)."""
    from sqlalchemy import inspect, text
    from sqlalchemy.exc import DBAPIError

    def present() -> set[str]:
        return {c["name"] for c in inspect(engine).get_columns(table.name)}

    for name in sorted(set(names) - present()):
        try:
            with engine.begin() as conn:
                conn.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {name} "
                                  f"{table.c[name].type.compile(engine.dialect)}"))
        except DBAPIError:
            if name not in present():  # not another process adding it at the same time
                raise


def _readable_notices(q: Any, client: str | None, channel: str | None) -> Any:
    """``q`` over ``notices`` narrowed to those of cases ``client`` / a client of
    ``channel`` submitted, or issued to them (``notice_recipients``)."""
    if client is None and channel is None:
        return q
    by_case = select(submitters.c.business_no).where(
        submitters.c.tenant == notices.c.tenant, submitters.c.business_no == notices.c.business_no)
    by_recipient = select(notice_recipients.c.notice_id).where(
        notice_recipients.c.notice_id == notices.c.id)
    if client is not None:
        by_case = by_case.where(submitters.c.client == client)
        by_recipient = by_recipient.where(notice_recipients.c.client == client)
    if channel is not None:
        by_case = by_case.where(submitters.c.channel == channel)
        by_recipient = by_recipient.where(notice_recipients.c.channel == channel)
    return q.where(or_(by_case.exists(), by_recipient.exists()))


def _corr(row: Any) -> dict[str, Any]:
    data = dict(row)
    data["types"] = json.loads(data["types"])
    return data


def _safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
    return url


dumps = _dumps
