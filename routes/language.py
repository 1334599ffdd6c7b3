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
