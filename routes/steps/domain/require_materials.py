"""``require_materials``: are the application's materials complete for its
registration type? (guide §三(一)1: a correction request, 补正, lists what to
supply.)

The application's ``materials`` are compared with the checklist for its
registration type (``checklists: {name: {"200": [...], "default": [...]}}``);
an item is matched by name, else by type, counting repeated types. Missing
ones publish a correction request (``correction.requested``, shaped like the
``correction_request`` schema: business number, items, deadline) and end the
route with outcome ``correction_requested``; the stage is recorded as
``correction``. A missing material is a business outcome, not an error, so
nothing is dead-lettered: the applicant supplies the materials
(``POST …/{business_no}/materials``).

With ``hold: true`` the step keeps the application it sent back in the store
(``held_applications``, sealed): the registration system never saw it, so the
corrected materials cannot go there; ``resume_held`` takes the held
application back into the route with them. An application that passes lets go
of a hold its case had.

This module also owns the ``checklists:`` config section.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from bdchub.core.errors import RecoverableError, StoreError
from bdchub.core.i18n import _
from bdchub.core.suggest import did_you_mean

from ...language import EXPR, MESSAGE_TYPE
from ..base import Compiling, StepKind, Stop

#: The ``checklists:`` section of config.yaml (registered by ``routes.parts``).
CHECKLISTS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "materials required per registration type, for require_materials",
    "additionalProperties": {
        "type": "object",
        "propertyNames": {"pattern": r"^(\d{3}|default)$"},
        "additionalProperties": {"type": "array", "items": {
            "type": "object", "additionalProperties": False, "required": ["name"],
            "properties": {"name": {"type": "string"}, "type": {"type": "string"},
                           "optional": {"type": "boolean"}}}},
    },
}


class RequireMaterials(StepKind):
    name = "require_materials"
    schema = {
        "type": "object", "additionalProperties": False, "required": ["checklist"],
        "properties": {
            "checklist": {"type": "string", "description": "name under checklists:"},
            "registration_type": {**EXPR, "description": "default: registration_type"},
            "materials": {**EXPR, "description": "default: materials"},
            "publish": {**MESSAGE_TYPE,
                        "description": "type of the correction request; default correction.requested"},
            "deadline_days": {"type": "integer", "minimum": 1, "maximum": 365},
            "hold": {"type": "boolean", "default": False,
                     "description": "keep an application sent back until its corrected "
                                    "materials come (resume_held)"},
        },
    }

    def compile(self, spec: Any, ctx: Compiling) -> dict[str, Any]:
        lists = ctx.config.get("checklists") or {}
        name = spec["checklist"]
        if name not in lists:
            ctx.problem(_("no checklist named '{name}' under checklists:{hint}", name=name,
                          hint=did_you_mean(name, lists)), "checklist")
        return {"checklist": lists.get(name) or {},
                "registration_type": ctx.expr(spec.get("registration_type") or "registration_type",
                                              "registration_type"),
                "materials": ctx.expr(spec.get("materials") or "materials", "materials"),
                "publish": spec.get("publish") or "correction.requested",
                "deadline_days": int(spec.get("deadline_days") or 5),
                "hold": bool(spec.get("hold"))}

    def run(self, engine, step, run) -> str:  # noqa: ANN001 - see StepKind.run
        c = step.compiled
        data = run.data()
        reg_type = c["registration_type"].search(data)
        checklist = c["checklist"]
        required = checklist.get(str(reg_type)) if reg_type is not None else None
        if required is None:
            required = checklist.get("default") or []
        materials = c["materials"].search(data) or []
        if not isinstance(materials, list):
            materials = []
        names: dict[str, int] = {}
        types: dict[str, int] = {}
        for m in materials:
            if isinstance(m, Mapping):
                if isinstance(m.get("name"), str):
                    names[m["name"]] = names.get(m["name"], 0) + 1
                if isinstance(m.get("type"), str):
                    types[m["type"]] = types.get(m["type"], 0) + 1
        missing, by_type = [], []
        # Items named exactly are matched first, so a material is not counted twice.
        for item in required:
            if item.get("optional"):
                continue
            if names.get(item["name"], 0) > 0:
                names[item["name"]] -= 1
                if item.get("type") and types.get(item["type"], 0) > 0:
                    types[item["type"]] -= 1
            else:
                by_type.append(item)
        for item in by_type:
            kind = item.get("type")
            if kind and types.get(kind, 0) > 0:
                types[kind] -= 1
            else:
                missing.append(item)
        if not missing:
            if c["hold"] and run.business_no:
                self._release(engine, run)
            return f"{len(required)} required, all present"
        now = run.clock()
        if c["hold"] and run.business_no:
            self._hold(engine, run, now)
        deadline = time.strftime("%Y-%m-%d", time.localtime(now + 86400 * c["deadline_days"]))
        items = []
        for item in missing:
            entry = {"material_name": item["name"],
                     "description": _("please supply: {name}", name=item["name"])}
            if item.get("type"):
                entry["material_type"] = item["type"]
            items.append(entry)
        body = {"business_no": run.business_no,
                "requested_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(now)),
                "organisation": {"name": engine.organisation or run.tenant,
                                 "division_code": run.tenant},
                "items": items, "deadline": deadline}
        run.emit(c["publish"], body, step)
        run.progress_extra = {"stage": "correction", "status": "in_progress"}
        raise Stop("correction_requested", f"missing: {', '.join(i['name'] for i in missing)}")

    @staticmethod
    def _hold(engine, run, now: float) -> None:  # noqa: ANN001 - see StepKind.run
        held = json.dumps({"type": run.type, "body": run.body,
                           "headers": run.business_headers()}, ensure_ascii=False)
        try:
            engine.store.hold_application(run.tenant, run.business_no, route=run.route.name,
                                          envelope=held, at=now)
        except StoreError as exc:  # the store comes back; the application waits for it
            raise RecoverableError(str(exc)) from exc

    @staticmethod
    def _release(engine, run) -> None:  # noqa: ANN001 - see StepKind.run
        try:
            if engine.store.held_application(run.tenant, run.business_no) is not None:
                engine.store.release_application(run.tenant, run.business_no)
        except StoreError as exc:
            raise RecoverableError(str(exc)) from exc


KIND = RequireMaterials()
