"""Applications served under a path prefix of the inbound server, registered by parts.

A part above ``web`` (the console, ``console.parts``) registers a factory
``(hub, config) -> (prefix, wsgi_app) | None``; ``web.app.InboundApp`` asks every
factory when it is built (at start and at each reload) and hands a request whose
path is the prefix or below it to that application, before its own routes::

    MOUNTS.register("console", "bdchub.console.api:mount")

A factory answers None when its config leaves it off.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bdchub.core.registry import Registry

Mount = Callable[[Any, dict[str, Any]], "tuple[str, Any] | None"]

MOUNTS: Registry[Mount] = Registry("inbound mount")


def mounted(hub: Any, config: dict[str, Any]) -> list[tuple[str, Any]]:
    """(prefix, application) of every mount the config turns on, longest prefix first."""
    found = [m for _name, factory in MOUNTS.items() if (m := factory(hub, config)) is not None]
    return sorted(found, key=lambda m: -len(m[0]))
