"""Who may say what, and who may read what: the inbound clients' permissions.

Each client of ``inbound.clients`` declares (defaults by channel in
``config_schema.CHANNEL_DEFAULTS``)::

    sends: [application.submitted, application.*]   # types or topic patterns
    owns:  [progress.reported]                      # hub events it is the source of
    reads: own | channel | tenant | none            # whose cases' progress it may read

*Hub events* are what the hub's own routes emit: the canonical events
(``HUB_EVENTS``: progress, the register entry, the decision notices) and every
type a route of the config publishes, except the submissions the hub takes from
outside by design (``SUBMISSIONS``: a bank batch's items become applications,
but an application is still what a window submits). Coming from outside, a hub
event would be a forged fact the routes act on (a refusal notice to the window,
a register entry waking the route that waits for it), so a client may send one
only when it owns it, which only a legacy, department, internal or peer hub
client may (a county hub reports its cases' progress up to the province), and no pattern in ``sends`` ever reaches one. ``problems`` is the load-time
check (``hub check`` and the inbound app alike): a config that names a hub event
under a client's ``sends``, or lets a window or bank own one, is refused.

Reads: ``own`` and ``channel`` compare with who submitted the case (the client
and channel of its ``application.submitted``, kept by the store); a case outside
answers 404 as an unknown one does, so its existence does not leak.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from bdchub.core.broker import topic_matches
from bdchub.core.i18n import _

from .config_schema import CHANNEL_DEFAULTS

#: The events the hub's routes emit whatever the config (BRIEF §4's stages).
HUB_EVENTS = frozenset({"progress.reported", "registration.recorded", "refusal.notified",
                        "acceptance.notified", "correction.requested"})
#: What the hub takes from outside by design, even where a route also publishes it.
SUBMISSIONS = frozenset({"application.submitted", "application.materials_updated",
                         "appointment.requested"})
#: Channels of the systems that may be the source of hub events.
OWNER_CHANNELS = ("legacy", "department", "internal", "hub")

_TYPE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
_DEFAULT_PUBLISH = {"require_materials": "correction.requested"}


@dataclass(frozen=True)
class Permissions:
    """What one client may send and read."""

    sends: tuple[str, ...] = ()
    owns: frozenset[str] = frozenset()
    reads: str = "none"

    @classmethod
    def of(cls, block: Mapping[str, Any]) -> Permissions:
        """From a client's block; what it leaves out comes from its channel."""
        defaults = CHANNEL_DEFAULTS.get(str(block.get("channel") or "other"),
                                        CHANNEL_DEFAULTS["other"])
        return cls(sends=tuple(block.get("sends", defaults["sends"])),
                   owns=frozenset(block.get("owns") or ()),
                   reads=str(block.get("reads", defaults["reads"])))

    def may_send(self, type_: str, events: frozenset[str]) -> bool:
        if type_ in self.owns:
            return True
        if type_ in events:
            return False
        return any(topic_matches(pattern, type_) for pattern in self.sends)


def published(routes: Any) -> dict[str, list[str]]:
    """Message type -> the routes whose steps publish it. Read from the ``routes:``
    section as written: every step value's ``publish`` (a ``publish`` step, a
    ``split``'s, a ``require_materials``'s and its default), at any depth."""
    found: dict[str, list[str]] = {}
    if not isinstance(routes, Mapping):
        return found
    for name, spec in routes.items():
        steps = spec.get("steps") if isinstance(spec, Mapping) else None
        for type_ in _published_by(steps):
            names = found.setdefault(type_, [])
            if name not in names:
                names.append(str(name))
    return found


def _published_by(node: Any) -> Iterator[str]:
    if isinstance(node, list):
        for item in node:
            yield from _published_by(item)
    elif isinstance(node, Mapping):
        for key, value in node.items():
            if key in _DEFAULT_PUBLISH and isinstance(value, Mapping) and "publish" not in value:
                yield _DEFAULT_PUBLISH[key]
            if key == "publish":
                named = value.get("type") if isinstance(value, Mapping) else value
                if isinstance(named, str) and _TYPE.match(named):
                    yield named
            yield from _published_by(value)


def hub_events(routes: Any) -> frozenset[str]:
    """The types no client may send unless it owns them (see the module's text)."""
    return HUB_EVENTS | (frozenset(published(routes)) - SUBMISSIONS)


def problems(clients: Any, routes: Any) -> list[tuple[tuple[str | int, ...], str]]:
    """(path, message) of each permission a config gives that it must not."""
    out: list[tuple[tuple[str | int, ...], str]] = []
    if not isinstance(clients, Mapping):
        return out
    by_route = published(routes)
    events = hub_events(routes)
    for name, block in clients.items():
        if not isinstance(block, Mapping):
            continue
        path = ("inbound", "clients", name)
        owns = [t for t in block.get("owns") or () if isinstance(t, str)]
        channel = str(block.get("channel") or "other")
        if owns and channel not in OWNER_CHANNELS:
            out.append(((*path, "owns"), _(
                "a client of channel {channel} cannot own hub events; only a legacy, "
                "department, internal or peer hub client can", channel=channel)))
        for i, type_ in enumerate(owns):
            if type_ not in events:
                out.append(((*path, "owns", i), _(
                    "'{type}' is not a hub event; list it under sends", type=type_)))
        for i, type_ in enumerate(block.get("sends") or ()):
            if isinstance(type_, str) and type_ in events and type_ not in owns:
                routes_of = by_route.get(type_)
                out.append(((*path, "sends", i), _(
                    "'{type}' is a hub event ({origin}): a client may send it only when it "
                    "owns it (owns:)", type=type_,
                    origin=_("published by route {routes}", routes=", ".join(routes_of))
                    if routes_of else _("emitted by the hub's own routes"))))
    return out
