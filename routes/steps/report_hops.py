"""``report_hops``: report the hops of this message, those it carries from the
routes before and this run's so far, to a peer hub, whose ``hub trace`` of the
case then shows them, each route named ``{tenant}/{route}`` (federation,
``web.federation``)::

    routes:
      tax_cleared_from_province:
        from: tax.cleared
        steps:
          - to: {connector: registration, operation: tax_cleared}
          - report_hops: province        # a connector of type hub

The report is a ``hub.hops_reported`` envelope of the case (``connectors.hub``)
whose id is derived from the call's idempotency key: a run repeated after a
crash or a parking sends the same report, and the peer records it once. Put
the step at the end of the chain of routes a case runs through here: a message
carries the hops of the routes before it, which a report earlier in the chain
has already sent. A message without a business number has no case to report on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bdchub.core.i18n import _

from .base import Compiling, StepKind

HOPS_REPORTED = "hub.hops_reported"


class ReportHops(StepKind):
    name = "report_hops"
    schema = {"type": "string", "minLength": 1, "description": "a connector of type hub"}

    def compile(self, spec: Any, ctx: Compiling) -> dict[str, Any]:
        blocks = ctx.config.get("connectors")
        block = blocks.get(spec) if isinstance(blocks, Mapping) else None
        if isinstance(block, Mapping) and block.get("type") != "hub":
            ctx.problem(_("report_hops reports to a peer hub: connector '{name}' is of type "
                          "{type}, not hub", name=spec, type=block.get("type")))
        return {"calls": [ctx.call({"connector": spec, "operation": HOPS_REPORTED})],
                "parallel": False}

    def run(self, engine, step, run) -> str:  # noqa: ANN001 - see StepKind.run
        hops = [{"route": h.route, "step": h.step, "started_at": h.started_at,
                 "duration_ms": h.duration_ms, "outcome": h.outcome, "detail": h.detail}
                for h in (*run.received.trace, *run.hops)]
        if not hops or not run.business_no:
            return _("nothing to report")
        # The call's payload is the run's body: the report stands in for it during
        # the call only, so the steps after this one see the message unchanged.
        body, run.body = run.body, {"hops": hops}
        try:
            reply = engine.call_connectors(run, step)[0]
        finally:
            run.body = body
        status = reply.get("status") if isinstance(reply, Mapping) else None
        return _("{count} hops reported: {status}", count=len(hops), status=status or "-")


KIND = ReportHops()
