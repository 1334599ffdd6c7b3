"""Singleton inputs under a lease: one process of a deployment runs each.

The pollers, the reconciler and the bridge watches (``app.inputs.singleton_inputs``)
must run once per deployment, not once per worker: a department polled by every
worker is polled N times, a disc imported twice is imported twice. Every process
of ``hub run`` (the processes of one ``hub run`` and separate ``hub run`` s on
one store alike) contends for each singleton's lease (``core.leases``); the one
that holds it runs it, the others try again every second and take over when the
holder stops (at once: it releases the lease) or dies (when its lease expires,
within ``core.leases.DEFAULT_TTL`` + ``RETRY`` seconds).

Each take-over and each loss is logged once; ``bdchub_singleton_held{name}`` is 1
in the process that holds it and 0 in the others; ``hub status`` lists the holders.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

from bdchub.core.i18n import _
from bdchub.core.leases import DEFAULT_TTL, LeaseKeeper, Leases

log = logging.getLogger("bdchub.singletons")


class SingletonMetrics:
    """``bdchub_singleton_held{name}``: 1 while this process holds the singleton's
    lease and runs it, else 0; with several processes one value per live process
    (``liveall``), so a scrape shows which runs it."""

    def __init__(self, registry: Any = None):
        from prometheus_client import REGISTRY, Gauge

        self.held = Gauge("bdchub_singleton_held",
                          "1 while this process holds the singleton's lease and runs it",
                          ["name"], registry=registry if registry is not None else REGISTRY,
                          multiprocess_mode="liveall")


_made: list[SingletonMetrics] = []
_made_lock = threading.Lock()


def singleton_metrics() -> SingletonMetrics:
    """The singletons' metrics on the process-wide registry, made once."""
    with _made_lock:
        if not _made:
            _made.append(SingletonMetrics())
        return _made[0]


class Leased:
    """An input (``app.inputs.Input``) that runs ``inner`` (an ``app.inputs.Background``)
    only while this process holds the lease named after it. A take after a loss
    runs a new target (``inner.renew()``): a stopped watch or poller set may still
    have a thread ending, which must not be woken again."""

    def __init__(self, inner: Any, leases: Leases, *, ttl: float = DEFAULT_TTL,
                 metrics: SingletonMetrics | None = None, **keeper: Any):
        self.inner = inner
        self.name: str = inner.name
        self.path = getattr(inner, "path", None)
        self.metrics = metrics or singleton_metrics()
        self._runs = 0
        #: How long a stop lets the singleton finish: the caller's timeout on a clean
        #: stop, part of the keeper's margin on a loss (the lease may be another's after it).
        self._grace: float | None = None
        self.keeper = LeaseKeeper(leases, self.name, on_take=self._take, on_lose=self._lose,
                                  ttl=ttl, **keeper)
        self.metrics.held.labels(self.name).set(0)

    @property
    def target(self) -> Any:
        """What the inner input runs now (the ``Pollers`` of the pollers input)."""
        return self.inner.target

    @property
    def holding(self) -> bool:
        return self.keeper.holding

    def _take(self) -> None:
        if self._runs:
            self.inner.renew()
        self._runs += 1
        self.inner.start()
        self.metrics.held.labels(self.name).set(1)
        log.info("%s", _("singleton {name}: taken over by this process ({holder})",
                         name=self.name, holder=self.keeper.holder))

    def _lose(self, reason: str) -> None:
        self.metrics.held.labels(self.name).set(0)
        try:
            self.inner.stop(self.keeper.margin / 2 if self._grace is None else self._grace)
        finally:
            # A loss is news; handing over on a clean stop is not.
            log.log(logging.WARNING if self._grace is None else logging.INFO, "%s", _("singleton {name}: no longer run by this process ({holder}): "
                                "{reason}", name=self.name, holder=self.keeper.holder,
                                reason=reason))

    def start(self) -> None:
        self.keeper.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._grace = timeout
        self.keeper.stop(timeout)

    def kill(self) -> None:
        held = self.keeper.holding
        self.keeper.kill()
        if held:
            self.metrics.held.labels(self.name).set(0)
            with contextlib.suppress(Exception):
                self.inner.kill()


def leased(inputs: list[Any], engine: Any, **options: Any) -> list[Leased]:
    """Each of ``inputs`` under its lease in the store of ``engine``."""
    if not inputs:
        return []
    leases = Leases(engine)
    return [Leased(item, leases, **options) for item in inputs]


def holding(inputs: list[Any], name: str) -> Callable[[], Any]:
    """What ``name`` runs in this process now, or None while another process runs it
    (for the metrics of the pollers this process runs)."""
    def current() -> Any:
        for item in inputs:
            if item.name == name and getattr(item, "holding", True):
                return item.target
        return None
    return current
