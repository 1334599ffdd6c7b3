"""``wire_tap``: a call whose failure is logged and ignored, or a copy of the
message published under another type. It never fails the route."""

from __future__ import annotations

import logging
from typing import Any

from ..language import CALL, MESSAGE_TYPE
from .base import Compiling, StepKind
from .calling import compile_calls

log = logging.getLogger("bdchub.routes")


class WireTap(StepKind):
    name = "wire_tap"
    schema = {"oneOf": [
        CALL,
        {"type": "object", "additionalProperties": False, "required": ["publish"],
         "properties": {"publish": MESSAGE_TYPE}},
    ]}

    def compile(self, spec: Any, ctx: Compiling) -> dict[str, Any]:
        if "publish" in spec:
            return {"calls": [], "publish": spec["publish"]}
        return compile_calls(spec, ctx)

    def run(self, engine, step, run) -> str:  # noqa: ANN001 - see StepKind.run
        if "publish" in step.compiled:
            run.emit(step.compiled["publish"], run.body, step)
            return step.compiled["publish"]
        try:
            engine.call_connectors(run, step)
        except Exception as exc:  # noqa: BLE001 - a wire tap never fails the route
            log.warning("route %s: wire tap %s failed: %s", run.route.name, step.label, exc)
            return f"tap failed: {type(exc).__name__}"
        return ""


KIND = WireTap()
