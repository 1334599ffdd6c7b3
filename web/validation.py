"""Which message types the inbound API accepts, and their schemas.

Canonical schemas come from ``schemas.catalog``. A material update has no
canonical schema yet, so ``material_update`` is defined here over the shared
``common`` definitions; once the catalogue ships one of that name, it wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from bdchub.schemas import catalog

#: message type -> canonical schema name, for POST /api/v1/messages/{type}.
DEFAULT_TYPES: dict[str, str] = {
    "application.submitted": "application",
    "application.materials_updated": "material_update",
    "appointment.requested": "appointment_request",
    "progress.reported": "progress",
    "registration.recorded": "registration_result",
    "acceptance.notified": "acceptance_notice",
    "refusal.notified": "refusal_notice",
    "correction.requested": "correction_request",
}

COMMON = "common.schema.json"

MATERIAL_UPDATE: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://bdc-hub.invalid/schemas/messages/material_update.schema.json",
    "title": "Material update",
    "description": "补充或更正申请材料（补正）：一窗平台对已提交申请追加的材料。",
    "type": "object",
    "properties": {
        "business_no": {"$ref": f"{COMMON}#/$defs/business_no"},
        "tenant": {"$ref": f"{COMMON}#/$defs/division_code"},
        "materials": {"type": "array", "minItems": 1,
                      "items": {"$ref": f"{COMMON}#/$defs/material"}, "description": "材料"},
        "reason": {"type": "string", "minLength": 1, "maxLength": 500,
                   "description": "补充原因（如补正通知要求的事项）"},
        "channel": {"$ref": f"{COMMON}#/$defs/channel"},
        "submitted_at": {"$ref": f"{COMMON}#/$defs/timestamp"},
    },
    "required": ["business_no", "materials"],
    "additionalProperties": False,
}

LOCAL_SCHEMAS: dict[str, dict[str, Any]] = {"material_update": MATERIAL_UPDATE}


@cache
def _local_validator(name: str):
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    from bdchub.schemas.formats import FORMAT_CHECKER

    resources = [(catalog.load(n)["$id"], Resource.from_contents(catalog.load(n), DRAFT202012))
                 for n in [*catalog.names(), *getattr(catalog, "SHARED", ("common",))]]
    registry = Registry().with_resources(resources).crawl()
    return Draft202012Validator(LOCAL_SCHEMAS[name], registry=registry,
                                format_checker=FORMAT_CHECKER)


def _local_validate(name: str, instance: Any) -> list[Any]:
    to_violations = getattr(catalog, "_violations", None)
    found = set()
    for error in _local_validator(name).iter_errors(instance):
        if to_violations is not None:
            found.update(to_violations(error))
        else:  # pragma: no cover - older catalogue
            found.add(catalog.Violation(catalog.json_path(error.absolute_path), error.message,
                                        str(error.validator)))
    return sorted(found, key=lambda v: (v.path, v.keyword, v.message))


class Schemas:
    """The schemas the web layer validates with, resolved once at start-up."""

    def __init__(self, extra_types: Mapping[str, str] | None = None):
        known = set(catalog.names())
        self.catalog_names = known
        self.types: dict[str, str] = {}
        for type_, name in {**DEFAULT_TYPES, **(extra_types or {})}.items():
            if name in known or name in LOCAL_SCHEMAS:
                self.types[type_] = name
        # Build every validator now: no schema work on the request path.
        for name in set(self.types.values()):
            self._warm(name)

    def _warm(self, name: str) -> None:
        if name in self.catalog_names:
            validator = getattr(catalog, "validator", None)
            if validator is not None:
                validator(name)
        else:
            _local_validator(name)

    def schema_for(self, type_: str) -> str | None:
        return self.types.get(type_)

    def validate(self, name: str, instance: Any) -> list[Any]:
        if name in self.catalog_names:
            return catalog.validate(name, instance)
        return _local_validate(name, instance)

    def load(self, name: str) -> dict[str, Any]:
        if name in LOCAL_SCHEMAS and name not in self.catalog_names:
            return LOCAL_SCHEMAS[name]
        return catalog.load(name)

    def all_names(self) -> list[str]:
        """Every schema the API refers to, plus what they reference (common)."""
        return sorted(set(self.types.values()))
