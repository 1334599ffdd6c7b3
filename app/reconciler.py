"""Reconciliation: cases whose progress has not moved within their stage's time.

The registration system tells the hub of every stage change by calling back
(or being polled). A callback it gave up on, while the hub was down, leaves
the case at its last stage for ever: nothing else would ever move it. The
reconciler looks, every ``every`` seconds, for cases (progress rows of the
store) that have been at a stage longer than that stage's expected time and
that are not completed::

    reconcile:
      every: 60                     # seconds between passes
      stages:                       # expected time per stage, seconds; others are not watched
        submitted: 3600             # forwarded, nothing heard from the registration system yet
        acceptance: 86400
        review: 432000
      # Optional: ask the registration system and publish what the hub missed.
      connector: legacy
      operation: QueryProgress
      payload: {YWH: business_no}   # JMESPath over {business_no, tenant, stage, status, _now}
      events: HJ                    # the case's stage changes in the answer
      event_stage: "<JMESPath over one event: the stage as the hub names it>"
      key: XH                       # what identifies an event
      publish: legacy.stage_changed # the callback's message type: its route takes them

Each stuck case is raised as a warning in any case: a log line (once per case
and stage), the gauge ``bdchub_reconcile_stuck_cases{stage}``, and ``hub
stuck`` (``--json``). When
a query is configured, the case is asked about (again after its stage's time
at the earliest) and the events after the last one at the stage the hub
knows are published as ``publish`` messages, with ids derived from the case
and the event's ``key`` so that a second pass publishing the same event is
absorbed by the routes. A case still at its stage there is the registration
system's delay, not a lost callback: it stays on the list. ``submitted`` is
the name of an application (a case with a registration type) of which no
stage is known yet. The query and what is made of its answer are
``app.case_query``'s, shared with the per-case poller.

The reconciler is a singleton input (``app.inputs.singleton_inputs``): one
process of a deployment runs it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import click
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

from bdchub.core.cliopts import CONFIG_OPTION
from bdchub.core.envelope import Envelope
from bdchub.core.errors import ConfigError
from bdchub.core.i18n import _

from . import case_query
from .case_query import CaseQuery, case_data, check_query

log = logging.getLogger("bdchub.reconcile")

DEFAULT_EVERY = 60.0
DEFAULT_LIMIT = 100
#: The stage name of an application of which the registration system has said nothing yet.
SUBMITTED = "submitted"
SOURCE = "reconciler"

#: The ``reconcile:`` section (registered by ``app.parts``).
SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["stages"],
    "description": "cases stuck at a stage: warned about, and asked about when a query is set",
    "properties": {
        "enabled": {"type": "boolean", "default": True},
        "every": {"type": "number", "exclusiveMinimum": 0, "default": DEFAULT_EVERY,
                  "description": "seconds between passes"},
        "limit": {"type": "integer", "minimum": 1, "default": DEFAULT_LIMIT,
                  "description": "stuck cases handled per stage and pass, oldest first"},
        "stages": {"type": "object", "minProperties": 1,
                   "propertyNames": {"pattern": "^[a-z][a-z_]*$"},
                   "additionalProperties": {"type": "number", "exclusiveMinimum": 0},
                   "description": "seconds a case may stay at each stage (progress stage "
                                  "names; 'submitted': forwarded, nothing heard yet)"},
        **case_query.PROPERTIES,
    },
    "dependentRequired": {"connector": [k for k in case_query.REQUIRED if k != "connector"]},
}


def check_section(checker: Any, block: Any) -> None:
    """The query's connector and operation exist and its expressions parse."""
    if isinstance(block, Mapping):
        check_query(checker, block, ("reconcile",))


@dataclass(frozen=True)
class Stuck:
    """A case that has been at ``stage`` longer than ``expected`` seconds."""

    tenant: str
    business_no: str
    stage: str
    status: str
    since: float
    stuck_for: float
    expected: float


def stage_of(row: Mapping[str, Any]) -> str:
    """The reconciler's name of a progress row's stage."""
    return str(row.get("stage") or "") or SUBMITTED


