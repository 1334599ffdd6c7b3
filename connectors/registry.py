"""Connector types registered by name, imported only when used.

``type: rest`` in YAML is looked up in ``CONNECTOR_TYPES`` (a
``core.registry.Registry``). The types of this package are registered below;
other packages register theirs in their ``parts`` module (the bridge adds
``diode``), third parties with ``register("mytype", "package.module:Class")``
in theirs. Unknown names fail at load time with a "did you mean".

This module also owns the ``connectors:`` config section: each block is
checked against its type's own schema (``schema_for``), and
``operation_problem`` says whether a connector has an operation, for the
route compiler and the pollers.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bdchub.core.i18n import _
from bdchub.core.registry import Registry
from bdchub.core.suggest import did_you_mean

from .base import Connector

if TYPE_CHECKING:
    from bdchub.core.config import Checker

CONNECTOR_TYPES: Registry[type[Connector]] = Registry(
    "connector type",
    unknown=lambda name, hint, known: _("unknown connector type '{type}'{hint}; known types: "
                                        "{known}", type=name, hint=hint, known=known))
CONNECTOR_TYPES.register("rest", "bdchub.connectors.rest:RestConnector")
CONNECTOR_TYPES.register("soap", "bdchub.connectors.soap:SoapConnector")
CONNECTOR_TYPES.register("amqp", "bdchub.connectors.amqp:AmqpConnector")
CONNECTOR_TYPES.register("fake", "bdchub.connectors.fake:FakeConnector")

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


def register(type_name: str, target: str | type[Connector]) -> None:
    """Register ``type_name`` -> ``"module:Class"`` (imported on first use) or a class."""
    CONNECTOR_TYPES.register(type_name, target)


def names() -> list[str]:
    return CONNECTOR_TYPES.names()


def get(type_name: str) -> type[Connector]:
    return CONNECTOR_TYPES.get(type_name)


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
    connector = get(config["type"])(name, config)
    if base_dir is not None:
        connector.base_dir = Path(base_dir)
    return connector


# -- the connectors: section ----------------------------------------------------

SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": {"type": "object"},
    "description": "the endpoints the hub calls, by name; each block's keys depend on its type",
}


def check_section(checker: Checker, connectors: Any) -> None:
    """Each connector block against its type's schema (``core.config.Section.check``)."""
    if not isinstance(connectors, Mapping):
        return
    for name, block in connectors.items():
        if not isinstance(block, Mapping):
            continue
        path = ("connectors", name)
        type_name = block.get("type")
        if type_name is None:
            checker.add(path, _("missing required key 'type' (one of: {known})",
                                known=", ".join(names())))
            continue
        if not isinstance(type_name, str) or type_name not in CONNECTOR_TYPES:
            checker.add((*path, "type"), str(CONNECTOR_TYPES.unknown(str(type_name))))
            continue
        try:
            schema = schema_for(type_name)
        except Exception as exc:  # noqa: BLE001 - a type that cannot load is a config problem
            checker.add((*path, "type"), str(exc))
            continue
        checker.schema(block, schema, path)
        checker.report.connectors.append((name, type_name))


def operations_of(block: Any) -> list[str]:
    """The operations a connector block declares (a fake also answers its responses)."""
    if not isinstance(block, Mapping):
        return []
    ops = set(block.get("operations") or {})
    if block.get("type") == "fake":
        ops |= set(block.get("responses") or {})
    return sorted(ops)


def operation_problem(connectors: Mapping[str, Any], name: str,
                      operation: str) -> tuple[str, str] | None:
    """What is wrong with calling ``operation`` of connector ``name``, if anything:
    ``("connector", message)`` or ``("operation", message)``, the key to blame.

    Only declared operations are known here; a type that discovers its
    operations (a SOAP WSDL) is checked against them when it loads."""
    if name not in connectors:
        return "connector", _("no connector named '{name}' under connectors:{hint}",
                              name=name, hint=did_you_mean(name, connectors))
    ops = operations_of(connectors[name])
    if ops and operation not in ops:
        return "operation", _("connector '{connector}' has no operation '{op}'{hint}; it has: "
                              "{ops}", connector=name, op=operation,
                              hint=did_you_mean(operation, ops), ops=", ".join(ops))
    return None
