"""The running hub's state as Prometheus gauges, read when Prometheus asks, and the
``metrics:`` section (``metrics.listen``: a listener of its own).

Gauges of what is there now, the same whichever process of the hub answers (they
are read from the broker and the store every process shares):

- ``bdchub_route_queue_messages{route}``: messages ready in the route's queue;
- ``bdchub_route_parked_messages{route}``: parked, waiting for their next try;
- ``bdchub_route_waiting_messages{route}``: held by an ``await`` step;
- ``bdchub_route_dead_letter_messages{route}``: dead letters not replayed or dropped;
- ``bdchub_state_up{source}``: 1 when ``broker`` / ``store`` answered this scrape, 0
  when it could not (its gauges are then left out, the scrape still answers);
- ``bdchub_build_info{version,python}``: 1, with the hub's and Python's versions.

Derived at scrape time from what the processes counted:

- ``bdchub_connector_breakers_open``: connectors whose breaker is open;
- ``bdchub_poller_lag_seconds{poller}``: seconds since the poller's last success
  (since it started, if it has not succeeded yet).

Each kind is one ``COUNT … GROUP BY route`` query, never a query per row, and
the queue depths one size query per route queue.
"""

from __future__ import annotations

import logging
import platform
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from bdchub.core import metrics as core_metrics
from bdchub.core.i18n import _

log = logging.getLogger("bdchub.metrics")

SCHEMA = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "listen": {"type": "string",
                   "description": "host:port of a listener serving only /metrics, apart from "
                                  "the inbound endpoints (empty: none)"},
        "enabled": {"type": "boolean", "default": True,
                    "description": "false: no metrics listener even when listen is set"},
    },
}


def check_section(checker: Any, block: Any) -> None:
    """``metrics.listen`` is an address the listener can bind."""
    if not isinstance(block, Mapping):
        return
    listen = block.get("listen")
    if isinstance(listen, str) and listen.strip():
        try:
            core_metrics.parse_listen(listen)
        except ValueError:
            checker.add(("metrics", "listen"), _("{value!r} is not host:port (for example "
                                                 "127.0.0.1:9108)", value=listen))


def listen_address(config: Mapping[str, Any]) -> tuple[str, int] | None:
    """Where the metrics listener listens, or None when the config asks for none."""
    block = config.get("metrics") or {}
    listen = str(block.get("listen") or "").strip()
    if not listen or block.get("enabled") is False:
        return None
    return core_metrics.parse_listen(listen)


def build_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("bdc-hub")
    except metadata.PackageNotFoundError:
        return "unknown"


# -- the state, read at scrape time ----------------------------------------------------------


class HubState:
    """The scrape-time collector of one running hub."""

    def __init__(self, hub: Any):
        self.hub = hub
        self.version = build_version()

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily("bdchub_build_info", "The hub's version and Python's, as "
                                 "labels; the value is 1", labels=["version", "python"])
        info.add_metric([self.version, platform.python_version()], 1)
        yield info
        self._touch_breakers()
        routes = sorted(self.hub.routes.values(), key=lambda r: r.name)
        up = GaugeMetricFamily("bdchub_state_up", "1 when the source answered this scrape",
                               labels=["source"])
        depth = self._queue_depths(routes)
        up.add_metric(["broker"], 1 if depth is not None else 0)
        if depth is not None:
            yield depth
        counted = self._store_counts([r.name for r in routes])
        up.add_metric(["store"], 1 if counted is not None else 0)
        if counted is not None:
            yield from counted
        yield up

    def _touch_breakers(self) -> None:
        # A breaker turns half-open lazily, when a call looks; looking now keeps
        # bdchub_connector_circuit_state true while no call comes.
        for connector in list(self.hub.connectors.values()):
            breaker = getattr(connector, "breaker", None)
            if breaker is not None:
                _ = breaker.state

    def _queue_depths(self, routes: list[Any]) -> GaugeMetricFamily | None:
        family = GaugeMetricFamily("bdchub_route_queue_messages",
                                   "Messages ready in the route's queue", labels=["route"])
        try:
            sizes = [(r.name, self.hub.broker.queue_size(r.queue)) for r in routes]
        except Exception as exc:  # noqa: BLE001 - the broker away must not fail the scrape
            log.warning("metrics: queue depth unavailable: %s", exc)
            return None
        if routes and all(size is None for _name, size in sizes):
            return None  # the broker could not say (out of reach, or cannot count)
        for name, size in sizes:
            if size is not None:
                family.add_metric([name], size)
        return family

    def _store_counts(self, routes: list[str]) -> list[GaugeMetricFamily] | None:
        try:
            counts = self.hub.store.route_counts()  # one GROUP BY query per kind
        except Exception as exc:  # noqa: BLE001 - the store away must not fail the scrape
            log.warning("metrics: store counts unavailable: %s", exc)
            return None
        found = []
        for key, name, text in STORE_GAUGES:
            family = GaugeMetricFamily(name, text, labels=["route"])
            # Every route, 0 included: a panel or an alert sees it before its first.
            for route in sorted(set(routes) | set(counts)):
                family.add_metric([route], counts.get(route, {}).get(key, 0))
            found.append(family)
        return found


