"""How ``hub test`` compares what a case expected with what happened.

Values: ``payload`` / ``body`` / ``result`` are *subsets* (every key given must be
there with a matching value, at any depth; lists match item by item and have
the same length; ``null`` matches a missing key too); ``…_equals`` is exact;
``where`` is JMESPath that must come out true. Each difference is one line
naming its path, so a failure reads like a diff.

Lists of expectations (``calls``, ``published``, ``dead_letters`` …) are matched
each to a different actual item, in any order unless ``in_order``: a
bipartite matching, so a loose expectation never takes the item a stricter one
needed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jmespath

from bdchub.core.i18n import _

_ABSENT = object()


def show(value: Any, limit: int = 160) -> str:
    """A value as JSON on one line, cut at ``limit`` characters."""
    try:
        text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _join(path: str, key: Any) -> str:
    return f"{path}[{key}]" if isinstance(key, int) else (f"{path}.{key}" if path else str(key))


def _same(expected: Any, actual: Any) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    return bool(expected == actual)


def differences(expected: Any, actual: Any, path: str = "", *, exact: bool = False) -> list[str]:
    """One line per difference between ``expected`` and ``actual`` (empty: they match)."""
    if isinstance(expected, Mapping):
        if not isinstance(actual, Mapping):
            return [_("{path}: expected a mapping, got {actual}", path=path or "$",
                      actual=show(actual))]
        out: list[str] = []
        for key, want in expected.items():
            here = _join(path, key)
            got = actual.get(key, _ABSENT)
            if got is _ABSENT:
                if want is not None or exact:
                    out.append(_("{path}: missing (expected {expected})", path=here,
                                 expected=show(want)))
                continue
            out += differences(want, got, here, exact=exact)
        if exact:
            for key in actual:
                if key not in expected:
                    out.append(_("{path}: not expected, got {actual}", path=_join(path, key),
                                 actual=show(actual[key])))
        return out
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return [_("{path}: expected a list, got {actual}", path=path or "$",
                      actual=show(actual))]
        if len(expected) != len(actual):
            return [_("{path}: expected {n} items, got {m}: {actual}", path=path or "$",
                      n=len(expected), m=len(actual), actual=show(actual))]
        out = []
        for i, (want, got) in enumerate(zip(expected, actual, strict=True)):
            out += differences(want, got, _join(path, i), exact=exact)
        return out
    if expected is None and not exact:
        return [] if actual is None else [_("{path}: expected null, got {actual}",
                                            path=path or "$", actual=show(actual))]
    if _same(expected, actual):
        return []
    return [_("{path}: expected {expected}, got {actual}", path=path or "$",
              expected=show(expected), actual=show(actual))]


def truthy(value: Any) -> bool:
    """JMESPath's truth: false, null, and empty strings, lists and objects are false."""
    return value not in (False, None, "", [], {})


def where_differences(expressions: Sequence[str], data: Any, label: str) -> list[str]:
    out = []
    for text in expressions:
        try:
            found = jmespath.search(text, data)
        except jmespath.exceptions.JMESPathError as exc:
            out.append(_("{label}: where {expr}: {error}", label=label, expr=text, error=exc))
            continue
        if not truthy(found):
            out.append(_("{label}: where {expr}: not true (it is {value})", label=label,
                         expr=text, value=show(found)))
    return out


def assign(n_expected: int, n_actual: int, fits: Callable[[int, int], bool], *,
           in_order: bool = False) -> dict[int, int]:
    """Expectation index -> actual index, each actual used once; as many as can be.
    ``in_order``: the matched actual items keep the expectations' order (the first
    fitting item after the previous match, which finds a full match when one exists)."""
    if in_order:
        out: dict[int, int] = {}
        start = 0
        for i in range(n_expected):
            for j in range(start, n_actual):
                if fits(i, j):
                    out[i] = j
                    start = j + 1
                    break
        return out
    table = [[j for j in range(n_actual) if fits(i, j)] for i in range(n_expected)]
    owner: dict[int, int] = {}  # actual -> expectation

    def take(i: int, seen: set[int]) -> bool:  # Kuhn's augmenting path
        for j in table[i]:
            if j in seen:
                continue
            seen.add(j)
            if j not in owner or take(owner[j], seen):
                owner[j] = i
                return True
        return False

    for i in range(n_expected):
        take(i, set())
    return {i: j for j, i in owner.items()}
