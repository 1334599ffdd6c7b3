"""``await``: wait for messages of ``types`` with the same tenant and business
number (all of them, or with ``mode: any`` the first), for at most ``timeout``
seconds.

The run ends here with outcome ``awaiting``: the message is acknowledged and
the correlation (what is awaited, and the message as it is now) stored with
the run's other results. ``routes.correlation`` resumes it after this step with
what arrived at ``into`` (default ``awaited``: the body of the one type, or
``{type: body}`` for several) — even if it arrived before the await started —
or, at the deadline, runs the ``on_timeout`` steps instead and ends there.
Routes that answer an endpoint in the request cannot await.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from bdchub.core.errors import RouteError
from bdchub.core.i18n import _
from bdchub.core.ids import derive_id

from ..language import DURATION, STEPS, TYPE_PATTERN
from .base import Compiling, PathT, StepKind, Stop


class Await(StepKind):
    name = "await"
    sync_ok = False
    schema = {
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
    }

    def branches(self, spec: Any) -> Iterator[tuple[str, PathT, list[Any]]]:
        if isinstance(spec.get("on_timeout"), list):
            yield "on_timeout", ("on_timeout",), spec["on_timeout"]

    def awaited_types(self, spec: Any) -> tuple[str, ...]:
        return tuple(spec["types"])

    def compile(self, spec: Any, ctx: Compiling) -> dict[str, Any]:
        return {"into": spec.get("into") or "awaited", "mode": spec.get("mode") or "all"}

    def run(self, engine, step, run) -> str:  # noqa: ANN001 - see StepKind.run
        if not run.business_no:
            raise RouteError(_("await needs a business number to correlate by"),
                             route=run.route.name, step=step.label)
        corr_id = derive_id(run.received.id, run.route.name, step.id, "await")
        env = run.state(id=derive_id(corr_id, "state"), headers={})
        run.correlation = {
            "id": corr_id, "tenant": run.tenant, "business_no": run.business_no,
            "route": run.route.name, "step": step.id, "types": json.dumps(list(step.spec["types"])),
            "mode": step.compiled["mode"], "into": step.compiled["into"],
            "deadline": run.clock() + float(step.spec["timeout"]),
            "envelope": env.to_json().decode()}
        raise Stop("awaiting", "awaiting " + ", ".join(step.spec["types"]))


KIND = Await()
