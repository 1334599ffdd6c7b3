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

The merged application is held in place of the one it came from, so a second
correction sent before the first has been taken back in merges onto the first's
materials, not onto the application as it was held (the row is replaced only
if no other correction replaced it since it was read; else it is read again).
The held row stays until the application passes the checklist (which lets go
of it), so a correction delivered again after a crash merges the same materials
again and publishes the same message again (same id: absorbed), never nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from bdchub.core.errors import RecoverableError, StoreError
from bdchub.core.i18n import _

from ...language import MESSAGE_TYPE
from ..base import Compiling, StepKind, Stop

#: Reads of the held application before giving up to a retry, when other corrections
#: of the same case keep replacing it in between.
MERGE_ATTEMPTS = 5


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
        if not run.business_no:
            return "not held"
        supplied = run.body.get("materials")
        supplied = supplied if isinstance(supplied, list) else []
        try:
            for _attempt in range(MERGE_ATTEMPTS):
                row = engine.store.held_application(run.tenant, run.business_no)
                if row is None:
                    return "not held"
                held = json.loads(row["envelope"])
                body = dict(held.get("body") or {})
                body["materials"] = merged(list(body.get("materials") or []), supplied)
                if engine.store.update_held_application(
                        run.tenant, run.business_no, envelope=json.dumps(
                            {**held, "body": body}, ensure_ascii=False),
                        held_at=row["held_at"], at=run.clock()):
                    break
            else:
                raise RecoverableError(_("the held application {business_no} kept changing "
                                         "while its corrected materials were merged",
                                         business_no=run.business_no))
        except StoreError as exc:  # the store comes back; the correction waits for it
            raise RecoverableError(str(exc)) from exc
        run.emit(step.compiled["publish"], body, step,
                 headers={str(k): str(v) for k, v in (held.get("headers") or {}).items()})
        raise Stop("resumed", f"held application published again with "
                              f"{len(body['materials'])} materials")


KIND = ResumeHeld()