#: (key of ``Store.route_counts``, gauge, help) of the counts read from the store.
STORE_GAUGES = (
    ("parked", "bdchub_route_parked_messages", "Messages parked, waiting for their next try"),
    ("waiting", "bdchub_route_waiting_messages", "Messages held by an await step"),
    ("dead_letters", "bdchub_route_dead_letter_messages",
     "Dead letters not replayed or dropped"),
)


def derived(families: list[Metric], now: float) -> Iterable[Metric]:
    """The families computed from what the processes counted (see the module docstring)."""
    states = list(core_metrics.sample_value(families, "bdchub_connector_circuit_state"))
    if states:
        open_ = GaugeMetricFamily("bdchub_connector_breakers_open",
                                  "Connectors whose breaker is open")
        open_.add_metric([], sum(1 for _labels, value in states if value >= 2))
        yield open_
    last = list(core_metrics.sample_value(families,
                                          "bdchub_poller_last_success_timestamp_seconds"))
    if last:
        lag = GaugeMetricFamily("bdchub_poller_lag_seconds",
                                "Seconds since the poller last succeeded", labels=["poller"])
        for labels, value in last:
            lag.add_metric([labels.get("poller", "")], max(0.0, now - value))
        yield lag


core_metrics.add_derivation(derived)


#: Seconds between two looks at this process's breakers and pollers.
TICK = 2.0


class StateMetrics:
    """An input of ``HubService``: from start to stop the hub's state is in every
    scrape; with ``listen``, a listener of its own serves the scrapes too.

    Every ``TICK`` seconds it looks at what only this process knows and the other
    processes' scrapes need too: its breakers (one that turned half-open while no
    call looked) and its pollers' last success (``pollers()``: those it runs)."""

    name = "metrics"

    def __init__(self, hub: Any, listen: tuple[str, int] | None = None, *,
                 pollers: Callable[[], Any] | None = None):
        self.state = HubState(hub)
        self.listener = core_metrics.MetricsListener(*listen) if listen else None
        self.pollers = pollers
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def look(self) -> None:
        self.state._touch_breakers()
        running = self.pollers() if self.pollers is not None else None
        if running is not None and getattr(running, "items", None):
            poller_metrics().look(running.items, time.time())

    def _run(self) -> None:
        while True:
            try:
                self.look()
            except Exception:  # noqa: BLE001 - metrics never stop the hub
                log.debug("metrics: look failed", exc_info=True)
            if self._stop.wait(TICK):
                return

    def start(self) -> None:
        from bdchub.bridge.metrics import bridge_metrics

        bridge_metrics()  # the bridge's counters in the scrapes at 0 before its first crossing
        core_metrics.add_collector(self.state)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="hub-metrics", daemon=True)
        self._thread.start()
        if self.listener is not None:
            try:
                self.listener.start()
            except OSError as exc:
                self.listener = None
                self.stop(timeout=1.0)
                from bdchub.core.errors import ConfigError

                raise ConfigError(_("metrics.listen: cannot listen on {host}:{port}: {error}",
                                    host=self.listener.host, port=self.listener.port,
                                    error=exc.strerror or exc)) from exc
            log.info("metrics on %s", self.listener.url)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self.listener is not None:
            self.listener.stop(timeout)
        core_metrics.remove_collector(self.state)

    def kill(self) -> None:
        try:
            self.stop(timeout=0)
        except Exception:  # noqa: BLE001 - kill never raises
            log.debug("metrics listener did not stop cleanly", exc_info=True)


# -- the pollers' successes (their lag is derived from these) -----------------------------


class PollerMetrics:
    """``bdchub_poller_last_success_timestamp_seconds{poller}``: when the poller was
    last seen working (its last poll, or case query, succeeded), looked at every
    ``TICK`` seconds by the process that runs the pollers; the start time until its
    first poll, so one that never succeeds shows its lag from then."""

    def __init__(self, registry: Any = None):
        from prometheus_client import REGISTRY, Gauge

        reg = registry if registry is not None else REGISTRY
        # livemax: one process polls; the others have no value for it.
        self.last_success = Gauge("bdchub_poller_last_success_timestamp_seconds",
                                  "When the poller was last seen working (Unix time)",
                                  ["poller"], registry=reg, multiprocess_mode="livemax")
        self._seen: set[str] = set()

    def look(self, pollers: Iterable[Any], now: float) -> None:
        for poller in pollers:
            name = str(poller.name)
            if name not in self._seen or getattr(poller, "last_error", None) is None:
                self._seen.add(name)
                self.last_success.labels(name).set(now)


_made: list[PollerMetrics] = []
_made_lock = threading.Lock()


def poller_metrics() -> PollerMetrics:
    """The pollers' metrics on the process-wide registry, made once."""
    with _made_lock:
        if not _made:
            _made.append(PollerMetrics())
        return _made[0]
