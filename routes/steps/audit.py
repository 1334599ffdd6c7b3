"""``audit``: one record in the hub's audit log for what the route decided.

::

    - audit:
        event: application.refused
        fields: {reason: "'classified_material'", materials: "materials[?classified].name"}

A refusal the route makes itself (a notice, not an answer at the door) is kept
in the same log as the inbound refusals (``inbound.rejected``), so what was
refused and why is read in one place (BRIEF §9, supervision: logs of
exceptions, queryable and kept). Each record also names the route, the message
and its type, tenant and business number. Fields go through the hub's masking
block first, so a name or an ID number picked by mistake is kept masked. The
record is written when the step runs: a run retried after a later failure
writes it again, which a log of what happened may show.
"""

from __future__ import annotations

import re
from typing import Any

from bdchub.core.i18n import _

from ..language import MAPPING
from .base import Compiling, StepKind

EVENT = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")


class Audit(StepKind):
    name = "audit"
    schema = {
        "type": "object", "additionalProperties": False, "required": ["event"],
        "properties": {
            "event": {"type": "string", "pattern": EVENT.pattern,
                      "description": "the record's event name, dotted (application.refused)"},
            "fields": MAPPING,
        },
    }

    def compile(self, spec: Any, ctx: Compiling) -> dict[str, Any]:
        return {"event": spec["event"], "fields": ctx.mapping(spec.get("fields") or {},
                                                               "fields")}

    def run(self, engine, step, run) -> str:  # noqa: ANN001 - see StepKind.run
        data = run.data()
        fields: dict[str, Any] = {name: expr.search(data)
                                  for name, expr in step.compiled["fields"].items()}
        fields = engine.masking(fields)
        fields.update(route=run.route.name, message_id=run.received.id, type=run.type,
                      tenant=run.tenant, business_no=run.business_no)
        engine.audit(step.compiled["event"], **fields)
        return _("audited {event}", event=step.compiled["event"])


KIND = Audit()