def find_stuck(store: Any, stages: Mapping[str, float], now: float,
               limit: int = DEFAULT_LIMIT) -> list[Stuck]:
    """The cases at a stage of ``stages`` for longer than its time, oldest first."""
    found = []
    for stage, expected in stages.items():
        stored = "" if stage == SUBMITTED else stage
        for row in store.stale_progress(stored, now - float(expected), limit):
            # Only applications have a registration type: batches and court orders
            # without a stage are no cases of the registration system.
            if stage == SUBMITTED and not row.get("registration_type"):
                continue
            found.append(Stuck(tenant=row["tenant"], business_no=row["business_no"],
                               stage=stage, status=row.get("status") or "",
                               since=float(row["updated_at"]),
                               stuck_for=now - float(row["updated_at"]),
                               expected=float(expected)))
    return sorted(found, key=lambda s: s.since)


class ReconcileMetrics:
    """``bdchub_reconcile_stuck_cases{stage}`` (gauge, the last pass),
    ``bdchub_reconcile_queries_total{outcome}`` (moved | unchanged | failed) and
    ``bdchub_reconcile_published_total`` (missed events published)."""

    def __init__(self, registry: CollectorRegistry | None = None):
        reg = registry if registry is not None else REGISTRY
        self.stuck = Gauge("bdchub_reconcile_stuck_cases",
                           "Cases at a stage longer than its expected time", ["stage"],
                           registry=reg, multiprocess_mode="livemax")  # one process runs it
        self.queries = Counter("bdchub_reconcile_queries",
                               "Stuck cases asked about at the registration system",
                               ["outcome"], registry=reg)
        self.published = Counter("bdchub_reconcile_published",
                                 "Missed stage changes published by the reconciler",
                                 registry=reg)


_default_metrics: ReconcileMetrics | None = None


def default_metrics() -> ReconcileMetrics:
    """The process-wide reconcile metrics on prometheus_client's default registry."""
    global _default_metrics
    if _default_metrics is None:
        _default_metrics = ReconcileMetrics()
    return _default_metrics


