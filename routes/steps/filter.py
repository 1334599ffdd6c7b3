"""``filter``: a false, null or empty result ends the route (outcome
``filtered``: the message is done, not failed)."""

from __future__ import annotations

from typing import Any

from ..body import truthy
from ..language import EXPR
from .base import Compiling, StepKind, Stop


class Filter(StepKind):
    name = "filter"
    in_process = True
    schema = EXPR

    def compile(self, spec: Any, ctx: Compiling) -> dict[str, Any]:
        return {"expr": ctx.expr(spec)}

    def run(self, engine, step, run) -> str:  # noqa: ANN001 - see StepKind.run
        if not truthy(step.compiled["expr"].search(run.data())):
            raise Stop("filtered", "filtered out")
        return ""


KIND = Filter()
