"""``throttle``: at most ``rate`` messages a second through this step, per
worker process (the connectors' token bucket; ``burst`` default
``max(1, rate)``). A message over the rate waits its turn; it is never
refused."""

from __future__ import annotations

import math
from typing import Any

from bdchub.connectors.resilience import TokenBucket

from .base import Compiling, StepKind


class Throttle(StepKind):
    name = "throttle"
    schema = {
        "type": "object", "additionalProperties": False, "required": ["rate"],
        "properties": {"rate": {"type": "number", "exclusiveMinimum": 0,
                                "description": "messages per second"},
                       "burst": {"type": "integer", "minimum": 1}},
    }

    def compile(self, spec: Any, ctx: Compiling) -> dict[str, Any]:
        rate = float(spec["rate"])
        return {"bucket": TokenBucket(rate, int(spec.get("burst") or max(1, int(rate))),
                                      sleep=ctx.sleep)}

    def run(self, engine, step, run) -> str:  # noqa: ANN001 - see StepKind.run
        waited = step.compiled["bucket"].acquire(math.inf)
        return f"waited {waited * 1000:.0f} ms" if waited else ""


KIND = Throttle()
