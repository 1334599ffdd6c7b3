"""Load and check a hub configuration (config.yaml) before anything starts.

The whole file is checked in one pass and every problem is reported, each as
``file:line:column: key.path: what is wrong (did you mean …?)``:

1. YAML syntax, duplicate keys and ``${VAR}`` substitution (core.yamlsource);
2. the top-level shape (``TOP_SCHEMA``);
3. each connector block against its type's own schema (connectors.registry);
4. each route against the route language, step by step, recursing into
   nested steps (routes.language);
5. cross references: connectors and operations named by routes, canonical
   schemas named by ``validate`` steps, checklists, fallback routes.

``load(path)`` returns the plain, validated dict; ``check(path)`` returns a
``CheckReport`` for ``hub check``.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError, best_match

from .errors import ConfigError, HubError
from .i18n import _
from .yamlsource import Path_, Source, dotted, load_yaml, parse_yaml

DEFAULT_PATH = "config.yaml"

TENANT = {"type": "string", "pattern": r"^\d{6}$",
          "description": "the county's 6-digit GB/T 2260 division code"}

_EXPR = {"type": "string", "minLength": 1, "description": "a JMESPath expression"}

POLLER: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["connector", "operation", "items", "publish"],
    "properties": {
        "description": {"type": "string"},
        "enabled": {"type": "boolean"},
        "connector": {"type": "string", "description": "name under connectors:"},
        "operation": {"type": "string"},
        "every": {"type": "number", "exclusiveMinimum": 0,
                  "description": "seconds between polls when nothing more is waiting"},
        "payload": {"type": "object", "description": "fixed parameters of every call"},
        "cursor": {
            "type": "object", "additionalProperties": False, "required": ["param", "next"],
            "description": "where the cursor goes into the call and comes back in the reply",
            "properties": {"param": {"type": "string"}, "next": _EXPR, "more": _EXPR,
                           "start": {"type": "string"}},
        },
        "items": {**_EXPR, "description": "the list of items in the reply"},
        "key": {**_EXPR, "description": "what identifies an item (message ids derive from it)"},
        "business_no": {**_EXPR, "description": "an item's business number"},
        "publish": {"type": "string", "pattern": r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$",
                    "description": "message type each item is published as"},
    },
}

BRIDGE: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": "the receiving side of the bridge, watched by hub run",
    "properties": {
        "diode_inbox": {
            "type": "object", "additionalProperties": False, "required": ["path"],
            "description": "publish what the diode receiver delivers into this inbox",
            "properties": {
                "path": {"type": "string", "minLength": 1,
                         "description": "the receiver's --inbox (relative to this file)"},
                "poll_interval": {"type": "number", "exclusiveMinimum": 0,
                                  "description": "seconds between looks at the inbox"},
                "keep_processed": {"type": "boolean",
                                   "description": "keep published objects under .processed/"},
                "enabled": {"type": "boolean"},
            },
        },
    },
}

TOP_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["tenant", "connectors", "routes"],
    "properties": {
        "tenant": TENANT,
        "name": {"type": "string", "description": "the registration centre's name"},
        "level": {"enum": ["county", "city", "province", "national"]},
        "lang": {"enum": ["zh_CN", "en"]},
        "broker": {
            "type": "object", "additionalProperties": False, "required": ["url"],
            "properties": {
                "url": {"type": "string", "minLength": 1,
                        "description": "amqp://… (RabbitMQ) or sqla+sqlite:///… (embedded)"},
                "prefetch": {"type": "integer", "minimum": 1, "maximum": 10000},
                "queue_type": {"enum": ["classic", "quorum"]},
                "exchange": {"type": "string", "minLength": 1},
                "prefix": {"type": "string", "pattern": r"^[A-Za-z0-9_.-]+$",
                           "description": "prefix of queue and exchange names (default bdchub)"},
                "visibility_timeout": {"type": "number", "exclusiveMinimum": 0,
                                       "description": "seconds an unacknowledged message of the "
                                                      "embedded broker stays leased"},
            },
        },
        "store": {
            "type": "object", "additionalProperties": False, "required": ["url"],
            "properties": {
                "url": {"type": "string", "minLength": 1,
                        "description": "sqlite:///… (embedded) or postgresql://…"},
                "pool_size": {"type": "integer", "minimum": 1},
                "key_file": {"type": "string", "minLength": 1,
                             "description": "file with the 32-hex-digit SM4 key that seals "
                                            "personal data in the store (core.sealing); "
                                            "BDCHUB_DATA_KEY overrides it"},
            },
        },
        "metrics": {
            "type": "object", "additionalProperties": False,
            "properties": {"listen": {"type": "string"}, "enabled": {"type": "boolean"}},
        },
        "masking": {
            "type": "object", "additionalProperties": False,
            "properties": {
                "name_keep_first": {"type": "integer", "minimum": 0},
                "id_keep_first": {"type": "integer", "minimum": 0},
                "id_keep_last": {"type": "integer", "minimum": 0},
                "phone_keep_first": {"type": "integer", "minimum": 0},
                "phone_keep_last": {"type": "integer", "minimum": 0},
            },
        },
        "inbound": {"type": "object"},
        "pollers": {"type": "object", "additionalProperties": POLLER,
                    "propertyNames": {"pattern": r"^[A-Za-z0-9_.-]+$"},
                    "description": "inbound by polling a connector (departments that cannot push)"},
        "bridge": BRIDGE,
        "connectors": {"type": "object", "additionalProperties": {"type": "object"}},
        "checklists": {
            "type": "object",
            "description": "materials required per registration type, for require_materials",
            "additionalProperties": {
                "type": "object",
                "propertyNames": {"pattern": r"^(\d{3}|default)$"},
                "additionalProperties": {"type": "array", "items": {
                    "type": "object", "additionalProperties": False, "required": ["name"],
                    "properties": {"name": {"type": "string"}, "type": {"type": "string"},
                                   "optional": {"type": "boolean"}}}},
            },
        },
        "routes": {"type": "object", "additionalProperties": {"type": "object"}},
    },
}

_TYPE_NAMES = {"object": "a mapping", "array": "a list", "string": "text", "integer": "a whole number",
               "number": "a number", "boolean": "true or false", "null": "nothing"}


def _suggest(word: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(word), list(candidates), n=1, cutoff=0.6)
    return _(" (did you mean '{name}'?)", name=close[0]) if close else ""


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if value is None:
        return "null"
    return "string"


@dataclass
class Problem:
    path: Path_
    message: str
    key: bool = False  # point at the key rather than the value


@dataclass
class CheckReport:
    file: str
    config: dict[str, Any]
    connectors: list[tuple[str, str]] = field(default_factory=list)  # (name, type)
    routes: list[tuple[str, int]] = field(default_factory=list)      # (name, steps)


class _Checker:
    def __init__(self, source: Source):
        self.source = source
        self.data = source.data
        self.problems: list[Problem] = []

    def add(self, path: Path_, message: str, key: bool = False) -> None:
        self.problems.append(Problem(tuple(path), message, key))

    # -- JSON Schema errors into sentences ---------------------------------
    def schema(self, instance: Any, schema: dict, base: Path_) -> None:
        validator = jsonschema.Draft202012Validator(schema)
        for error in sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.path))):
            self.explain(error, base)

    def explain(self, error: ValidationError, base: Path_) -> None:
        path = (*base, *error.absolute_path)
        kw, value, spec = error.validator, error.instance, error.validator_value
        if kw in ("oneOf", "anyOf") and error.context:
            # Prefer the branch whose type matches what the user wrote.
            same_kind = [e for e in error.context
                         if e.validator != "type" and not any(
                             c.validator == "type" and c.relative_path == e.relative_path
                             for c in error.context if c.schema_path[0] == e.schema_path[0])]
            pick = best_match(same_kind or error.context)
            if pick is not None and pick is not error:
                return self.explain(pick, base)
        if kw == "additionalProperties" and isinstance(value, dict):
            known = list(error.schema.get("properties", {}))
            for extra in sorted(set(value) - set(known)):
                if error.schema.get("patternProperties"):
                    continue
                self.add((*path, extra), _("unknown key '{key}'{hint}; allowed keys: {known}",
                                           key=extra, hint=_suggest(extra, known),
                                           known=", ".join(known) or "-"), key=True)
            return None
        if kw == "required":
            missing = [k for k in spec if isinstance(value, dict) and k not in value]
            for name in missing:
                self.add(path, _("missing required key '{key}'", key=name))
            return None
        if kw == "type":
            want = spec if isinstance(spec, list) else [spec]
            self.add(path, _("expected {expected}, found {found} {value!r}",
                             expected=_(" or ").join(_(_TYPE_NAMES.get(w, w)) for w in want),
                             found=_(_TYPE_NAMES.get(_kind(value), _kind(value))), value=value))
            return None
        if kw == "enum":
            self.add(path, _("'{value}' is not one of: {allowed}{hint}", value=value,
                             allowed=", ".join(map(str, spec)),
                             hint=_suggest(str(value), map(str, spec))))
            return None
        if kw == "pattern":
            desc = error.schema.get("description", "")
            self.add(path, _("'{value}' does not have the expected form{desc}",
                             value=value, desc=(" (" + desc + ")") if desc else ""))
            return None
        if kw == "propertyNames":
            self.add(path, _("key '{key}' is not allowed here: {error}",
                             key=value, error=error.message), key=True)
            return None
        # The remaining keywords read the same in config and in messages.
        from bdchub.schemas.catalog import explain

        self.add(path, explain(error))
        return None

    # -- the whole file ----------------------------------------------------
    def run(self) -> CheckReport:
        data = self.data
        if not isinstance(data, dict):
            self.add((), _("the config must be a mapping with tenant, connectors and routes"))
            return CheckReport(self.source.file, {})
        self.schema(data, TOP_SCHEMA, ())
        self.tenant(data.get("tenant"))
        report = CheckReport(self.source.file, data)
        connectors = data.get("connectors") if isinstance(data.get("connectors"), dict) else {}
        for name, block in connectors.items():
            if isinstance(block, dict):
                self.connector(name, block, report)
        self.inbound(data.get("inbound"))
        pollers = data.get("pollers") if isinstance(data.get("pollers"), dict) else {}
        for name, poller in pollers.items():
            if isinstance(poller, dict) and isinstance(poller.get("connector"), str):
                self.call({"connector": poller["connector"],
                           "operation": str(poller.get("operation"))},
                          ("pollers", name), connectors)
        routes = data.get("routes") if isinstance(data.get("routes"), dict) else {}
        for name, route in routes.items():
            if isinstance(route, dict):
                self.route(name, route, connectors, report)
        return report

    def tenant(self, code: Any) -> None:
        if not isinstance(code, str) or len(code) != 6 or not code.isdigit():
            return  # the schema has already said what is wrong
        from bdchub.schemas import divisions

        if divisions.lookup(code) is None:
            self.add(("tenant",), _("'{code}' is not a GB/T 2260 division code in the shipped "
                                    "snapshot ({snapshot})", code=code, snapshot=divisions.SNAPSHOT))

    def connector(self, name: str, block: dict, report: CheckReport) -> None:
        from bdchub.connectors import registry

        path = ("connectors", name)
        type_name = block.get("type")
        if type_name is None:
            self.add(path, _("missing required key 'type' (one of: {known})",
                             known=", ".join(registry.names())))
            return
        if not isinstance(type_name, str) or type_name not in registry.names():
            self.add((*path, "type"), _("unknown connector type '{type}'{hint}; known types: {known}",
                                        type=type_name, hint=_suggest(str(type_name), registry.names()),
                                        known=", ".join(registry.names())))
            return
        try:
            schema = registry.schema_for(type_name)
        except HubError as exc:
            self.add((*path, "type"), str(exc))
            return
        self.schema(block, schema, path)
        report.connectors.append((name, type_name))

    def inbound(self, block: Any) -> None:
        if block is None:
            return
        try:
            from bdchub.web.config_schema import INBOUND_SCHEMA
        except ImportError:
            return
        self.schema(block, INBOUND_SCHEMA, ("inbound",))

    def route(self, name: str, route: dict, connectors: Mapping[str, Any],
              report: CheckReport) -> None:
        from bdchub.routes.language import ROUTE_SCHEMA

        path = ("routes", name)
        self.schema(route, ROUTE_SCHEMA, path)
        steps = route.get("steps")
        count = self.steps(steps, (*path, "steps"), connectors) if isinstance(steps, list) else 0
        fallback = (route.get("on_error") or {}).get("fallback") if isinstance(route.get("on_error"), dict) else None
        routes = self.data.get("routes") or {}
        if fallback is not None and fallback not in routes:
            self.add((*path, "on_error", "fallback"),
                     _("no route named '{name}'{hint}", name=fallback, hint=_suggest(fallback, routes)))
        report.routes.append((name, count))

    def steps(self, steps: list, path: Path_, connectors: Mapping[str, Any]) -> int:
        from bdchub.routes.language import STEP_SCHEMAS, connector_calls, nested_steps

        count = 0
        for i, step in enumerate(steps):
            here = (*path, i)
            if not isinstance(step, dict) or len(step) != 1:
                self.add(here, _("each step is one mapping with a single key, the step kind "
                                 "(one of: {kinds})", kinds=", ".join(STEP_SCHEMAS)))
                continue
            (kind, spec), = step.items()
            if kind not in STEP_SCHEMAS:
                self.add((*here, kind), _("unknown step '{kind}'{hint}; steps are: {kinds}",
                                          kind=kind, hint=_suggest(kind, STEP_SCHEMAS),
                                          kinds=", ".join(STEP_SCHEMAS)), key=True)
                continue
            count += 1
            before = len(self.problems)
            self.schema(spec, STEP_SCHEMAS[kind], (*here, kind))
            if len(self.problems) > before:
                continue
            for sub, call in connector_calls(kind, spec):
                self.call(call, (*here, kind, *sub), connectors)
            if kind == "validate":
                self.schema_name(spec if isinstance(spec, str) else spec["schema"],
                                 (*here, kind) if isinstance(spec, str) else (*here, kind, "schema"))
            if kind == "require_materials":
                lists = self.data.get("checklists") or {}
                if spec["checklist"] not in lists:
                    self.add((*here, kind, "checklist"),
                             _("no checklist named '{name}' under checklists:{hint}",
                               name=spec["checklist"], hint=_suggest(spec["checklist"], lists)))
            for sub, nested in nested_steps(kind, spec):
                count += self.steps(nested, (*here, kind, *sub), connectors)
        return count

    def call(self, call: dict, path: Path_, connectors: Mapping[str, Any]) -> None:
        name = call["connector"]
        if name not in connectors:
            self.add((*path, "connector"),
                     _("no connector named '{name}' under connectors:{hint}",
                       name=name, hint=_suggest(name, connectors)))
            return
        block = connectors[name]
        ops = sorted((block.get("operations") or {}) if isinstance(block, dict) else {})
        if isinstance(block, dict) and block.get("type") == "fake":
            ops = sorted(set(ops) | set(block.get("responses") or {}))
        if ops and call["operation"] not in ops:
            self.add((*path, "operation"),
                     _("connector '{connector}' has no operation '{op}'{hint}; it has: {ops}",
                       connector=name, op=call["operation"],
                       hint=_suggest(call["operation"], ops), ops=", ".join(ops)))

    def schema_name(self, name: str, path: Path_) -> None:
        try:
            from bdchub.schemas import catalog
        except ImportError:
            return
        known = catalog.names()
        if name not in known:
            self.add(path, _("no canonical schema named '{name}'{hint}", name=name,
                             hint=_suggest(name, known)))

    def format(self) -> list[str]:
        lines = []
        for p in self.problems:
            loc = self.source.where(p.path, key=p.key)
            lines.append(f"{loc}: {dotted(p.path)}: {p.message}")
        return sorted(dict.fromkeys(lines), key=_line_order)


def _line_order(line: str) -> tuple[int, int, str]:
    parts = line.split(":", 3)
    try:
        return int(parts[1]), int(parts[2]), line
    except (IndexError, ValueError):
        return 0, 0, line


def check_source(source: Source) -> CheckReport:
    checker = _Checker(source)
    report = checker.run()
    if checker.problems:
        raise ConfigError(checker.format())
    return report


def check(path: str | os.PathLike[str] = DEFAULT_PATH,
          environ: Mapping[str, str] | None = None) -> CheckReport:
    """Check a config file completely; raise ConfigError listing every problem."""
    return check_source(load_yaml(path, environ))


def check_text(text: str, file: str = "<string>",
               environ: Mapping[str, str] | None = None) -> CheckReport:
    return check_source(parse_yaml(text, file, environ))


def load(path: str | os.PathLike[str] = DEFAULT_PATH,
         environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The validated config as a plain dict, with ``__file__`` and ``__dir__`` added
    so relative paths (WSDL files, data folders) resolve against the config's folder."""
    report = check(path, environ)
    config = dict(report.config)
    config["__file__"] = str(Path(path).resolve())
    config["__dir__"] = str(Path(path).resolve().parent)
    return config
