"""Connector types registered by name, imported only when used.

``type: rest`` in YAML is looked up in ``CONNECTOR_TYPES`` (a
``core.registry.Registry``). The types of this package are registered below;
other packages register theirs in their ``parts`` module (the bridge adds
``diode``), third parties with ``register("mytype", "package.module:Class")``
in theirs. Unknown names fail at load time with a "did you mean".

This module also owns the ``connectors:`` config section: each block is
checked against its type's own schema (``schema_for``), and
``call_problems`` says what is wrong with one call of a connector (its name,
its operation, its payload's keys), for the route compiler, the pollers and
the reconciler.

A type that knows more about its endpoint than its block declares (SOAP: the
operations and parameters of its WSDL) contributes its own check with a
classmethod ``config_check(name, block, base_dir)`` returning an object with
any of ``block() -> [CallProblem]`` (paths below the block), ``call(operation,
payload_keys) -> [CallProblem]`` (paths below the call: ``operation``,
``payload.KEY``) and ``notice() -> str | None`` (what ``hub check`` could not
check, or against what), or None. ``base_dir`` is the config's folder. Only a
block of that type loads the type's module, so a config without SOAP never
imports zeep.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

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
# Another bdc-hub (a county's for the province, the province's for a county).
CONNECTOR_TYPES.register("hub", "bdchub.connectors.hub:HubConnector")

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


class CallProblem(NamedTuple):
    """A problem a connector type found in its block or in one call of it: the key
    path below the block or the call, the message, and whether the key itself (a
    payload's parameter name) is what is wrong rather than its value."""

    path: tuple[str | int, ...]
    message: str
    key: bool = False


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
        if isinstance(block, Mapping):
            check_block(checker, name, block, ("connectors", name))


def check_block(checker: Checker, name: str, block: Mapping[str, Any],
                path: tuple[str | int, ...]) -> None:
    """One connector block at ``path`` against its type's schema and own check (the
    ``connectors:`` section's, and a tenant's own connector under ``tenants:``)."""
    type_name = block.get("type")
    if type_name is None:
        checker.add(path, _("missing required key 'type' (one of: {known})",
                            known=", ".join(names())))
        return
    if not isinstance(type_name, str) or type_name not in CONNECTOR_TYPES:
        checker.add((*path, "type"), str(CONNECTOR_TYPES.unknown(str(type_name))))
        return
    try:
        schema = schema_for(type_name)
    except Exception as exc:  # noqa: BLE001 - a type that cannot load is a config problem
        checker.add((*path, "type"), str(exc))
        return
    if checker.schema(block, schema, path):
        check = config_check(name, block, config_folder(checker))
        for problem in getattr(check, "block", lambda: [])():
            checker.add((*path, *problem.path), problem.message, key=problem.key)
    checker.report.connectors.append((name, type_name))


def config_folder(checker: Any) -> Path | None:
    """The folder of the config file being checked (relative WSDL paths, the data
    folder); None for a config that is no file (``check_text``), where relative
    paths resolve against the working directory as the connectors' would."""
    source = getattr(checker, "source", None)
    file = getattr(source, "file", None)
    if file and Path(file).is_file():
        return Path(file).resolve().parent
    return None


def config_check(name: str, block: Any, base_dir: Path | None) -> Any:
    """The type's own check of ``block`` (see the module docstring), or None."""
    if not isinstance(block, Mapping) or not isinstance(block.get("type"), str) \
            or block["type"] not in CONNECTOR_TYPES:
        return None
    try:
        cls = get(block["type"])
    except Exception:  # noqa: BLE001 - a type that cannot load is reported by check_section
        return None
    hook = getattr(cls, "config_check", None)
    return hook(name, block, base_dir) if hook is not None else None


def check_notices(connectors: Any, base_dir: Path | None) -> list[str]:
    """What ``hub check`` says besides problems: calls it could not check, or
    checked against something other than the config (a cached WSDL)."""
    if not isinstance(connectors, Mapping):
        return []
    notices = []
    for name, block in connectors.items():
        check = config_check(name, block, base_dir)
        notice = getattr(check, "notice", lambda: None)()
        if notice:
            notices.append(notice)
    return notices


def operations_of(block: Any) -> list[str]:
    """The operations a connector block declares (a fake also answers its responses)."""
    if not isinstance(block, Mapping):
        return []
    ops = set(block.get("operations") or {})
    if block.get("type") == "fake":
        ops |= set(block.get("responses") or {})
    return sorted(ops)


def call_problems(connectors: Mapping[str, Any], name: str, operation: str,
                  payload_keys: Iterable[str] = (), *,
                  base_dir: Path | None = None) -> list[CallProblem]:
    """What is wrong with calling ``operation`` of connector ``name`` with a payload
    of ``payload_keys`` (the keys of a field mapping; none for a payload that is
    the body or one expression), at paths below the call: ``connector``,
    ``operation``, ``payload.KEY``.

    Declared operations are checked here; a type with a ``config_check`` checks
    its calls itself (a SOAP WSDL's operations and their parameters)."""
    if name not in connectors:
        return [CallProblem(("connector",), _("no connector named '{name}' under connectors:"
                                              "{hint}", name=name,
                                              hint=did_you_mean(name, connectors)))]
    block = connectors[name]
    check = config_check(name, block, base_dir)
    if check is not None and hasattr(check, "call"):
        return list(check.call(operation, list(payload_keys)))
    ops = operations_of(block)
    if ops and operation not in ops:
        return [CallProblem(("operation",), _(
            "connector '{connector}' has no operation '{op}'{hint}; it has: {ops}",
            connector=name, op=operation, hint=did_you_mean(operation, ops),
            ops=", ".join(ops)))]
    return []

