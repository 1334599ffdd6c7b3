"""Connector types registered by name, imported only when used.

``type: rest`` in YAML is looked up here. Third parties add their own with
``register("mytype", "package.module:Class")``. Unknown names fail at load
time with a "did you mean".
"""

from __future__ import annotations

import difflib
import importlib
from pathlib import Path
from typing import Any

from bdchub.core.errors import ConfigError
from bdchub.core.i18n import _

from .base import Connector

_TYPES: dict[str, str] = {
    "rest": "bdchub.connectors.rest:RestConnector",
    "soap": "bdchub.connectors.soap:SoapConnector",
    "amqp": "bdchub.connectors.amqp:AmqpConnector",
    "fake": "bdchub.connectors.fake:FakeConnector",
    "diode": "bdchub.bridge.diode.connector:DiodeConnector",
}

# Keys every connector block may carry, whatever its type. Their defaults are
# applied by connectors.resilience (see its docstring).
COMMON_SCHEMA: dict[str, Any] = {
    "type": {"type": "string", "description": "connector type, e.g. rest, soap, amqp"},
    "description": {"type": "string", "description": "free text for people"},
    "timeout": {"type": "number", "exclusiveMinimum": 0, "default": 10,
                "description": "seconds one attempt may take (connect + answer); default 10"},
    "retry": {
        "type": "object",
        "additionalProperties": False,
        "description": "retries of recoverable failures (timeouts, 5xx, 429, refused)",
        "properties": {
            "attempts": {"type": "integer", "minimum": 1, "maximum": 100, "default": 3,
                         "description": "attempts in all, the first included; 1 = no retry"},
            "max_time": {"type": "number", "exclusiveMinimum": 0, "default": 60,
                         "description": "seconds from the first attempt after which no "
                                        "new attempt starts"},
            "backoff": {"type": "number", "minimum": 0, "default": 0.5,
                        "description": "seconds before the first retry, doubled each time"},
            "max_backoff": {"type": "number", "minimum": 0, "default": 10,
                            "description": "cap of the doubling (a Retry-After may exceed it)"},
            "jitter": {"type": "number", "minimum": 0, "default": 0.5,
                       "description": "up to this many seconds added at random"},
        },
    },
    "breaker": {
        "type": "object",
        "additionalProperties": False,
        "description": "circuit breaker: fail fast while the endpoint is down",
        "properties": {
            "failures": {"type": "integer", "minimum": 1, "default": 5,
                         "description": "consecutive recoverable failures that open it"},
            "reset_after": {"type": "number", "exclusiveMinimum": 0, "default": 30,
                            "description": "seconds open before trial calls are let through"},
            "half_open_calls": {"type": "integer", "minimum": 1, "default": 1,
                                "description": "trial calls at a time while half-open"},
        },
    },
    "limits": {
        "type": "object",
        "additionalProperties": False,
        "description": "what the endpoint allows us; no limit by default",
        "properties": {
            "concurrency": {"type": "integer", "minimum": 1,
                            "description": "calls at once (also the HTTP pool size)"},
            "rate": {"type": "number", "exclusiveMinimum": 0,
                     "description": "calls per second (token bucket)"},
            "burst": {"type": "integer", "minimum": 1,
                      "description": "calls allowed at once after a quiet spell; default: rate"},
        },
    },
}


def register(type_name: str, target: str) -> None:
    """Register ``type_name`` -> ``"module:Class"`` (imported on first use)."""
    _TYPES[type_name] = target


def names() -> list[str]:
    return sorted(_TYPES)


def suggest(name: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return _(" (did you mean '{name}'?)", name=close[0]) if close else ""


def get(type_name: str) -> type[Connector]:
    target = _TYPES.get(type_name)
    if target is None:
        raise ConfigError(_("unknown connector type '{type}'{hint}; known types: {known}",
                            type=type_name, hint=suggest(type_name, names()),
                            known=", ".join(names())))
    module_name, _sep, cls_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(_("connector type '{type}' cannot be loaded: {error}",
                            type=type_name, error=exc)) from exc
    return getattr(module, cls_name)


def schema_for(type_name: str) -> dict[str, Any]:
    """The full JSON Schema of one connector block: common keys + the type's own."""
    cls = get(type_name)
    own = cls.config_schema
    props = dict(COMMON_SCHEMA)
    props.update(own.get("properties", {}))
    schema: dict[str, Any] = {"type": "object", "properties": props,
                              "additionalProperties": False,
                              "required": ["type", *own.get("required", [])]}
    for key in ("allOf", "anyOf", "oneOf", "dependentRequired", "$defs"):
        if key in own:
            schema[key] = own[key]
    return schema


def create(name: str, config: dict[str, Any], *, base_dir: Any = None) -> Connector:
    """The bare connector (no retries or breaker: see ``connectors.build``)."""
    # Set after construction, so third-party types with the old (name, config)
    # constructor keep working.
    connector = get(config["type"])(name, config)
    if base_dir is not None:
        connector.base_dir = Path(base_dir)
    return connector
