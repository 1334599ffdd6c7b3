"""``map``: a new body from ``target: expression`` pairs (dotted targets nest);
with ``merge: true`` the fields are merged into the body instead. Null results
are left out."""

from __future__ import annotations

from typing import Any

from ..body import build
from ..language import MAPPING
from .base import Compiling, StepKind


class Map(StepKind):
    name = "map"
    in_process = True
    schema = {"oneOf": [
        MAPPING,
        {"type": "object", "additionalProperties": False, "required": ["fields"],
         "properties": {"fields": MAPPING, "merge": {"type": "boolean"}}},
    ]}

    def compile(self, spec: Any, ctx: Compiling) -> dict[str, Any]:
        if isinstance(spec.get("fields"), dict):
            return {"fields": ctx.mapping(spec["fields"], "fields"),
                    "merge": bool(spec.get("merge"))}
        return {"fields": ctx.mapping(spec), "merge": False}

    def run(self, engine, step, run) -> str:  # noqa: ANN001 - see StepKind.run
        c = step.compiled
        run.body = build(c["fields"], run.data(), run.body if c["merge"] else None)
        return ""


KIND = Map()
