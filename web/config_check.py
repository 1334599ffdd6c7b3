"""The ``inbound:`` section's check (``core.config.Section.check``): what its
schema (``web.config_schema``) cannot say, reported at its line — clients given
hub events they do not own (``web.permissions``), endpoints' ``dedupe_key``
expressions that are not JMESPath, and ``profile`` records no connector has."""

from __future__ import annotations

from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError

from bdchub.connectors.profile import record_problem
from bdchub.core.i18n import _

from .permissions import problems


def check_section(checker: Any, inbound: Any) -> None:
    if not isinstance(inbound, dict):
        return
    for path, message in problems(inbound.get("clients"), checker.config.get("routes")):
        checker.add(path, message)
    endpoints = inbound.get("endpoints")
    for i, endpoint in enumerate(endpoints if isinstance(endpoints, list) else []):
        ref = endpoint.get("profile") if isinstance(endpoint, dict) else None
        problem = record_problem(checker.config.get("connectors"), ref) \
            if isinstance(ref, str) else None
        if problem is not None:
            checker.add(("inbound", "endpoints", i, "profile"), problem)
        if isinstance(endpoint, dict):
            _check_relay(checker, i, endpoint)
        key = endpoint.get("dedupe_key") if isinstance(endpoint, dict) else None
        if not isinstance(key, str):
            continue
        _check_expr(checker, ("inbound", "endpoints", i, "dedupe_key"), key)


def _check_relay(checker: Any, i: int, endpoint: dict[str, Any]) -> None:
    """``case`` and ``file`` (web.relay) are expressions over a reply, which a queued
    endpoint does not have."""
    path = ("inbound", "endpoints", i)
    exprs = [(("case",), endpoint.get("case"))]
    file = endpoint.get("file")
    if isinstance(file, dict):
        exprs += [(("file", key), value) for key, value in file.items()]
    for where, expr in exprs:
        if isinstance(expr, str):
            _check_expr(checker, (*path, *where), expr)
    if endpoint.get("reply") is False:
        for key in ("case", "file"):
            if key in endpoint:
                checker.add((*path, key), _("{key} needs reply: true: a queued request is "
                                            "answered 202 before the route runs", key=key))


def _check_expr(checker: Any, path: tuple[Any, ...], expr: str) -> None:
    try:
        jmespath.compile(expr)
    except JMESPathError as exc:
        checker.add(path, _("'{expr}' is not a valid JMESPath expression: {error}", expr=expr,
                            error=str(exc).splitlines()[0]))
