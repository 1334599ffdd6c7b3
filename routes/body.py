"""Reading and writing message bodies in steps.

Bodies are never changed in place: a step makes a new body (copying only
along the path it writes), so messages a run has already emitted can share
the old one safely.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def with_path(body: Mapping[str, Any], path: str | None, value: Any) -> dict[str, Any]:
    """A new body with ``value`` at dotted ``path``; with no path an object value
    is merged at the top and anything else lands under ``result``."""
    if not path or path == ".":
        if isinstance(value, Mapping):
            return {**body, **value}
        return {**body, "result": value}
    head, _sep, rest = path.partition(".")
    out = dict(body)
    if rest:
        inner = out.get(head)
        out[head] = with_path(inner if isinstance(inner, Mapping) else {}, rest, value)
    else:
        out[head] = value
    return out


def truthy(value: Any) -> bool:
    """JMESPath's idea of false: null, false, empty string, list or object."""
    return value not in (None, False, "", [], {})


def build(fields: Mapping[str, Any], data: Mapping[str, Any],
          into: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A body from compiled ``target: expression`` pairs (dotted targets nest);
    null results are left out. With ``into`` the fields are merged into it."""
    out: dict[str, Any] = dict(into) if into is not None else {}
    for target, expr in fields.items():
        value = expr.search(data)
        if value is not None:
            out = with_path(out, target, value)
    return out


def evaluate(spec: Any, data: Mapping[str, Any], body: dict[str, Any]) -> Any:
    """A payload or body given as nothing (``body`` itself), a compiled
    expression (its value), or a compiled field mapping (``build``)."""
    if spec is None:
        return body
    if isinstance(spec, dict):
        return build(spec, data)
    return spec.search(data)
