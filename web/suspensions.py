"""Suspended inbound clients and channels, as the intake sees them (guide §三(一)6:
the registration agency can close the channel of one that misbehaves).

An operator suspends one client or a whole channel with ``hub channel suspend``
(``app.channels_cli``); the suspension is a row in the store every process serving
the hub shares (``core.store.channel_suspensions``, reached through
``HubPort.request_records``). A process reads the rows again when its last read is
older than ``inbound.suspension_refresh`` seconds (default 5), so a suspension or a
resumption reaches every process, of this hub and of any other on the same store,
within that time, without a restart and without a store read per request.

A store that cannot be read refuses the request (503): a suspended client must not
get through because the store is down, as a replayed nonce must not.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from bdchub.core import greenloop

Row = Mapping[str, Any]


class Suspensions:
    """The suspensions in force, read through ``read`` at most every ``refresh``
    seconds of ``clock``. ``read`` returns the store's rows (``kind``, ``name``,
    ``suspended_by``, ``reason``, ``suspended_at``); it may raise ``HubError``."""

    def __init__(self, read: Callable[[], list[Row]], *, refresh: float,
                 clock: Callable[[], float] = time.monotonic):
        self._read = read
        self.refresh = float(refresh)
        self._clock = clock
        self._lock = threading.Lock()
        self._rows: dict[tuple[str, str], Row] = {}
        self._read_at: float | None = None

    @classmethod
    def of_hub(cls, hub: Any, *, refresh: float,
               clock: Callable[[], float] = time.monotonic) -> Suspensions:
        """Read from the store behind ``hub.request_records()`` (``core.store.Store``);
        a hub whose records keep no suspensions has none."""
        def read() -> list[Row]:
            records = hub.request_records()
            found = getattr(records, "suspensions", None)
            return list(found()) if found is not None else []
        return cls(read, refresh=refresh, clock=clock)

    def holding(self, client: str, channel: str) -> Row | None:
        """The suspension that refuses ``client`` of ``channel``: its own first, else
        its channel's; None when it may go on."""
        rows = self._current()
        return rows.get(("client", client)) or rows.get(("channel", channel))

    def _current(self) -> dict[tuple[str, str], Row]:
        now = self._clock()
        read_at = self._read_at
        if read_at is not None and now - read_at < self.refresh:
            return self._rows
        # A database read: on the inbound server's loop a thread waits for it.
        rows = greenloop.blocking(self._read)
        fresh = {(str(r["kind"]), str(r["name"])): r for r in rows}
        with self._lock:
            self._rows, self._read_at = fresh, now
        return fresh
