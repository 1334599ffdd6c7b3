"""``split``: publish one message of type ``publish`` per item of ``items`` (an
object item is the body, anything else becomes ``{"value": item}``); the route
goes on with the original body. Each message carries the business number
``business_no`` (an expression over the item) gives, else the parent's."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..language import EXPR, MESSAGE_TYPE
from .base import Compiling, StepKind


class Split(StepKind):
    name = "split"
    in_process = True
    schema = {
        "type": "object", "additionalProperties": False, "required": ["items", "publish"],
        "properties": {"items": EXPR, "publish": MESSAGE_TYPE,
                       "business_no": {**EXPR, "description": "JMESPath over the item: each "
                                       "message's own business number; default the parent's"}},
    }

    def compile(self, spec: Any, ctx: Compiling) -> dict[str, Any]:
        return {"items": ctx.expr(spec["items"], "items"),
                "business_no": (ctx.expr(spec["business_no"], "business_no")
                                if spec.get("business_no") else None)}

    def run(self, engine, step, run) -> str:  # noqa: ANN001 - see StepKind.run
        items = step.compiled["items"].search(run.data())
        if items is None:
            items = []
        elif not isinstance(items, list):
            items = [items]
        size = len(items)
        own = step.compiled["business_no"]
        for i, item in enumerate(items):
            body = item if isinstance(item, Mapping) else {"value": item}
            number = own.search(item) if own is not None else None
            run.emit(step.spec["publish"], body, step, i,
                     headers={"x-split-index": str(i), "x-split-size": str(size)},
                     business_no=None if number in (None, "") else str(number))
        return f"{size} items"


KIND = Split()
