"""``enrich``: call a connector (payload: the body, an expression or a field
mapping) and merge the reply into the body: at ``into``, or at the top when the
reply is an object. ``record: KIND`` also stores the reply as a verification
record of the application (guide §四(一)3: keep each check's result)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bdchub.core.store import dumps

from ..body import with_path
from ..language import CALL
from .base import Compiling, StepKind
from .calling import compile_calls


class Enrich(StepKind):
    name = "enrich"
    schema = {**CALL, "properties": {
        **CALL["properties"],
        "record": {"type": "string", "description": "store a verification record of this kind"}}}

    def compile(self, spec: Any, ctx: Compiling) -> dict[str, Any]:
        return {**compile_calls(spec, ctx), "record": spec.get("record")}

    def run(self, engine, step, run) -> str:  # noqa: ANN001 - see StepKind.run
        replies = engine.call_connectors(run, step)
        for call, reply in zip(step.compiled["calls"], replies, strict=True):
            if call.into:
                run.body = with_path(run.body, call.into, reply)
            elif isinstance(reply, Mapping):
                run.body = {**run.body, **reply}
            elif reply is not None:
                run.body = with_path(run.body, call.operation, reply)
            if step.compiled["record"]:
                run.records.append({"kind": step.compiled["record"], "connector": call.connector,
                                    "operation": call.operation, "result": dumps(reply)})
        return ""


KIND = Enrich()
