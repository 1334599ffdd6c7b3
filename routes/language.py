"""The route language: the shape of a route and of each step, as JSON Schema.

A route is a mapping with ``from``, ``steps`` and an optional ``on_error``.
Each step is a one-key mapping whose key is the step kind::

    routes:
      online_application:
        from: application.submitted
        steps:
          - validate: application
          - enrich: {connector: gov, operation: verify_identity, into: checks.identity}
          - to: {connector: legacy, operation: submit_application}
          - publish: application.forwarded

The config loader checks every route against these schemas before anything
starts, recursing into nested step lists (``choice`` branches, ``await``
timeout branches), and checks that every connector and operation named exists.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

EXPR = {"type": "string", "minLength": 1, "description": "a JMESPath expression"}
MESSAGE_TYPE = {"type": "string", "pattern": r"^[a-z][a-z0-9_]*(\.([a-z][a-z0-9_]*|\*|#))+$",
                "description": "dotted message type, e.g. application.submitted"}
TYPE_PATTERN = {"type": "string", "pattern": r"^([a-z][a-z0-9_]*|\*|#)(\.([a-z][a-z0-9_]*|\*|#))*$",
                "description": "message type pattern; * one word, # any words"}
STEPS = {"type": "array", "items": {"type": "object"}, "description": "nested steps"}
DURATION = {"type": "number", "exclusiveMinimum": 0, "description": "seconds"}
MAPPING = {"type": "object", "additionalProperties": EXPR,
           "description": "target field -> JMESPath expression over the message"}

CALL = {
    "type": "object",
    "additionalProperties": False,
    "required": ["connector", "operation"],
    "properties": {
        "connector": {"type": "string", "description": "name under connectors:"},
        "operation": {"type": "string"},
        "payload": {"oneOf": [EXPR, MAPPING],
                    "description": "what to send: an expression or a field mapping; default the body"},
        "into": {"type": "string", "description": "dotted body path where the reply is merged"},
        "timeout": DURATION,
    },
}

RETRY_POLICY = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "attempts": {"type": "integer", "minimum": 1, "maximum": 1000},
        "backoff": {"type": "number", "minimum": 0, "description": "first delay, seconds"},
        "max_backoff": {"type": "number", "minimum": 0},
    },
}

ON_ERROR = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "retry": RETRY_POLICY,
        "park_for": {**DURATION, "description": "after retries, park this long, then try again"},
        "park_max": {"type": "integer", "minimum": 0, "description": "how many parkings before dead letter"},
        "then": {"enum": ["park", "dead_letter", "fallback"]},
        "fallback": {"type": "string", "description": "route to hand the message to"},
    },
}

STEP_SCHEMAS: dict[str, dict[str, Any]] = {
    "validate": {"oneOf": [
        {"type": "string", "description": "canonical schema name"},
        {"type": "object", "additionalProperties": False, "required": ["schema"],
         "properties": {"schema": {"type": "string"}, "path": EXPR}},
    ]},
    "map": {"oneOf": [
        MAPPING,
        {"type": "object", "additionalProperties": False, "required": ["fields"],
         "properties": {"fields": MAPPING, "merge": {"type": "boolean"}}},
    ]},
    "filter": EXPR,
    "choice": {
        "type": "object", "additionalProperties": False, "required": ["when"],
        "properties": {
            "when": {"type": "array", "minItems": 1, "items": {
                "type": "object", "additionalProperties": False,
                "required": ["condition", "steps"],
                "properties": {"condition": EXPR, "steps": STEPS}}},
            "otherwise": STEPS,
        },
    },
    "enrich": {**CALL, "properties": {**CALL["properties"],
                                      "record": {"type": "string",
                                                 "description": "store a verification record of this kind"}}},
    "to": {"oneOf": [
        CALL,
        {"type": "object", "additionalProperties": False, "required": ["recipients"],
         "properties": {"recipients": {"type": "array", "minItems": 1, "items": CALL},
                        "parallel": {"type": "boolean"}}},
    ]},
    "split": {
        "type": "object", "additionalProperties": False, "required": ["items", "publish"],
        "properties": {"items": EXPR, "publish": MESSAGE_TYPE,
                       "business_no": {**EXPR, "description": "JMESPath over the item: each "
                                       "message's own business number; default the parent's"}},
    },
    "await": {
        "type": "object", "additionalProperties": False, "required": ["types", "timeout"],
        "properties": {
            "types": {"type": "array", "minItems": 1, "items": TYPE_PATTERN},
            "correlate_by": {"enum": ["business_no"], "default": "business_no"},
            "mode": {"enum": ["all", "any"], "default": "all",
                     "description": "resume when all the types arrived (default) or the first"},
            "timeout": DURATION,
            "into": {"type": "string", "description": "dotted body path for what arrived; "
                     "default 'awaited'"},
            "on_timeout": STEPS,
        },
    },
    "publish": {"oneOf": [
        MESSAGE_TYPE,
        {"type": "object", "additionalProperties": False, "required": ["type"],
         "properties": {"type": MESSAGE_TYPE, "body": {"oneOf": [EXPR, MAPPING]}}},
    ]},
    "wire_tap": {"oneOf": [
        CALL,
        {"type": "object", "additionalProperties": False, "required": ["publish"],
         "properties": {"publish": MESSAGE_TYPE}},
    ]},
    "throttle": {
        "type": "object", "additionalProperties": False, "required": ["rate"],
        "properties": {"rate": {"type": "number", "exclusiveMinimum": 0,
                                "description": "messages per second"},
                       "burst": {"type": "integer", "minimum": 1}},
    },
    "set": {
        "type": "object", "additionalProperties": False, "minProperties": 1,
        "properties": {"headers": MAPPING, "tenant": EXPR, "business_no": EXPR},
    },
    "require_materials": {
        "type": "object", "additionalProperties": False, "required": ["checklist"],
        "properties": {
            "checklist": {"type": "string", "description": "name under checklists:"},
            "registration_type": {**EXPR, "description": "default: registration_type"},
            "materials": {**EXPR, "description": "default: materials"},
            "publish": {**MESSAGE_TYPE,
                        "description": "type of the correction request; default correction.requested"},
            "deadline_days": {"type": "integer", "minimum": 1, "maximum": 365},
        },
    },
}

ENDPOINT = {
    "type": "object", "additionalProperties": False, "required": ["path"],
    "description": "an inbound HTTP endpoint; with reply: true (the default) the route runs "
                   "in the request and its result is the answer; with reply: false the "
                   "request is queued for the route and answered 202",
    "properties": {
        "method": {"enum": ["GET", "POST", "PUT", "PATCH", "DELETE"], "default": "POST"},
        "path": {"type": "string", "pattern": "^/[A-Za-z0-9_./{}-]*$"},
        "reply": {"type": "boolean", "default": True},
        "type": {**MESSAGE_TYPE, "description": "message type of the request; "
                 "default inbound.<route name>"},
    },
}

ROUTE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["from", "steps"],
    "properties": {
        "description": {"type": "string"},
        "from": {"oneOf": [
            TYPE_PATTERN,
            {"type": "object", "additionalProperties": False, "required": ["types"],
             "properties": {"types": {"type": "array", "minItems": 1, "items": TYPE_PATTERN}}},
            {"type": "object", "additionalProperties": False, "required": ["endpoint"],
             "properties": {"endpoint": ENDPOINT}},
        ]},
        "concurrency": {"type": "integer", "minimum": 1, "maximum": 256},
        "enabled": {"type": "boolean"},
        "steps": {"type": "array", "minItems": 1, "items": {"type": "object"}},
        "on_error": ON_ERROR,
    },
}


def nested_steps(kind: str, spec: Any) -> Iterator[tuple[tuple[str | int, ...], list]]:
    """Nested step lists of one step, with their path below the step."""
    if kind == "choice" and isinstance(spec, dict):
        for i, branch in enumerate(spec.get("when") or []):
            if isinstance(branch, dict) and isinstance(branch.get("steps"), list):
                yield ("when", i, "steps"), branch["steps"]
        if isinstance(spec.get("otherwise"), list):
            yield ("otherwise",), spec["otherwise"]
    if kind == "await" and isinstance(spec, dict) and isinstance(spec.get("on_timeout"), list):
        yield ("on_timeout",), spec["on_timeout"]


def connector_calls(kind: str, spec: Any) -> Iterator[tuple[tuple[str | int, ...], dict]]:
    """Every connector call a step makes, with its path below the step."""
    if kind in ("enrich", "to", "wire_tap") and isinstance(spec, dict):
        if "connector" in spec:
            yield (), spec
        for i, call in enumerate(spec.get("recipients") or []):
            if isinstance(call, dict):
                yield ("recipients", i), call


# -- the routes: and checklists: sections -----------------------------------------

SECTION_SCHEMA: dict[str, Any] = {"type": "object", "additionalProperties": {"type": "object"}}

CHECKLISTS_SCHEMA: dict[str, Any] = {
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
}


def check_section(checker: Any, routes: Any) -> None:
    """Every route against the route language, and what it names against the
    rest of the config (``core.config.Section.check``)."""
    from bdchub.connectors.registry import operation_problem
    from bdchub.core.i18n import _
    from bdchub.core.suggest import did_you_mean

    if not isinstance(routes, dict):
        return
    config = checker.config
    connectors = config.get("connectors") if isinstance(config.get("connectors"), dict) else {}

    def call(spec: dict, path: tuple) -> None:
        problem = operation_problem(connectors, spec["connector"], str(spec["operation"]))
        if problem is not None:
            checker.add((*path, problem[0]), problem[1])

    def steps(items: list, path: tuple) -> int:
        count = 0
        for i, step in enumerate(items):
            here = (*path, i)
            if not isinstance(step, dict) or len(step) != 1:
                checker.add(here, _("each step is one mapping with a single key, the step kind "
                                    "(one of: {kinds})", kinds=", ".join(STEP_SCHEMAS)))
                continue
            (kind, spec), = step.items()
            if kind not in STEP_SCHEMAS:
                checker.add((*here, kind), _("unknown step '{kind}'{hint}; steps are: {kinds}",
                                             kind=kind, hint=did_you_mean(kind, STEP_SCHEMAS),
                                             kinds=", ".join(STEP_SCHEMAS)), key=True)
                continue
            count += 1
            if not checker.schema(spec, STEP_SCHEMAS[kind], (*here, kind)):
                continue
            for sub, c in connector_calls(kind, spec):
                call(c, (*here, kind, *sub))
            if kind == "validate":
                name = spec if isinstance(spec, str) else spec["schema"]
                from bdchub.schemas import catalog

                known = catalog.names()
                if name not in known:
                    checker.add((*here, kind) if isinstance(spec, str) else (*here, kind, "schema"),
                                _("no canonical schema named '{name}'{hint}", name=name,
                                  hint=did_you_mean(name, known)))
            if kind == "require_materials":
                lists = config.get("checklists") or {}
                if spec["checklist"] not in lists:
                    checker.add((*here, kind, "checklist"),
                                _("no checklist named '{name}' under checklists:{hint}",
                                  name=spec["checklist"], hint=did_you_mean(spec["checklist"], lists)))
            for sub, nested in nested_steps(kind, spec):
                count += steps(nested, (*here, kind, *sub))
        return count

    for name, route in routes.items():
        if not isinstance(route, dict):
            continue
        path = ("routes", name)
        checker.schema(route, ROUTE_SCHEMA, path)
        items = route.get("steps")
        count = steps(items, (*path, "steps")) if isinstance(items, list) else 0
        on_error = route.get("on_error")
        fallback = on_error.get("fallback") if isinstance(on_error, dict) else None
        if fallback is not None and fallback not in routes:
            checker.add((*path, "on_error", "fallback"),
                        _("no route named '{name}'{hint}", name=fallback,
                          hint=did_you_mean(fallback, routes)))
        checker.report.routes.append((name, count))
