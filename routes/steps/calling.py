"""What the steps that call connectors share (``enrich``, ``to``, ``wire_tap``):
one call or a list of ``recipients``, called one after the other or, with
``parallel: true``, at once."""

from __future__ import annotations

from typing import Any

from ..language import CALL
from .base import Compiling

RECIPIENTS = {"type": "object", "additionalProperties": False, "required": ["recipients"],
              "properties": {"recipients": {"type": "array", "minItems": 1, "items": CALL},
                             "parallel": {"type": "boolean"}}}


def compile_calls(spec: Any, ctx: Compiling) -> dict[str, Any]:
    """``calls`` (compiled, checked against the connectors) and ``parallel``."""
    if "recipients" in spec:
        return {"calls": [ctx.call(r, "recipients", i) for i, r in enumerate(spec["recipients"])],
                "parallel": bool(spec.get("parallel"))}
    return {"calls": [ctx.call(spec)], "parallel": False}
