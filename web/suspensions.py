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

``resolve``, ``suspend`` and ``resume`` are what ``hub channel suspend|resume`` and the
console's channels page (``console.channels``) both do, so either writes the same
row and the same audit events (``channel.suspended``, ``channel.resumed``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from bdchub.core import greenloop
from bdchub.core.errors import ConfigError
from bdchub.core.i18n import _
from bdchub.core.suggest import did_you_mean

from .config_schema import CHANNELS

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


def resolve(name: str, clients: Mapping[str, Any], *, client: bool = False,
            channel: bool = False) -> tuple[str, str]:
    """(kind, name) that ``name`` designates: a client of ``clients`` or a channel."""
    if client and channel:
        raise ConfigError(_("give --client or --channel, not both"))
    is_client, is_channel = name in clients, name in CHANNELS
    if client or (is_client and not channel and not is_channel):
        if not is_client:
            raise ConfigError(_("no inbound client named '{name}'{hint}", name=name,
                                hint=did_you_mean(name, clients)))
        return "client", name
    if channel or is_channel:
        if not is_channel:
            raise ConfigError(_("no channel named '{name}'{hint}; channels: {known}", name=name,
                                hint=did_you_mean(name, CHANNELS), known=", ".join(CHANNELS)))
        if is_client and not channel:
            raise ConfigError(_("'{name}' is both a client and a channel: add --client or "
                                "--channel", name=name))
        return "channel", name
    raise ConfigError(_("'{name}' is neither an inbound client nor a channel{hint}", name=name,
                        hint=did_you_mean(name, [*clients, *CHANNELS])))


def suspend(hub: Any, kind: str, name: str, *, by: str, reason: str,
            at: float | None = None, **audited: Any) -> dict[str, Any] | None:
    """Suspend and audit it (with ``audited`` besides: the console's operator and
    remote address); None when done, else the suspension already in force."""
    at = time.time() if at is None else at
    held = hub.store.suspend(kind, name, by=by, reason=reason, at=at)
    if held is None:
        hub.audit("channel.suspended", kind=kind, name=name, by=by, reason=reason, at=at,
                  **audited)
    return held


def resume(hub: Any, kind: str, name: str, *, by: str, reason: str = "",
           **audited: Any) -> dict[str, Any] | None:
    """Lift a suspension and audit it; the suspension lifted, or None when there was none."""
    lifted = hub.store.resume(kind, name)
    if lifted is not None:
        hub.audit("channel.resumed", kind=kind, name=name, by=by, reason=reason, at=time.time(),
                  suspended_by=lifted["suspended_by"], suspended_at=lifted["suspended_at"],
                  **audited)
    return lifted
