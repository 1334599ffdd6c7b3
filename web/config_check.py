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
        key = endpoint.get("dedupe_key") if isinstance(endpoint, dict) else None
        if not isinstance(key, str):
            continue
        try:
            jmespath.compile(key)
        except JMESPathError as exc:
            checker.add(("inbound", "endpoints", i, "dedupe_key"),
                        _("'{expr}' is not a valid JMESPath expression: {error}", expr=key,
                          error=str(exc).splitlines()[0]))
