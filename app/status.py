"""What a running hub reports of itself, and ``hub status`` reads.

A connector's breaker and the calls it saw live in the memory of the process
that runs it; a one-shot command that connects afresh (``hub check --ping``)
sees none of it. So each running process (``HubService``) writes a report of
itself into the store every ``EVERY`` seconds, one row per process
(``Store.report_process``), and deletes it when it stops::

    {"version": 1, "host": "…", "pid": 123, "tenant": "320684", "every": 5.0,
     "connectors": {"legacy": {"type": "rest", "breaker": "closed",
                               "retry_in_seconds": 0.0, "calls": 12, "errors": 0,
                               "calls_1m": 3, "errors_1m": 0, "latency_ms": 41.5}},
     "in_flight": {"online_application": 2, …}}

``warnings`` are the last ``WARNINGS_KEPT`` warnings (and errors) the process
logged, newest last, as logged (ID and mobile numbers in them masked again on
the way in): ``{"at", "level", "logger", "message", "event", "route", "tenant"}``
(``RecentWarnings``). ``status`` merges them across the processes, newest first.

``errors`` count the failures that speak of the endpoint's health (timeouts,
refused connections, 5xx, an open breaker), not the requests it refused;
``latency_ms`` is the mean of the calls of the last minute, retries included
(None without calls). A report older than ``STALE_AFTER`` intervals is stale:
that process died without a word, or is stuck.

``status(hub, reports, now)`` puts the reports of the processes together with
what the store and the broker know (parked, waiting and dead letters per
route; queue depth) into the document ``hub status --json`` prints
(docs/operations.md).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

log = logging.getLogger("bdchub.status")

#: Seconds between two reports of a process.
EVERY = 5.0
#: A report older than this many of its intervals is stale.
STALE_AFTER = 3
#: Reports older than this are deleted by the next process that starts.
FORGET_AFTER = 86_400.0
#: The window of ``calls_1m``, ``errors_1m`` and ``latency_ms``.
WINDOW = 60.0
#: Error classes (``connectors.metrics.error_class``) that speak of an endpoint's health.
HEALTH_ERRORS = ("recoverable", "timeout", "circuit_open")
#: Warnings a process keeps for its report, and the longest message kept of one.
WARNINGS_KEPT = 50
WARNING_CHARS = 500
#: Loggers whose warnings are not the hub's own: the simulated departments and the
#: demo's driver, when a test or ``hub demo`` runs them in the hub's process.
NOT_THE_HUB = ("bdchub.sandbox", "bdchub.demo", "bdchub.bench")

HEALTH_RANK = {"up": 0, "degraded": 1, "down": 2}
BREAKER_RANK = {"closed": 0, "half-open": 1, "open": 2}


class RecentWarnings(logging.Handler):
    """The last ``size`` warnings (and errors) of the hub's loggers in this process,
    for its status report: the console's overview shows them across processes
    without a log collector. ``mask`` (the hub's ``Masker.text``) goes over each
    message once more, in case a line quotes an ID number a caller did not mask."""

    def __init__(self, size: int = WARNINGS_KEPT,
                 mask: Callable[[str], str] | None = None):
        super().__init__(logging.WARNING)
        self.mask = mask or (lambda text: text)
        self._kept: collections.deque[dict[str, Any]] = collections.deque(maxlen=size)

    def emit(self, record: logging.LogRecord) -> None:
        if (record.levelno < self.level or not record.name.startswith("bdchub")
                or record.name.startswith(NOT_THE_HUB)):
            return
        try:
            message = self.mask(record.getMessage())[:WARNING_CHARS]
            self._kept.append({
                "at": record.created, "level": record.levelname, "logger": record.name,
                "message": message, "event": str(getattr(record, "event", "") or ""),
                "route": str(getattr(record, "route", "") or ""),
                "tenant": str(getattr(record, "tenant", "") or "")})
        except Exception:  # noqa: BLE001 - logging must never break the caller
            self.handleError(record)

    def recent(self) -> list[dict[str, Any]]:
        """The kept warnings, oldest first (a copy)."""
        with self.lock or contextlib.nullcontext():
            return list(self._kept)


class StatusReporter:
    """An input of ``HubService`` (``app.inputs``) that reports the process every
    ``every`` seconds. It never holds the hub up: a report that fails is logged and
    the next one tries again."""

    name = "status"

    def __init__(self, hub: Any, *, every: float = EVERY,
                 clock: Callable[[], float] = time.time):
        self.hub = hub
        self.every = every
        self.clock = clock
        self.started_at = clock()
        self.process = f"{socket.gethostname()}:{os.getpid()}:{self.started_at:.3f}"
        self._samples: dict[str, collections.deque[tuple[float, float, float, float]]] = {}
        masking = getattr(hub, "masking", None)
        self.warnings = RecentWarnings(mask=masking.text if masking is not None else None)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        logging.getLogger().addHandler(self.warnings)
        try:
            self.hub.store.forget_process(self.process, before=self.clock() - FORGET_AFTER)
        except Exception as exc:  # noqa: BLE001 - only a report; the hub runs on
            log.warning("status: old reports not removed: %s", exc)
        self.report()
        self._thread = threading.Thread(target=self._run, name="hub-status", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        logging.getLogger().removeHandler(self.warnings)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        try:
            self.hub.store.forget_process(self.process)
        except Exception as exc:  # noqa: BLE001 - hub status will call it stale
            log.warning("status: report not removed: %s", exc)

    def kill(self) -> None:
        self._stop.set()  # the row stays and goes stale, as after a crash
        logging.getLogger().removeHandler(self.warnings)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.report()

    def report(self) -> None:
        """Write this process's report now."""
        try:
            now = self.clock()
            self.hub.store.report_process(self.process, started_at=self.started_at, at=now,
                                          report=self.snapshot(now))
        except Exception as exc:  # noqa: BLE001 - the next interval tries again
            log.warning("status: not reported: %s", exc)

    def snapshot(self, now: float) -> dict[str, Any]:
        host, pid, _started = self.process.rsplit(":", 2)
        return {"version": 1, "host": host, "pid": int(pid), "every": self.every,
                "tenant": self.hub.tenant, "name": str(self.hub.config.get("name") or ""),
                "connectors": {name: self._connector(name, connector, now)
                               for name, connector in sorted(self.hub.connectors.items())},
                "in_flight": self.hub.in_flight(), "warnings": self.warnings.recent()}

    def _connector(self, name: str, connector: Any, now: float) -> dict[str, Any]:
        breaker = getattr(connector, "breaker", None)
        calls, errors, seconds = _call_totals(getattr(connector, "metrics", None), name)
        samples = self._samples.setdefault(name, collections.deque())
        samples.append((now, calls, errors, seconds))
        while len(samples) > 1 and samples[1][0] <= now - WINDOW:
            samples.popleft()
        _at, calls0, errors0, seconds0 = samples[0]
        recent = calls - calls0
        return {"type": str(getattr(connector, "type_name", "") or ""),
                "breaker": breaker.state if breaker is not None else "closed",
                "retry_in_seconds": round(breaker.retry_in(), 1) if breaker is not None else 0.0,
                "calls": int(calls), "errors": int(errors),
                "calls_1m": int(recent), "errors_1m": int(errors - errors0),
                "latency_ms": round((seconds - seconds0) / recent * 1000, 1) if recent else None}


def _call_totals(metrics: Any, connector: str) -> tuple[float, float, float]:
    """(calls, health errors, seconds spent in calls) of ``connector`` since this
    process started, from its Prometheus metric objects (``connectors.metrics``)."""
    if metrics is None:
        return 0.0, 0.0, 0.0
    calls = errors = seconds = 0.0
    for family in (*metrics.calls.collect(), *metrics.errors.collect(),
                   *metrics.latency.collect()):
        for sample in family.samples:
            if sample.labels.get("connector") != connector:
                continue
            if sample.name.endswith("_calls_total"):
                calls += sample.value
            elif sample.name.endswith("_errors_total") and (
                    sample.labels.get("error") in HEALTH_ERRORS):
                errors += sample.value
            elif sample.name.endswith("_latency_seconds_sum"):
                seconds += sample.value
    return calls, errors, seconds


# ------------------------------------------------------------------ reading

def status(hub: Any, reports: Iterable[Mapping[str, Any]], now: float,
           depth: Callable[[str], int | None] | None = None,
           leases: Iterable[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """The document of ``hub status --json`` (docs/operations.md): the processes
    with the freshness of their reports, each connector of the config as the fresh
    processes see it, each route's queue depth (``depth(queue)``), messages in
    flight, parked, waiting and dead-lettered, and which process runs each singleton
    (``leases``: ``core.leases.Leases.held()``)."""
    processes = [_process(r, now) for r in reports]
    fresh = [p for p, r in zip(processes, reports, strict=True) if p["fresh"]]
    fresh_reports = [r["report"] for p, r in zip(processes, reports, strict=True) if p["fresh"]]
    blocks = hub.config.get("connectors") or {}
    connectors = [_merged_connector(name, str((blocks.get(name) or {}).get("type") or ""),
                                    [(p["process"], r["connectors"][name])
                                     for p, r in zip(fresh, fresh_reports, strict=True)
                                     if name in r.get("connectors", {})])
                  for name in sorted({*blocks, *(n for r in fresh_reports
                                                 for n in r.get("connectors", {}))})]
    counts = hub.store.route_counts()
    routes = []
    for name in sorted({*hub.routes, *counts}):
        route = hub.routes.get(name)
        queue = route.queue if route is not None and not route.sync else None
        held = counts.get(name, {})
        routes.append({
            "name": name, "queue": queue,
            "depth": depth(queue) if depth is not None and queue else None,
            "in_flight": sum(int((r.get("in_flight") or {}).get(name, 0))
                             for r in fresh_reports) if fresh_reports else None,
            "parked": held.get("parked", 0), "waiting": held.get("waiting", 0),
            "dead_letters": held.get("dead_letters", 0),
            "in_config": route is not None})
    return {"version": 1, "at": now, "running": bool(fresh), "tenant": hub.tenant,
            "processes": processes, "connectors": connectors, "routes": routes,
            "singletons": [singleton(lease) for lease in leases],
            "warnings": recent_warnings(reports)}


def singleton(lease: Mapping[str, Any]) -> dict[str, Any]:
    """One singleton's lease as ``hub status`` shows it: who holds it (``host``,
    ``pid``, the whole ``holder`` id), since when, and for how many more seconds
    unless renewed; ``held`` False once expired (its holder died or was cut off,
    and no process has taken it yet)."""
    return {"name": lease["name"], "holder": lease["holder"], "host": lease["host"],
            "pid": lease["pid"], "taken_at": lease["taken_at"],
            "expires_in": round(float(lease["expires_in"]), 1), "held": bool(lease["held"])}


def recent_warnings(reports: Iterable[Mapping[str, Any]],
                    limit: int = WARNINGS_KEPT) -> list[dict[str, Any]]:
    """The warnings of every reporting process (a stale one's too: they may say why
    it went quiet), each with its process, newest first, at most ``limit``."""
    merged = [{**w, "process": r["process"], "host": r["report"].get("host"),
               "pid": r["report"].get("pid")}
              for r in reports for w in (r["report"].get("warnings") or [])
              if isinstance(w, Mapping)]
    merged.sort(key=lambda w: float(w.get("at") or 0), reverse=True)
    return merged[:limit]


def _process(row: Mapping[str, Any], now: float) -> dict[str, Any]:
    report = row["report"]
    every = float(report.get("every") or EVERY)
    age = max(0.0, now - float(row["reported_at"]))
    return {"process": row["process"], "host": report.get("host"), "pid": report.get("pid"),
            "started_at": row["started_at"], "reported_at": row["reported_at"],
            "age_seconds": round(age, 1), "every": every, "fresh": age <= every * STALE_AFTER}


def health(seen: Mapping[str, Any]) -> str:
    """``down`` while the breaker is open, ``degraded`` while it is half-open or
    calls of the last minute failed for the endpoint's sake, else ``up``."""
    if seen["breaker"] == "open":
        return "down"
    if seen["breaker"] == "half-open" or seen["errors_1m"]:
        return "degraded"
    return "up"


def _merged_connector(name: str, type_: str,
                      seen: list[tuple[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """One connector across the fresh processes: the worst health and breaker, the
    sums of calls and errors, the latency averaged over the calls."""
    if not seen:
        return {"name": name, "type": type_, "health": None, "breaker": None,
                "retry_in_seconds": None, "latency_ms": None, "calls": 0, "errors": 0,
                "calls_1m": 0, "errors_1m": 0, "processes": []}
    per = [{"process": process, "health": health(s), **s} for process, s in seen]
    recent = sum(int(s["calls_1m"]) for s in per)
    weighted = sum(float(s["latency_ms"]) * int(s["calls_1m"]) for s in per
                   if s.get("latency_ms") is not None)
    return {"name": name, "type": type_ or str(per[0].get("type") or ""),
            "health": max((s["health"] for s in per), key=HEALTH_RANK.__getitem__),
            "breaker": max((s["breaker"] for s in per), key=lambda b: BREAKER_RANK.get(b, 0)),
            "retry_in_seconds": max(float(s.get("retry_in_seconds") or 0) for s in per),
            "latency_ms": round(weighted / recent, 1) if recent else None,
            **{key: sum(int(s[key]) for s in per)
               for key in ("calls", "errors", "calls_1m", "errors_1m")},
            "processes": per}
