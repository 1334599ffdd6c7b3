"""Prometheus counters of the bridge, counted where each crossing happens, in the
process that does it (``hub run`` for the diode connector and the ferry inbox;
``hub bridge receive`` for the diode's receiving side; ``hub ferry pack`` for discs
packed on the command line):

- ``bdchub_diode_objects_total{direction}``: objects sent (``sent``) or received
  and delivered to the inbox (``received``);
- ``bdchub_diode_bytes_total{direction}``: their bytes;
- ``bdchub_diode_repairs_total``: blocks of received objects rebuilt from FEC parity
  (symbols lost on the one-way link and made good without a resend);
- ``bdchub_diode_quarantined_total``: received objects the content policy refused;
- ``bdchub_ferry_discs_packed_total``, ``bdchub_ferry_discs_imported_total``,
  ``bdchub_ferry_discs_refused_total``: disc images packed, imported and delivered,
  refused (and quarantined).
"""

from __future__ import annotations

import threading
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter


class BridgeMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        reg = registry if registry is not None else REGISTRY
        self.registry = reg
        self.diode_objects = Counter("bdchub_diode_objects", "Objects through the diode",
                                     ["direction"], registry=reg)
        self.diode_bytes = Counter("bdchub_diode_bytes", "Bytes of objects through the diode",
                                   ["direction"], registry=reg)
        self.diode_repairs = Counter("bdchub_diode_repairs",
                                     "Blocks of received objects rebuilt from FEC parity",
                                     registry=reg)
        self.diode_quarantined = Counter("bdchub_diode_quarantined",
                                         "Received objects the content policy refused",
                                         registry=reg)
        self.discs_packed = Counter("bdchub_ferry_discs_packed", "Ferry disc images packed",
                                    registry=reg)
        self.discs_imported = Counter("bdchub_ferry_discs_imported",
                                      "Ferry disc images imported and delivered", registry=reg)
        self.discs_refused = Counter("bdchub_ferry_discs_refused",
                                     "Ferry disc images refused and quarantined", registry=reg)
        for direction in ("sent", "received"):  # present at 0: rates and alerts see them
            self.diode_objects.labels(direction)
            self.diode_bytes.labels(direction)

    def diode_moved(self, direction: str, objects: int, size: int) -> None:
        self.diode_objects.labels(direction).inc(objects)
        self.diode_bytes.labels(direction).inc(size)

    def ferry_imported(self, report: Any) -> None:
        """Count an ``ImportReport`` (the importer's verify-only runs are not imports)."""
        delivered, refused = len(report.delivered), len(report.refused)
        if delivered:
            self.discs_imported.inc(delivered)
        if refused:
            self.discs_refused.inc(refused)


_lock = threading.Lock()
_made: list[BridgeMetrics] = []


def bridge_metrics() -> BridgeMetrics:
    """The bridge's counters on the process-wide registry, made once (a name is
    registered once: two threads asking first must not both make them)."""
    with _lock:
        if not _made:
            _made.append(BridgeMetrics())
        return _made[0]
