"""How the hub's Prometheus metrics are served: one exposition for ``GET /metrics``
on the inbound server and for the separate ``metrics.listen`` listener.

Three sources make one scrape:

- the counters, histograms and gauges the parts update as things happen
  (``bdchub_route_*``, ``bdchub_connector_*``, ``bdchub_inbound_*``, the bridge's);
- scrape-time collectors (``add_collector``): state read when Prometheus asks,
  from what every process of the hub shares (queue depth from the broker, parked,
  waiting and dead-letter counts from the store), plus ``bdchub_build_info``;
- derivations (``add_derivation``): families computed from the two above (a
  poller's lag from its last success, the number of open breakers).

With several server processes (``inbound.listen.processes`` > 1) each process
would keep its own counters, and successive scrapes, answered by whichever
process the kernel hands the connection to, would disagree. ``hub run`` then
calls ``enable_multiprocess`` before it forks: prometheus_client's multiprocess
mode keeps every process's values in memory-mapped files of one folder, and any
process answers a scrape with the sum of all (``MultiProcessCollector``). Gauges
say how their values combine (``multiprocess_mode``: ``livemax`` for a breaker's
state, ``livesum`` for calls under way); the scrape-time state is read from the
shared broker and store, so it is the same whichever process answers.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, start_http_server, values
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

log = logging.getLogger("bdchub.metrics")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

Derivation = Callable[[list[Metric], float], Iterable[Metric]]

_lock = threading.Lock()
_collectors: list[Any] = []
_derivations: list[Derivation] = []


# -- several processes ---------------------------------------------------------------------


def enable_multiprocess(parent: str | os.PathLike[str]) -> Path:
    """Put this process, and the processes it forks from now on, in multiprocess
    mode with their values in a new folder ``parent/<pid>``; the folders of earlier
    runs whose process is gone are removed (their values must not be added to this
    run's). Call it before any metric is made: a metric keeps the kind of value it
    was made with."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    for old in parent.iterdir():
        if old.is_dir() and not (old.name.isdigit() and _alive(int(old.name))):
            shutil.rmtree(old, ignore_errors=True)
    path = parent / str(os.getpid())
    if path.exists():
        shutil.rmtree(path)
    path.mkdir()
    os.environ[MULTIPROC_ENV] = str(path)
    # prometheus_client chooses its value class when first imported, which the hub
    # has done long before: choose again (metrics look the class up when made).
    values.ValueClass = values.MultiProcessValue()
    return path


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()  # the hub runs on Linux (Debian)


def multiprocess_dir() -> str | None:
    """The folder of the processes' values, when in multiprocess mode."""
    found = os.environ.get(MULTIPROC_ENV)
    return found if found and values.ValueClass is not values.MutexValue else None


# -- what a scrape is made of -------------------------------------------------------------


def add_collector(collector: Any) -> None:
    """Collect ``collector`` (an object with ``collect()``) in every scrape until
    ``remove_collector``. Its families must not fail a scrape: it answers what it
    can and says what it could not (``bdchub_state_up``)."""
    with _lock:
        if collector not in _collectors:
            _collectors.append(collector)


def remove_collector(collector: Any) -> None:
    with _lock:
        if collector in _collectors:
            _collectors.remove(collector)


def add_derivation(derive: Derivation) -> None:
    """``derive(families, now)`` gives more families from those collected."""
    with _lock:
        if derive not in _derivations:
            _derivations.append(derive)


class Scrape:
    """Everything one scrape serves, as a collector for prometheus_client's
    exposition (``generate_latest(Scrape())``). ``base``: the registry of the
    counters (the process-wide one unless a test gives its own)."""

    def __init__(self, base: CollectorRegistry | None = None):
        self.base = base if base is not None else REGISTRY

    def collect(self) -> Iterator[Metric]:
        with _lock:
            collectors, derivations = list(_collectors), list(_derivations)
        families: list[Metric] = []
        seen: set[str] = set()
        # Scrape-time collectors first: they may refresh values the others then read
        # (a breaker that went half-open while no call looked).
        for source in [*collectors, *self._counted()]:
            try:
                for family in source.collect():
                    if family.name not in seen:  # two hubs in one test process
                        seen.add(family.name)
                        families.append(family)
            except Exception:  # noqa: BLE001 - one source must not fail the scrape
                log.exception("metrics: %s failed", type(source).__name__)
        now = time.time()
        for derive in derivations:
            try:
                families.extend(derive(families, now))
            except Exception:  # noqa: BLE001
                log.exception("metrics: derivation %s failed", getattr(derive, "__name__", ""))
        yield from families

    def _counted(self) -> list[Any]:
        if self.base is REGISTRY and multiprocess_dir():
            return [_MultiProcess(), _ProcessLocal(self.base)]
        return [self.base]


class _MultiProcess:
    def collect(self) -> Iterable[Metric]:
        folder = multiprocess_dir()
        return MultiProcessCollector(None, folder).collect() if folder else []


class _ProcessLocal:
    """The families of this process that are not kept in the shared files (info
    metrics: the configuration this process runs), which multiprocess mode leaves
    out."""

    def __init__(self, registry: CollectorRegistry):
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        for family in self.registry.collect():
            if family.type in ("info", "stateset"):
                yield family


def exposition(registry: CollectorRegistry | None = None) -> bytes:
    """The text format of one scrape."""
    from prometheus_client import generate_latest

    return generate_latest(Scrape(registry))  # type: ignore[arg-type]


def sample_value(families: Iterable[Metric], name: str) -> Iterator[tuple[dict[str, str], float]]:
    """(labels, value) of each sample named ``name`` in ``families``."""
    for family in families:
        for sample in family.samples:
            if sample.name == name:
                yield sample.labels, sample.value


# -- the separate listener (metrics.listen) -----------------------------------------------


def parse_listen(text: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:9108`` for IPv6) as (host, port); ValueError if not."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(text)
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


class MetricsListener:
    """``GET /metrics`` (any path, as Prometheus's own exporters) on an address of its
    own, apart from the inbound endpoints, in a daemon thread."""

    def __init__(self, host: str, port: int):
        self.host = host
        self.port = port
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def start(self) -> None:
        self._server, self._thread = start_http_server(self.port, self.host,
                                                       registry=Scrape())  # type: ignore[arg-type]
        self.port = int(self._server.server_address[1])  # port 0: the one given

    def stop(self, timeout: float = 10.0) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
