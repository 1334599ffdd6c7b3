"""``to``: call a connector, or several ``recipients``; the reply is kept only
with ``into``. With ``parallel: true`` the recipients are called at once; the
step fails if any fails, and the ones that succeeded are safe to repeat thanks
to their idempotency keys (``…:{step}#{i}``)."""

from __future__ import annotations

from typing import Any

from ..body import with_path
from ..language import CALL
from .base import Compiling, StepKind
from .calling import RECIPIENTS, compile_calls


class To(StepKind):
    name = "to"
    schema = {"oneOf": [CALL, RECIPIENTS]}

    def compile(self, spec: Any, ctx: Compiling) -> dict[str, Any]:
        return compile_calls(spec, ctx)

    def run(self, engine, step, run) -> str:  # noqa: ANN001 - see StepKind.run
        replies = engine.call_connectors(run, step)
        for call, reply in zip(step.compiled["calls"], replies, strict=True):
            if call.into:
                run.body = with_path(run.body, call.into, reply)
        return ""


KIND = To()
