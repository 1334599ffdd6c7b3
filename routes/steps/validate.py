"""``validate``: the body (or ``path`` of it) against a canonical schema.

Violations fail the step with a ``MessageError`` carrying every violation; the
message is dead-lettered with reason ``schema``.
"""

from __future__ import annotations

from typing import Any

from bdchub.core.errors import MessageError
from bdchub.core.i18n import _
from bdchub.core.suggest import did_you_mean

from ..language import EXPR
from .base import Compiling, StepKind


class Validate(StepKind):
    name = "validate"
    in_process = True
    schema = {"oneOf": [
        {"type": "string", "description": "canonical schema name"},
        {"type": "object", "additionalProperties": False, "required": ["schema"],
         "properties": {"schema": {"type": "string"}, "path": EXPR}},
    ]}

    def compile(self, spec: Any, ctx: Compiling) -> dict[str, Any]:
        named = spec if isinstance(spec, str) else spec["schema"]
        from bdchub.schemas import catalog

        known = catalog.names()
        if named not in known:
            ctx.problem(_("no canonical schema named '{name}'{hint}", name=named,
                          hint=did_you_mean(named, known)),
                        *(() if isinstance(spec, str) else ("schema",)))
        path = spec.get("path") if isinstance(spec, dict) else None
        return {"schema": named, "path": ctx.expr(path, "path") if path else None}

    def run(self, engine, step, run) -> str:  # noqa: ANN001 - see StepKind.run
        c = step.compiled
        target = c["path"].search(run.data()) if c["path"] is not None else run.body
        violations = engine.validator(c["schema"], target)
        if violations:
            first = violations[0]
            raise MessageError(
                _("message does not match schema '{name}': {first}", name=c["schema"],
                  first=str(first))
                + ("" if len(violations) == 1 else _(" (and {n} more)", n=len(violations) - 1)),
                [(getattr(v, "path", ""), getattr(v, "message", str(v))) for v in violations])
        return ""


KIND = Validate()
