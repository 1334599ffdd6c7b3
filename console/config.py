"""The ``console:`` config section: its schema, defaults and check, in one place.

::

    console:
      enabled: true            # default true once the section is there; absent: no console
      path: /console           # served by hub run's inbound server under this prefix
      session_ttl: 1800        # seconds a session lives without use (idle timeout)
      session_max_age: 43200   # seconds a session lives at most, used or not
      lockout:
        after: 5               # consecutive failed logins of one account that lock it
        for: 900               # seconds it stays locked

Registered by ``console.parts``; ``console.api`` reads it through ``settings``.
"""

from __future__ import annotations

from typing import Any

from bdchub.core.i18n import _

DEFAULTS: dict[str, Any] = {
    "enabled": True, "path": "/console", "session_ttl": 1800, "session_max_age": 43200,
    "lockout": {"after": 5, "for": 900},
}

#: Paths of the inbound server's own that the console's prefix must not take.
_TAKEN = ("/api", "/soap", "/metrics", "/openapi.json", "/healthz", "/readyz")

SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False,
    "description": "the web console's operators, sessions and lock-out (bdchub.console)",
    "properties": {
        "enabled": {"type": "boolean", "default": True},
        "path": {"type": "string", "pattern": r"^(/[a-z0-9_-]+)+$", "default": "/console",
                 "description": "path prefix on the inbound server"},
        "session_ttl": {"type": "integer", "minimum": 60, "maximum": 86400, "default": 1800,
                        "description": "seconds a session lives without use"},
        "session_max_age": {"type": "integer", "minimum": 60, "maximum": 604800,
                            "default": 43200,
                            "description": "seconds a session lives at most"},
        "lockout": {
            "type": "object", "additionalProperties": False,
            "properties": {
                "after": {"type": "integer", "minimum": 1, "maximum": 100, "default": 5,
                          "description": "consecutive failed logins that lock the account"},
                "for": {"type": "integer", "minimum": 1, "maximum": 86400, "default": 900,
                        "description": "seconds the account stays locked"},
            },
        },
    },
}


def settings(config: Any) -> dict[str, Any] | None:
    """The console's settings with defaults filled in, or None when it is not served
    (no ``console:`` section, or ``enabled: false``)."""
    section = config.get("console") if isinstance(config, dict) else None
    if section is None:
        return None
    found = {**DEFAULTS, **section, "lockout": {**DEFAULTS["lockout"],
                                                **(section.get("lockout") or {})}}
    return found if found["enabled"] else None


def check_section(checker: Any, section: Any) -> None:
    """What the schema cannot say: the prefix must not shadow the inbound API."""
    if not isinstance(section, dict) or not isinstance(section.get("path"), str):
        return
    path = section["path"]
    for taken in _TAKEN:
        if path == taken or path.startswith(taken + "/") or taken.startswith(path + "/"):
            checker.add(("console", "path"), _("{path} is taken by the inbound server's own "
                                               "{taken}", path=path, taken=taken))
