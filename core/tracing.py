"""Tracing with OpenTelemetry: optional, and off unless the config turns it on.

``tracing:`` in config.yaml::

    tracing:
      enabled: true
      service_name: bdc-hub
      exporter: otlp            # otlp | console | none
      endpoint: http://127.0.0.1:4318/v1/traces
      sample_ratio: 1.0

The packages are an extra (``pip install 'bdc-hub[tracing]'``). This module
imports none of them: ``configure`` brings in ``core.otel`` only when the
section says ``enabled: true``, so a hub without tracing never loads
OpenTelemetry, and every traced place costs one look at ``ACTIVE``::

    if tracing.ACTIVE is not None: ...

``ACTIVE`` is the process's ``core.otel.Tracing`` (or None). It is one per
process, like OpenTelemetry's own global provider, because the spans are made
where nothing else is passed down (a connector's HTTP send, the inbound WSGI
call); ``routes.runtime.Hub.from_config`` sets it from the config, and a forked
``hub run`` process sets its own (an exporter's thread does not survive a fork).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .errors import ConfigError
from .i18n import _

if TYPE_CHECKING:
    from .config import Checker
    from .otel import Tracing

#: W3C Trace Context headers, carried as they are in an envelope's headers, so a
#: message published by one route continues the trace in the route that takes it.
TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"

EXTRA = "bdc-hub[tracing]"
#: What ``core.otel`` imports; missing ones are named in the refusal.
PACKAGES = {"opentelemetry.trace": "opentelemetry-api",
            "opentelemetry.sdk.trace": "opentelemetry-sdk",
            "opentelemetry.exporter.otlp.proto.http.trace_exporter":
                "opentelemetry-exporter-otlp-proto-http"}

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": "OpenTelemetry spans of route steps, outbound calls and inbound requests",
    "properties": {
        "enabled": {"type": "boolean", "default": False},
        "service_name": {"type": "string", "minLength": 1, "default": "bdc-hub"},
        "exporter": {"enum": ["otlp", "console", "none"], "default": "otlp"},
        "endpoint": {"type": "string", "pattern": r"^https?://\S+$",
                     "description": "the OTLP/HTTP traces URL, "
                                    "e.g. http://127.0.0.1:4318/v1/traces"},
        "sample_ratio": {"type": "number", "minimum": 0, "maximum": 1, "default": 1.0},
    },
}

DEFAULTS: dict[str, Any] = {key: spec["default"] for key, spec in SCHEMA["properties"].items()
                            if "default" in spec}

#: The process's tracing, or None: tracing is off.
ACTIVE: Tracing | None = None


def settings(block: Mapping[str, Any] | None) -> dict[str, Any]:
    """The section with its defaults filled in."""
    return {**DEFAULTS, **dict(block or {})}


def missing_packages() -> list[str]:
    """The distributions of the tracing extra that cannot be imported."""
    missing = []
    for module, dist in PACKAGES.items():
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(dist)
    return missing


def _not_installed(missing: list[str]) -> str:
    return _("tracing is enabled but OpenTelemetry is not installed (missing: {missing}); "
             "install the tracing extra: pip install '{extra}', or set tracing.enabled: false",
             missing=", ".join(missing), extra=EXTRA)


def check_section(checker: Checker, block: Any) -> None:
    """``hub check``: an enabled section needs the packages of the extra."""
    if not isinstance(block, Mapping) or block.get("enabled") is not True:
        return
    missing = missing_packages()
    if missing:
        checker.add(("tracing", "enabled"), _not_installed(missing))


def configure(block: Mapping[str, Any] | None) -> Tracing | None:
    """Make ``ACTIVE`` what ``block`` (the ``tracing:`` section) asks for.

    The same settings keep the running tracing (a second hub in the process, a
    reload); other settings replace it, and the one replaced sends what it holds.
    Raises ``ConfigError`` when tracing is on and the packages are missing."""
    global ACTIVE
    wanted = settings(block)
    if not wanted["enabled"]:
        install(None)
        return None
    if ACTIVE is not None and ACTIVE.settings == wanted:
        return ACTIVE
    missing = missing_packages()
    if missing:
        raise ConfigError(_not_installed(missing))
    from .otel import Tracing

    install(Tracing(wanted))
    return ACTIVE


def install(tracing: Tracing | None) -> None:
    """Set ``ACTIVE`` (tests install one with an in-memory exporter); the tracing it
    replaces is shut down, sending the spans it still holds."""
    global ACTIVE
    previous, ACTIVE = ACTIVE, tracing
    if previous is not None and previous is not tracing:
        previous.shutdown()
