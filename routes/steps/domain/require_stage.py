"""``require_stage``: is the case in a stage the message presupposes?

An event says something happened to a case: a refusal notice, an entry in the
register, a stage reached. Each presupposes where the case stands (nothing is
refused once it is in the register; an entry in the register follows review),
so one that does not fit is forged or out of order, and acting on it would
tell the windows a falsehood or wake a route waiting for the real one::

    - require_stage: {in: [application, acceptance, review, registration, certificate, archive]}
    - require_stage: {not_in: [registration, certificate, archive], else: dead_letter}

The case's stage is what the store's progress row says, ``new`` while it has
none. Progress rows follow messages as the routes finish them, so a stage may
read one step behind or ahead of the event: list every stage the event fits
with, not only the one just before it.

When the stage does not fit, ``else`` decides: ``skip`` (the default) ends the
run with outcome ``out_of_stage``, the hop saying which stage the case was at;
``dead_letter`` dead-letters the message (reason ``invalid``) for an operator
to look at; ``wait`` treats it as early rather than wrong (a department's
answer that overtook the registration system's first report of the case): the
route's ``on_error`` retries and parks it until the case reaches a stage it
fits, and dead-letters it once the parking runs out. Either way the message
moves nothing of the case's progress until it fits.
"""

from __future__ import annotations

from typing import Any

from bdchub.core.errors import MessageError, RecoverableError, StoreError
from bdchub.core.i18n import _
from bdchub.schemas import catalog

from ..base import Compiling, StepKind, Stop

#: What the progress row says before any stage was recorded for the case.
NEW = "new"
STAGES = [NEW, *catalog.load("common")["$defs"]["stage"]["enum"]]

_LIST = {"type": "array", "minItems": 1, "uniqueItems": True, "items": {"enum": STAGES}}


class RequireStage(StepKind):
    name = "require_stage"
    schema = {
        "type": "object", "additionalProperties": False,
        "oneOf": [{"required": ["in"]}, {"required": ["not_in"]}],
        "properties": {
            "in": {**_LIST, "description": "the stages the message fits with"},
            "not_in": {**_LIST, "description": "the stages it does not fit with"},
            "else": {"enum": ["skip", "dead_letter", "wait"], "default": "skip",
                     "description": "what becomes of a message that does not fit"},
        },
    }

    def compile(self, spec: Any, ctx: Compiling) -> dict[str, Any]:
        return {"in": frozenset(spec["in"]) if "in" in spec else None,
                "not_in": frozenset(spec.get("not_in") or ()),
                "else": spec.get("else") or "skip"}

    def run(self, engine, step, run) -> str:  # noqa: ANN001 - see StepKind.run
        c = step.compiled
        try:
            row = engine.store.progress(run.tenant, run.business_no) if run.business_no else None
        except StoreError as exc:  # the store comes back; the message waits for it
            raise RecoverableError(str(exc)) from exc
        stage = str((row or {}).get("stage") or NEW)
        if stage in c["in"] if c["in"] is not None else stage not in c["not_in"]:
            return stage
        run.discredited = stage
        if c["else"] == "wait":
            raise RecoverableError(_("{type} came before case {business_no} reached a stage it "
                                     "fits (it is at {stage}); it waits",
                                     type=run.type, business_no=run.business_no, stage=stage))
        if c["else"] == "dead_letter":
            raise MessageError(_("{type} does not fit case {business_no} at stage {stage}",
                                 type=run.type, business_no=run.business_no, stage=stage))
        raise Stop("out_of_stage", f"{run.type} does not fit stage {stage}")


KIND = RequireStage()
