"""The route language: the shape of a route, and the vocabulary its steps share.

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

Each step kind's own schema lives with the kind (``routes.steps``); the
route compiler (``routes.compiler``) checks a route against ``ROUTE_SCHEMA``
and each step against its kind's schema, recursing into nested step lists
(``choice`` branches, ``await`` timeout branches), and checks that every
connector and operation named exists.
"""

from __future__ import annotations

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

