"""``resume_held``: corrected materials take an application the hub held back in.

::

    - resume_held: {}                         # publishes application.submitted
    - resume_held: {publish: application.resubmitted}

Guide §三(一)1: a correction (补正) takes the corrected materials back into the
case. When the hub's own checklist sent the application back
(``require_materials`` with ``hold``), the registration system never saw it,
so the materials cannot go there: this step merges them into the held
application (a material of the same name replaces the one it had; the others
are added) and publishes it again, so the application goes through its route
as if submitted complete, under its own business number and with its first
submitter's headers. The run ends there (outcome ``resumed``). A case the hub
does not hold goes on to the next step (the registration system's own
correction), the hop saying ``not held``.

The held row stays until the application passes the checklist (which lets go
of it), so a correction delivered again after a crash publishes the same
message again (same id: absorbed), never nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from bdchub.core.errors import RecoverableError, StoreError

from ...language import MESSAGE_TYPE
from ..base import Compiling, StepKind, Stop


def merged(held: list[Any], supplied: list[Any]) -> list[Any]:
    """``held`` materials with ``supplied`` ones in place of those of the same name."""
    names = {m.get("name") for m in supplied if isinstance(m, Mapping)}
    return [m for m in held if not (isinstance(m, Mapping) and m.get("name") in names)] + [
        m for m in supplied if isinstance(m, Mapping)]


class ResumeHeld(StepKind):
    name = "resume_held"
    schema = {
        "type": "object", "additionalProperties": False,
        "properties": {"publish": {**MESSAGE_TYPE, "description": "type of the application "
                                   "published again; default application.submitted"}},
    }

    def compile(self, spec: Any, ctx: Compiling) -> dict[str, Any]:
        return {"publish": (spec or {}).get("publish") or "application.submitted"}

    def run(self, engine, step, run) -> str:  # noqa: ANN001 - see StepKind.run
        try:
            row = (engine.store.held_application(run.tenant, run.business_no)
                   if run.business_no else None)
        except StoreError as exc:  # the store comes back; the correction waits for it
            raise RecoverableError(str(exc)) from exc
        if row is None:
            return "not held"
        held = json.loads(row["envelope"])
        body = dict(held.get("body") or {})
        supplied = run.body.get("materials")
        body["materials"] = merged(list(body.get("materials") or []),
                                   supplied if isinstance(supplied, list) else [])
        run.emit(step.compiled["publish"], body, step,
                 headers={str(k): str(v) for k, v in (held.get("headers") or {}).items()})
        raise Stop("resumed", f"held application published again with "
                              f"{len(body['materials'])} materials")


KIND = ResumeHeld()
