"""``set``: headers (values are expressions), tenant, business number.

A new tenant or business number re-keys the message: the whole run's hops,
its verification records and the progress it reports are stored under the
number the run ends with (the hops also stay under the former number, as the
hand-over), and what it emits afterwards carries the new one."""

from __future__ import annotations

import json
from typing import Any

from bdchub.core.errors import MessageError
from bdchub.core.i18n import _

from ..language import EXPR, MAPPING
from .base import Compiling, StepKind


class Set(StepKind):
    name = "set"
    in_process = True
    schema = {
        "type": "object", "additionalProperties": False, "minProperties": 1,
        "properties": {"headers": MAPPING, "tenant": EXPR, "business_no": EXPR},
    }

    def compile(self, spec: Any, ctx: Compiling) -> dict[str, Any]:
        return {"headers": ctx.mapping(spec.get("headers") or {}, "headers"),
                "tenant": ctx.expr(spec["tenant"], "tenant") if spec.get("tenant") else None,
                "business_no": (ctx.expr(spec["business_no"], "business_no")
                                if spec.get("business_no") else None)}

    def run(self, engine, step, run) -> str:  # noqa: ANN001 - see StepKind.run
        c = step.compiled
        data = run.data()
        for name, expr in c["headers"].items():
            value = expr.search(data)
            if value is None:
                run.headers.pop(name, None)
            else:
                run.headers[name] = (value if isinstance(value, str)
                                     else json.dumps(value, ensure_ascii=False))
        tenant, business_no = run.tenant, run.business_no
        if c["tenant"] is not None:
            tenant = c["tenant"].search(data)
            if not isinstance(tenant, str) or not (len(tenant) == 6 and tenant.isdigit()):
                raise MessageError(_("tenant '{tenant}' must be the county's 6-digit division "
                                     "code", tenant=tenant))
        if c["business_no"] is not None:
            value = c["business_no"].search(data)
            business_no = "" if value is None else str(value)
        if (tenant, business_no) == (run.tenant, run.business_no):
            return ""
        detail = f"{run.tenant}/{run.business_no or '-'} -> {tenant}/{business_no or '-'}"
        run.rekey(tenant, business_no)
        return detail


KIND = Set()
