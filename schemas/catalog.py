"""The catalogue of canonical message schemas in ``messages/``.

A message schema is ``messages/<name>.schema.json`` (JSON Schema 2020-12);
``common.schema.json`` holds the shared definitions they ``$ref``. References
resolve from these files only: the ``$id`` host ``bdc-hub.invalid`` is
reserved (RFC 2606) and the registry has no retriever, so nothing is fetched.

``validate(name, body)`` returns every violation as a ``Violation`` whose
``path`` is a JSONPath (``$.applicants[0].id_number``) and whose ``message``
is translated; for a ``format`` failure it is the domain checker's reason.

Validators run on a copy of the schema with its references resolved once,
in place (``_inlined``): following a ``$ref`` through the registry on every
validation cost about as much as the checks themselves. The copy asserts
the same and reports the same errors (paths, keywords, the schema each error
comes from); a schema whose references loop keeps them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import fastjsonschema
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from bdchub.core.errors import MessageError
from bdchub.core.i18n import _
from bdchub.core.suggest import closest
from bdchub.core.violations import explain
from bdchub.schemas.formats import FORMAT_CHECKER

MESSAGES_DIR = Path(__file__).resolve().parent / "messages"
EXAMPLES_DIR = MESSAGES_DIR / "examples"
SUFFIX = ".schema.json"
SHARED = ("common",)


@dataclass(frozen=True)
class Violation:
    """One way a message breaks its schema."""

    path: str
    message: str
    keyword: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def _all_files() -> dict[str, Path]:
    return {p.name[: -len(SUFFIX)]: p for p in sorted(MESSAGES_DIR.glob("*" + SUFFIX))}


def names() -> list[str]:
    """Names of the message schemas (the shared ``common`` is not a message)."""
    return [n for n in _all_files() if n not in SHARED]


def _unknown(name: str) -> MessageError:
    close = closest(name, names())
    if close:
        return MessageError(_("unknown message schema '{name}'; did you mean '{hint}'?",
                              name=name, hint=close))
    return MessageError(_("unknown message schema '{name}'; known: {known}",
                          name=name, known=", ".join(names())))


@cache
def _load(name: str) -> dict[str, Any]:
    path = _all_files().get(name)
    if path is None:
        raise _unknown(name)
    with path.open(encoding="utf-8") as fh:
        return json.load(fh)


def load(name: str) -> dict[str, Any]:
    """The schema ``name`` as a dict (a fresh copy; change it freely)."""
    return json.loads(json.dumps(_load(name)))


@cache
def _registry() -> Registry:
    resources = []
    for name in _all_files():
        schema = _load(name)
        resources.append((schema["$id"], Resource.from_contents(schema, DRAFT202012)))
    return Registry().with_resources(resources).crawl()


@cache
def validator(name: str) -> Draft202012Validator:
    """A cached validator for ``name`` that asserts formats and resolves refs locally."""
    schema = _load(name)
    registry = _registry()
    inlined = _inlined(schema, registry)
    return Draft202012Validator(schema if inlined is None else inlined, registry=registry,
                                format_checker=FORMAT_CHECKER)


#: Keywords whose values are data, not schemas: a "$ref" in there is not a reference.
_DATA_KEYWORDS = frozenset({"const", "enum", "examples", "default"})
#: Keywords that only annotate: beside a "$ref" they change no outcome and no error.
_ANNOTATIONS = frozenset({"description", "title", "$comment", "examples", "default",
                          "deprecated", "readOnly", "writeOnly"})
#: Keywords for which a "$ref" is not interchangeable with an "allOf" holding its target.
_REF_SENSITIVE = frozenset({"unevaluatedProperties", "unevaluatedItems", "$dynamicRef",
                            "$dynamicAnchor", "$recursiveRef", "$recursiveAnchor"})


class _Loop(Exception):
    pass


def _inlined(schema: dict[str, Any], registry: Registry) -> dict[str, Any] | None:
    """``schema`` with every ``$ref`` replaced by what it points to, or None when
    that would not be the same schema (references that loop, or keywords whose
    outcome depends on how a subschema was reached). ``{"$ref": X}`` becomes X;
    with annotations beside it, X too (they produce no errors); with assertions
    beside it, ``{"allOf": [X], ...}``, which asserts both in the same place."""
    if _REF_SENSITIVE & _keywords(schema):
        return None
    try:
        out = _inline(schema, registry.resolver(base_uri=schema.get("$id", "")), ())
    except _Loop:
        return None
    if _REF_SENSITIVE & _keywords(out) or '"$ref"' in json.dumps(out):
        return None  # a reference left (say, in data) would now resolve from the wrong base
    return out


def _keywords(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            found.add(key)
            if key not in _DATA_KEYWORDS:
                found |= _keywords(value)
    elif isinstance(node, list):
        for value in node:
            found |= _keywords(value)
    return found


def _inline(node: Any, resolver: Any, seen: tuple[int, ...]) -> Any:
    if isinstance(node, list):
        return [_inline(value, resolver, seen) for value in node]
    if not isinstance(node, dict):
        return node
    if isinstance(node.get("$id"), str):
        resolver = resolver.in_subresource(Resource.from_contents(node, DRAFT202012))
    rest = {key: (value if key in _DATA_KEYWORDS else _inline(value, resolver, seen))
            for key, value in node.items() if key != "$ref" or not isinstance(value, str)}
    ref = node.get("$ref")
    if not isinstance(ref, str):
        return rest
    resolved = resolver.lookup(ref)
    if id(resolved.contents) in seen:  # the registry holds the contents: ids are stable
        raise _Loop(ref)
    target = _inline(resolved.contents, resolved.resolver, (*seen, id(resolved.contents)))
    if not isinstance(target, dict):
        return {"allOf": [target], **rest}  # a boolean schema
    if all(key in _ANNOTATIONS for key in rest):
        return target
    if "allOf" in rest:
        return {**rest, "allOf": [target, *rest["allOf"]]}
    return {"allOf": [target], **rest}


def describe(name: str) -> str:
    """The schema's title in the user's language (titles are English msgids
    with their translations in locale/<lang>/schemas.po)."""
    return _(str(_load(name).get("title", name)))


# --------------------------------------------------------------------------

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def json_path(parts: Iterable[str | int]) -> str:
    out = "$"
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENT.fullmatch(part):
            out += "." + part
        else:
            out += "[" + json.dumps(part, ensure_ascii=False).replace('"', "'") + "]"
    return out


def _extra_properties(error: ValidationError) -> list[str]:
    schema, instance = error.schema, error.instance
    if not isinstance(instance, dict) or not isinstance(schema, dict):
        return []
    known = set(schema.get("properties", {}))
    patterns = [re.compile(p) for p in schema.get("patternProperties", {})]
    return [k for k in instance if k not in known and not any(p.search(k) for p in patterns)]


def _violations(error: ValidationError) -> list[Violation]:
    parts = list(error.absolute_path)
    kw = str(error.validator)
    if kw == "required":
        missing = [r for r in error.validator_value
                   if isinstance(error.instance, dict) and r not in error.instance]
        return [Violation(json_path([*parts, m]), _("required field is missing"), kw)
                for m in missing]
    if kw == "dependentRequired":
        out = []
        for key, needed in error.validator_value.items():
            if key in error.instance:
                for m in needed:
                    if m not in error.instance:
                        out.append(Violation(json_path([*parts, m]),
                                             _("required together with {other}", other=key), kw))
        return out
    if kw in ("additionalProperties", "unevaluatedProperties"):
        extras = _extra_properties(error) if kw == "additionalProperties" else []
        if extras:
            return [Violation(json_path([*parts, x]), _("unknown field"), kw) for x in extras]
        return [Violation(json_path(parts), _("has unknown fields"), kw)]
    return [Violation(json_path(parts), explain(error), kw)]


def _sort_key(v: Violation) -> tuple[Any, ...]:
    # Numeric order for indices so [10] sorts after [2].
    chunks = re.split(r"\[(\d+)\]", v.path)
    key = tuple((0, int(c)) if c.isdigit() else (1, c) for c in chunks)
    return (key, v.keyword, v.message)


#: Keywords that mean the same in draft-07 (what fastjsonschema compiles) and in
#: 2020-12 (what the schemas are written in), and annotations that assert nothing.
_FAST_KEYWORDS = frozenset({
    "type", "properties", "required", "additionalProperties", "patternProperties",
    "enum", "const", "pattern", "minLength", "maxLength", "minimum", "maximum",
    "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "format", "items", "minItems",
    "maxItems", "uniqueItems", "contains", "minProperties", "maxProperties", "allOf",
    "anyOf", "oneOf", "not", "if", "then", "else", "propertyNames",
}) | _ANNOTATIONS | {"$id", "$schema", "$defs", "definitions"}
_SUBSCHEMA_MAPS = ("properties", "patternProperties")
_SUBSCHEMA_ONE = ("additionalProperties", "items", "contains", "not", "if", "then", "else",
                  "propertyNames")
_SUBSCHEMA_LISTS = ("allOf", "anyOf", "oneOf")


def _fast_safe(schema: Any) -> bool:
    """Whether fastjsonschema checks ``schema`` exactly as the 2020-12 validator does."""
    if isinstance(schema, bool):
        return True
    if not isinstance(schema, dict) or not set(schema) <= _FAST_KEYWORDS:
        return False
    if isinstance(schema.get("items"), list):  # a tuple in draft-07, prefixItems' job now
        return False
    return (all(_fast_safe(sub) for key in _SUBSCHEMA_MAPS
                for sub in (schema.get(key) or {}).values())
            and all(_fast_safe(schema[key]) for key in _SUBSCHEMA_ONE if key in schema)
            and all(_fast_safe(sub) for key in _SUBSCHEMA_LISTS for sub in schema.get(key) or ()))


@cache
def _fast(name: str) -> Callable[[Any], Any] | None:
    """A compiled check of schema ``name`` (fastjsonschema, several times quicker than
    the validator) for the common case of a valid message, or None when the schema
    uses anything it would check differently. Its "valid" is trusted; on anything
    else ``validate`` asks the full validator, which alone words the violations."""
    inlined = _inlined(_load(name), _registry())
    if inlined is None or not _fast_safe(inlined):
        return None
    plain = {k: v for k, v in inlined.items() if k not in ("$schema", "$id", "$defs")}
    formats = {fmt: (lambda value, fmt=fmt: FORMAT_CHECKER.conforms(value, fmt))
               for fmt in FORMAT_CHECKER.checkers}
    try:
        return fastjsonschema.compile(plain, formats=formats, use_default=False)
    except (fastjsonschema.JsonSchemaDefinitionException, ValueError):
        return None  # a format it does not know, say: the full validator decides


def validate(name: str, instance: Any) -> list[Violation]:
    """Every violation of schema ``name`` by ``instance``, sorted by path; empty when valid."""
    fast = _fast(name)
    if fast is not None:
        try:
            fast(instance)
        except fastjsonschema.JsonSchemaValueException:
            pass  # invalid: the full validator finds and words every violation
        else:
            return []
    found: set[Violation] = set()
    for error in validator(name).iter_errors(instance):
        found.update(_violations(error))
    return sorted(found, key=_sort_key)


def ensure_valid(name: str, instance: Any) -> None:
    """Raise ``MessageError`` listing the violations when ``instance`` breaks ``name``."""
    found = validate(name, instance)
    if found:
        raise MessageError(
            _("message does not match schema '{name}': {first}", name=name, first=str(found[0]))
            + ("" if len(found) == 1 else _(" (and {n} more)", n=len(found) - 1)),
            [(v.path, v.message) for v in found],
        )
