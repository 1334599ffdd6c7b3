"""JSON Schema violations in words people read.

The config checker (``core.config``) and the canonical message schemas
(``schemas.catalog``) both turn jsonschema's errors into sentences; the
keyword-by-keyword wording lives here once, translated.
"""

from __future__ import annotations

import json
from typing import Any

from jsonschema.exceptions import ValidationError

from .i18n import _


def short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def _anyof_required(error: ValidationError) -> list[str] | None:
    """For ``anyOf: [{required: [a]}, {required: [b]}]``: the field names, else None."""
    fields: list[str] = []
    for branch in error.validator_value:
        if not isinstance(branch, dict) or set(branch) != {"required"}:
            return None
        fields.extend(branch["required"])
    return fields


def explain(error: ValidationError) -> str:
    kw, val, inst = error.validator, error.validator_value, error.instance
    if kw == "format":
        if error.cause is not None:
            return str(error.cause)
        return _("is not a valid {format}", format=val)
    if kw == "type":
        types = val if isinstance(val, list) else [val]
        return _("must be of type {type}, got {value}", type=" / ".join(types), value=short(inst))
    if kw == "enum":
        return _("{value} is not one of {allowed}", value=short(inst),
                 allowed=", ".join(short(v) for v in val))
    if kw == "const":
        return _("must be {value}", value=short(val))
    if kw == "pattern":
        # The regex means little to a clerk; the field's description says what is expected.
        desc = error.schema.get("description") if isinstance(error.schema, dict) else None
        if desc:
            return _("{value} is not in the expected form: {description}",
                     value=short(inst), description=desc)
        return _("{value} does not match the pattern {pattern}", value=short(inst), pattern=val)
    if kw == "minLength":
        return _("must have at least {n} character(s)", n=val)
    if kw == "maxLength":
        return _("must have at most {n} character(s)", n=val)
    if kw == "minItems":
        return _("must have at least {n} item(s)", n=val)
    if kw == "maxItems":
        return _("must have at most {n} item(s)", n=val)
    if kw == "uniqueItems":
        return _("items must be unique")
    if kw == "minimum":
        return _("must be at least {n}", n=val)
    if kw == "maximum":
        return _("must be at most {n}", n=val)
    if kw == "exclusiveMinimum":
        return _("must be greater than {n}", n=val)
    if kw == "exclusiveMaximum":
        return _("must be less than {n}", n=val)
    if kw == "anyOf":
        fields = _anyof_required(error)
        if fields:
            return _("at least one of {fields} is required", fields=", ".join(fields))
        return _("does not match any allowed form")
    if kw == "oneOf":
        return _("must match exactly one allowed form")
    if kw == "not":
        return _("is not allowed here")
    return error.message
