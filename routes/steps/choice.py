"""``choice``: the first ``when`` whose condition holds runs its steps, else
``otherwise``; then the route goes on after the choice. The choice's own hop
comes before its branch's hops."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..body import truthy
from ..language import EXPR, STEPS
from .base import Branch, Compiling, PathT, StepKind


class Choice(StepKind):
    name = "choice"
    in_process = True
    schema = {
        "type": "object", "additionalProperties": False, "required": ["when"],
        "properties": {
            "when": {"type": "array", "minItems": 1, "items": {
                "type": "object", "additionalProperties": False,
                "required": ["condition", "steps"],
                "properties": {"condition": EXPR, "steps": STEPS}}},
            "otherwise": STEPS,
        },
    }

    def branches(self, spec: Any) -> Iterator[tuple[str, PathT, list[Any]]]:
        for i, branch in enumerate(spec.get("when") or []):
            if isinstance(branch, dict) and isinstance(branch.get("steps"), list):
                yield f"when.{i}", ("when", i, "steps"), branch["steps"]
        if isinstance(spec.get("otherwise"), list):
            yield "otherwise", ("otherwise",), spec["otherwise"]

    def compile(self, spec: Any, ctx: Compiling) -> dict[str, Any]:
        return {"when": [ctx.expr(b["condition"], "when", i, "condition")
                         for i, b in enumerate(spec["when"])]}

    def run(self, engine, step, run) -> Branch:  # noqa: ANN001 - see StepKind.run
        data = run.data()
        for i, condition in enumerate(step.compiled["when"]):
            if truthy(condition.search(data)):
                return Branch(step.branches.get(f"when.{i}") or [], f"when {i}")
        return Branch(step.branches.get("otherwise") or [], "otherwise")


KIND = Choice()