class Reconciler:
    """The ``reconcile:`` block at work. ``run_once`` is one pass; ``start`` and
    ``stop`` run passes in a thread of its own (the input protocol)."""

    name = "reconciler"

    def __init__(self, block: Mapping[str, Any], *, store: Any,
                 connectors: Mapping[str, Any], publish: Callable[[Envelope], None],
                 clock: Callable[[], float] = time.time,
                 metrics: ReconcileMetrics | None = None):
        self.stages = {str(k): float(v) for k, v in (block.get("stages") or {}).items()}
        self.every = float(block.get("every") or DEFAULT_EVERY)
        self.limit = int(block.get("limit") or DEFAULT_LIMIT)
        self.store = store
        self.publish = publish
        self.clock = clock
        self.metrics = metrics or default_metrics()
        self.query = (CaseQuery(block, connectors=connectors, where="reconcile")
                      if block.get("connector") else None)
        # When each case was last asked about, and at which stage (this process only:
        # a restarted reconciler asks once more, which is harmless).
        self._asked: dict[tuple[str, str], tuple[str, float]] = {}
        self._warned: set[tuple[str, str, str, float]] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last: list[Stuck] = []

    @classmethod
    def from_config(cls, config: Mapping[str, Any], hub: Any, **kwargs: Any) -> Reconciler | None:
        block = config.get("reconcile")
        if not block or not block.get("enabled", True):
            return None
        return cls(block, store=hub.store, connectors=hub.connectors, publish=hub.publish,
                   **kwargs)

    # -- one pass
    def run_once(self) -> list[Stuck]:
        """Find the stuck cases, ask about them, publish what was missed, warn.
        Returns the cases that are still stuck."""
        now = self.clock()
        found = find_stuck(self.store, self.stages, now, self.limit)
        cases = {(c.tenant, c.business_no) for c in found}
        self._asked = {k: v for k, v in self._asked.items() if k in cases}
        still = [case for case in found if not self._reconciled(case, now)]
        # Once per case and stage: a pass every minute must not flood the log.
        keys = {(c.tenant, c.business_no, c.stage, c.since): c for c in still}
        for key in list(self._warned):
            if key not in keys:
                self._warned.discard(key)
        for key, case in keys.items():
            if key in self._warned:
                continue
            self._warned.add(key)
            log.warning(_("case {business_no} (tenant {tenant}) has been at stage {stage} for "
                          "{hours} h (expected at most {expected} h)",
                          business_no=case.business_no, tenant=case.tenant, stage=case.stage,
                          hours=round(case.stuck_for / 3600, 1),
                          expected=round(case.expected / 3600, 1)))
        for stage in self.stages:
            self.metrics.stuck.labels(stage).set(sum(1 for c in still if c.stage == stage))
        self.last = still
        return still

    def _reconciled(self, case: Stuck, now: float) -> bool:
        """Ask the registration system about ``case``; True when what it missed was published."""
        if self.query is None:
            return False
        asked = self._asked.get((case.tenant, case.business_no))
        if asked is not None and asked[0] == case.stage and now - asked[1] < case.expected:
            return False
        self._asked[(case.tenant, case.business_no)] = (case.stage, now)
        stage = "" if case.stage == SUBMITTED else case.stage
        data = case_data({"tenant": case.tenant, "business_no": case.business_no,
                          "stage": stage, "status": case.status}, now)
        try:
            answer = self.query.ask(data, SOURCE)
        except Exception as exc:  # noqa: BLE001 - one case's failure leaves the others
            self.metrics.queries.labels("failed").inc()
            log.warning(_("case {business_no}: the progress query failed: {error}",
                          business_no=case.business_no, error=exc))
            return False
        missed = self.query.missed(answer, stage)
        if not missed:
            self.metrics.queries.labels("unchanged").inc()
            return False
        try:
            # Under the ids their callbacks get too: a late callback is absorbed.
            for env in self.query.envelopes(case.tenant, case.business_no, missed,
                                            source=SOURCE, headers={"reconciled": "true"}):
                self.publish(env)
                self.metrics.published.inc()
        except BaseException:
            # Not all of it went out: the next pass asks again (the same ids are absorbed).
            self._asked.pop((case.tenant, case.business_no), None)
            raise
        self.metrics.queries.labels("moved").inc()
        log.info("case %s: %d missed stage change(s) published", case.business_no, len(missed))
        return True

    # -- the input protocol
    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="reconciler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.run_once()
            except Exception:  # noqa: BLE001 - the next pass tries again
                log.exception("reconcile pass failed")

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)


# -- hub stuck -------------------------------------------------------------------

def _time(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


@click.command("stuck")
@CONFIG_OPTION
@click.option("--json", "as_json", is_flag=True, help="one JSON object per line")
def stuck_command(config_path: str, as_json: bool) -> None:
    """Cases at a stage longer than its expected time (the reconcile: section)."""
    from bdchub.core.config import load
    from bdchub.routes.runtime import Hub

    config = load(config_path)
    block = config.get("reconcile") or {}
    if not block.get("stages"):
        raise ConfigError(_("{file}: no reconcile: section with stages", file=config_path))
    hub = Hub.from_config(config, build_connectors=False)
    try:
        cases = find_stuck(hub.store, block["stages"], time.time(),
                           int(block.get("limit") or DEFAULT_LIMIT))
    finally:
        hub.close()
    if as_json:
        for case in cases:
            click.echo(json.dumps(asdict(case), ensure_ascii=False))
        return
    if not cases:
        click.echo(_("no stuck cases"))
        return
    click.echo(_("{n} stuck case(s):", n=len(cases)))
    for case in cases:
        click.echo("  " + _("{business_no} (tenant {tenant}): at {stage} since {since}, "
                            "{hours} h (expected {expected} h)", business_no=case.business_no,
                            tenant=case.tenant, stage=case.stage, since=_time(case.since),
                            hours=round(case.stuck_for / 3600, 1),
                            expected=round(case.expected / 3600, 1)))
