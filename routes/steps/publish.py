"""``publish``: emit a message of another type, same tenant and business
number. Its body is the current body, an expression's value (an object, or
``{"value": …}``) or a field mapping."""

from __future__ import annotations

from typing import Any

from ..body import evaluate
from ..language import EXPR, MAPPING, MESSAGE_TYPE
from .base import Compiling, StepKind


class Publish(StepKind):
    name = "publish"
    in_process = True
    schema = {"oneOf": [
        MESSAGE_TYPE,
        {"type": "object", "additionalProperties": False, "required": ["type"],
         "properties": {"type": MESSAGE_TYPE, "body": {"oneOf": [EXPR, MAPPING]}}},
    ]}

    def compile(self, spec: Any, ctx: Compiling) -> dict[str, Any]:
        if isinstance(spec, str):
            return {"type": spec, "body": None}
        body = spec.get("body")
        if isinstance(body, str):
            body = ctx.expr(body, "body")
        elif isinstance(body, dict):
            body = ctx.mapping(body, "body")
        return {"type": spec["type"], "body": body}

    def run(self, engine, step, run) -> str:  # noqa: ANN001 - see StepKind.run
        c = step.compiled
        body = evaluate(c["body"], run.data(), run.body)
        env = run.emit(c["type"], body if isinstance(body, dict) else {"value": body}, step)
        return env.type


KIND = Publish()
