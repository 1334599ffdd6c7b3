"""``require_newer``: is this change newer, at its source, than the one the case holds?

A source numbers its changes (the registration system's event number XH). The
same change can reach the hub twice as two messages (its callback, and a
poller's or the reconciler's copy), and an older change can arrive after a newer
one; acted on, it would move the case backwards and tell the windows so (a 申请
after the 补正 that followed it)::

    - require_newer: sequence      # the expression giving the change's number

The store keeps, with a case's stage, the number of the change that set it
(``progress.stage_seq``). A message whose number is not above it ends the run
with outcome ``older_change``, the hop naming both numbers; a message without a
number, or a case without one yet, goes on (the store's own guard still keeps a
late older change from moving the stage, ``core.store``).
"""

from __future__ import annotations

from typing import Any

from bdchub.core.errors import RecoverableError, StoreError

from ...language import EXPR
from ..base import Compiling, StepKind, Stop


class RequireNewer(StepKind):
    name = "require_newer"
    schema = {**EXPR, "description": "the expression giving the source's number of the change"}

    def compile(self, spec: Any, ctx: Compiling) -> dict[str, Any]:
        return {"expr": ctx.expr(spec)}

    def run(self, engine, step, run) -> str:  # noqa: ANN001 - see StepKind.run
        number = _number(step.compiled["expr"].search(run.data()))
        if number is None or not run.business_no:
            return ""
        try:
            row = engine.store.progress(run.tenant, run.business_no)
        except StoreError as exc:  # the store comes back; the message waits for it
            raise RecoverableError(str(exc)) from exc
        held = _number((row or {}).get("stage_seq"))
        if held is not None and number <= held:
            raise Stop("older_change", f"change {number} is not newer than {held}")
        return str(number)


def _number(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


KIND = RequireNewer()
