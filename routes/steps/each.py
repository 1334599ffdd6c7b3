"""``each``: run nested steps once per item of a list, so a check done for one
party is done for every party (guide §四(一)3: each applicant, agent and
organisation is checked, not the first one)::

    - each:
        items: "[applicants[?id_type=='8'], obligors[?id_type=='8']][]"
        as: checks.organisation          # each item at this body path, in turn
        distinct: id_number              # optional: items with the same value once
        steps:
          - enrich: {connector: market, operation: business_licence,
                     payload: {uscc: checks.organisation.id_number},
                     into: checks.organisation.licence, record: business_licence}
        collect: checks.organisations    # optional: what each iteration left at `as`

The nested steps see and change the one body, as any steps do; before each
iteration the item is put at ``as``, and after it the value at ``as`` (the item
with whatever the steps wrote under it) is collected. Once the loop is over
``as`` is removed and the list is put at ``collect``.

Every iteration has its own idempotency keys and message ids (the step id and
``@<index>``), so the second party's call is not taken for a retry of the
first's, and each hop names its iteration in the trace (``…:enrich@1``).

A failure inside the loop fails the run at the nested step as usual (retry,
park, dead letter), but the loop is redone whole when the run is resumed: the
failing step's position does not say which item it was at. Verification
records and messages of the failed attempt's finished iterations are dropped,
so the redone loop leaves them once. A loop cannot ``await``: a resumed await
would start the loop again.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from bdchub.core.i18n import _

from ..body import with_path
from ..language import EXPR, STEPS
from .base import Compiling, PathT, StepKind, Stop


def read_path(body: Mapping[str, Any], path: str) -> Any:
    """The value at dotted ``path`` of ``body`` (None when any part is missing)."""
    value: Any = body
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def without_path(body: Mapping[str, Any], path: str) -> dict[str, Any]:
    """A new body without the key at dotted ``path`` (copying only along it)."""
    head, _sep, rest = path.partition(".")
    out = dict(body)
    if not rest:
        out.pop(head, None)
    elif isinstance(out.get(head), Mapping):
        out[head] = without_path(out[head], rest)
    return out


def _awaits(steps: Any) -> bool:
    """Whether a nested step list holds an ``await`` at any depth."""
    from . import STEP_KINDS

    for item in steps if isinstance(steps, list) else []:
        if not isinstance(item, Mapping) or len(item) != 1:
            continue
        (kind, spec), = item.items()
        if kind == "await":
            return True
        if kind in STEP_KINDS and isinstance(spec, Mapping):
            if any(_awaits(nested) for _key, _sub, nested in STEP_KINDS.get(kind).branches(spec)):
                return True
    return False


class Each(StepKind):
    name = "each"
    reruns_whole = True
    schema = {
        "type": "object", "additionalProperties": False, "required": ["items", "as", "steps"],
        "properties": {
            "items": {**EXPR, "description": "JMESPath: the list to go through (null: none; "
                      "a single value: one item)"},
            "as": {"type": "string", "minLength": 1,
                   "description": "dotted body path where each item is put for the steps"},
            "distinct": {**EXPR, "description": "JMESPath over an item: items with a value "
                         "already seen are left out"},
            "steps": {**STEPS, "minItems": 1},
            "collect": {"type": "string", "minLength": 1,
                        "description": "dotted body path of the list of what each iteration "
                                       "left at `as`"},
        },
    }

    def branches(self, spec: Any) -> Iterator[tuple[str, PathT, list[Any]]]:
        if isinstance(spec.get("steps"), list):
            yield "steps", ("steps",), spec["steps"]

    def compile(self, spec: Any, ctx: Compiling) -> dict[str, Any]:
        if _awaits(spec["steps"]):
            ctx.problem(_("each cannot await other messages: a resumed await would start "
                          "the loop again"), "steps")
        return {"items": ctx.expr(spec["items"], "items"),
                "distinct": ctx.expr(spec["distinct"], "distinct") if spec.get("distinct") else None}

    def run(self, engine, step, run) -> str:  # noqa: ANN001 - see StepKind.run
        items = self._items(step, run)
        target = step.spec["as"]
        outer = run.scope
        records, out = len(run.records), len(run.out)
        collected = []
        try:
            for i, item in enumerate(items):
                run.scope = f"{outer}@{i}"
                run.body = with_path(run.body, target, item)
                engine.run_steps(step.branches.get("steps") or [], run)
                collected.append(read_path(run.body, target))
        except Stop:
            raise  # a filter or a held application ends the run as it would outside a loop
        except BaseException:
            del run.records[records:], run.out[out:]
            raise
        finally:
            run.scope = outer
        run.body = without_path(run.body, target)
        if step.spec.get("collect"):
            run.body = with_path(run.body, step.spec["collect"], collected)
        return f"{len(items)} items"

    @staticmethod
    def _items(step, run) -> list[Any]:  # noqa: ANN001 - compiled step, the run
        items = step.compiled["items"].search(run.data())
        if items is None:
            return []
        if not isinstance(items, list):
            return [items]
        distinct = step.compiled["distinct"]
        if distinct is None:
            return items
        seen: list[Any] = []
        kept = []
        for item in items:
            key = distinct.search(item)
            if key in seen:
                continue
            seen.append(key)
            kept.append(item)
        return kept


KIND = Each()
