"""``case_submitter``: who submitted the case, for answering where it came from.

::

    - case_submitter: {into: origin}      # {client, channel} or null

Guide §三(一)1 sends the decision on an application back to the platform the
application came from: the county, province or national one-window platform
(or a bank). The hub records the client and channel of each case's first
``application.submitted`` (the store's ``submitters``); this step puts them at
``into`` so a ``choice`` can pick the connector by channel. A case the hub
never saw submitted (one opened in the registration system itself) gives null.
"""

from __future__ import annotations

from typing import Any

from bdchub.core.errors import RecoverableError, StoreError

from ...body import with_path
from ..base import Compiling, StepKind


class CaseSubmitter(StepKind):
    name = "case_submitter"
    schema = {
        "type": "object", "additionalProperties": False, "required": ["into"],
        "properties": {"into": {"type": "string", "minLength": 1,
                                "description": "dotted body path of {client, channel}"}},
    }

    def compile(self, spec: Any, ctx: Compiling) -> dict[str, Any]:
        return {"into": spec["into"]}

    def run(self, engine, step, run) -> str:  # noqa: ANN001 - see StepKind.run
        try:
            row = engine.store.submitter(run.tenant, run.business_no) if run.business_no else None
        except StoreError as exc:  # the store comes back; the message waits for it
            raise RecoverableError(str(exc)) from exc
        found = {"client": row["client"], "channel": row["channel"]} if row else None
        run.body = with_path(run.body, step.compiled["into"], found)
        return f"{found['client']} ({found['channel']})" if found else "unknown"


KIND = CaseSubmitter()
