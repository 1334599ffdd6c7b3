"""Asking the registration system about one case, and the stage changes its answer holds.

Two inputs ask a registration system "progress of case N": the reconciler (a
case stuck at a stage, ``reconcile:``) and the per-case poller (every open case,
``pollers: {…: {kind: per_case}}``). Both say how in the same keys::

    connector: legacy
    operation: QueryProgress
    payload: {YWH: business_no}     # parameter -> JMESPath over the case
    events: HJ                      # the case's stage changes in the answer
    event_stage: "<JMESPath over one change: its stage as progress names it>"
    key: XH                         # what identifies a change at its source
    publish: legacy.stage_changed   # the callback's message type

The case an expression sees is its progress row (``tenant``, ``business_no``,
``stage``, ``status``, ``registration_type``) and ``_now``. What comes of an
answer is the changes after the last one at the stage the hub knows (every
change when it knows none; none when its stage is not in the answer, as then
there is no telling what it missed), each published as ``publish`` under the
id its callback gets too (``core.ids.event_id`` of the type, the tenant and the
change's ``key``, as ``web.dedupe`` names a callback with ``dedupe_key``): one
change reaching the hub by callback, poll and reconciliation is one message,
and the routes' idempotency records absorb the second arrival. An answer that
is only the case's current state works the same with ``events: "@"``: a poll
that finds the stage the hub knows publishes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError

from bdchub.connectors.base import CallContext
from bdchub.core.envelope import Envelope
from bdchub.core.errors import ConfigError
from bdchub.core.i18n import _
from bdchub.core.ids import derive_id, event_id
from bdchub.routes.run import now_iso

EXPR: dict[str, Any] = {"type": "string", "minLength": 1, "description": "a JMESPath expression"}
MESSAGE_TYPE = {"type": "string", "pattern": r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$"}

#: The keys of a query, as the ``reconcile:`` section and per-case pollers take them.
PROPERTIES: dict[str, Any] = {
    "connector": {"type": "string", "description": "the registration system's connector"},
    "operation": {"type": "string", "description": "its progress query of one case"},
    "payload": {"type": "object", "additionalProperties": {"type": "string"},
                "description": "parameter -> JMESPath over the case (tenant, business_no, "
                               "stage, status, registration_type, _now)"},
    "events": {**EXPR, "description": "the case's stage changes in the answer"},
    "event_stage": {**EXPR, "description": "a change's stage, as progress names it"},
    "key": {**EXPR, "description": "what identifies a change (message ids derive from it)"},
    "publish": {**MESSAGE_TYPE, "description": "message type the changes are published as "
                                               "(the callback's)"},
}
REQUIRED = ("connector", "operation", "events", "event_stage", "key", "publish")
#: The progress columns a case's expressions see.
CASE_FIELDS = ("tenant", "business_no", "stage", "status", "registration_type")


def compile_expr(text: str | None, where: str) -> Any:
    """``text`` compiled, None when there is none; a ConfigError naming ``where``."""
    if not text:
        return None
    try:
        return jmespath.compile(text)
    except JMESPathError as exc:
        raise ConfigError(_("{where}: '{expr}' is not a valid JMESPath expression: {error}",
                            where=where, expr=text, error=exc)) from exc


def check_expressions(checker: Any, block: Mapping[str, Any], keys: tuple[str, ...],
                      path: tuple[str, ...], *, payload: bool = False) -> None:
    """Each of ``keys`` of ``block`` (and with ``payload`` every value of its
    ``payload``) parses, or is reported at its own key (``core.config.Checker``)."""
    exprs: list[tuple[tuple[str, ...], Any]] = [((k,), block.get(k)) for k in keys]
    fields = block.get("payload")
    if payload and isinstance(fields, Mapping):
        exprs += [(("payload", str(k)), v) for k, v in fields.items()]
    for where, text in exprs:
        if isinstance(text, str):
            try:
                jmespath.compile(text)
            except JMESPathError as exc:
                checker.add((*path, *where),
                            _("'{expr}' is not a valid JMESPath expression: {error}",
                              expr=text, error=str(exc).splitlines()[0]))


def check_operation(checker: Any, block: Mapping[str, Any], path: tuple[str, ...]) -> None:
    """``block``'s connector and operation exist and its payload's keys are the
    operation's parameters (a SOAP WSDL's, when it can be read offline)."""
    from bdchub.connectors.registry import call_problems, config_folder

    if isinstance(block.get("connector"), str):
        connectors = checker.config.get("connectors")
        payload = block.get("payload")
        for problem in call_problems(connectors if isinstance(connectors, Mapping) else {},
                                     block["connector"], str(block.get("operation")),
                                     list(payload) if isinstance(payload, Mapping) else [],
                                     base_dir=config_folder(checker)):
            checker.add((*path, *problem.path), problem.message, key=problem.key)


def check_query(checker: Any, block: Mapping[str, Any], path: tuple[str, ...]) -> None:
    """The query's connector and operation exist and its expressions parse."""
    check_operation(checker, block, path)
    check_expressions(checker, block, ("events", "event_stage", "key"), path, payload=True)


def case_data(case: Mapping[str, Any], now: float) -> dict[str, Any]:
    """What a case's expressions see: its progress columns and ``_now``."""
    data = {k: str(case.get(k) or "") for k in CASE_FIELDS}
    data["_now"] = now_iso(now)
    return data


class CaseQuery:
    """A query block at work: ask about a case, find what the hub has not heard,
    make the messages of it."""

    def __init__(self, block: Mapping[str, Any], *, connectors: Mapping[str, Any], where: str):
        self.connector = connectors.get(block["connector"])
        if self.connector is None:
            raise ConfigError(_("{where}: no connector named '{name}'", where=where,
                                name=block["connector"]))
        self.operation = str(block["operation"])
        self.payload = {k: compile_expr(v, f"{where}.payload.{k}")
                        for k, v in (block.get("payload") or {}).items()}
        self.events_expr = compile_expr(block["events"], f"{where}.events")
        self.stage_expr = compile_expr(block["event_stage"], f"{where}.event_stage")
        self.key_expr = compile_expr(block["key"], f"{where}.key")
        self.type = str(block["publish"])

    def ask(self, data: Mapping[str, Any], source: str) -> Any:
        """The answer about the case of ``data`` (``case_data``); the connector's errors
        are the caller's."""
        payload = {k: expr.search(data) for k, expr in self.payload.items()}
        return self.connector.call(self.operation, payload, CallContext(
            message_id=derive_id(source, data["tenant"], data["business_no"]),
            business_no=data["business_no"], tenant=data["tenant"]))

    def events(self, answer: Any) -> list[Mapping[str, Any]]:
        """Every change in ``answer``, in its order."""
        found = self.events_expr.search(answer) if answer is not None else None
        if isinstance(found, Mapping):
            found = [found]
        return [e for e in (found or []) if isinstance(e, Mapping)]

    def after(self, events: list[Mapping[str, Any]], stage: str) -> list[Mapping[str, Any]]:
        """The changes after the last one at ``stage`` (all of them when ``stage`` is
        empty: nothing was heard)."""
        if not stage:
            return list(events)
        at = [i for i, e in enumerate(events) if self.stage_expr.search(e) == stage]
        if not at:
            return []
        return list(events[at[-1] + 1:])

    def missed(self, answer: Any, stage: str) -> list[Mapping[str, Any]]:
        """What ``answer`` says that a hub knowing ``stage`` has not heard."""
        return self.after(self.events(answer), stage)

    def envelopes(self, tenant: str, business_no: str, events: list[Mapping[str, Any]], *,
                  source: str, headers: Mapping[str, str]) -> list[Envelope]:
        """The messages of ``events``, under the ids their callbacks get too."""
        return [Envelope(type=self.type, tenant=tenant, business_no=business_no,
                         body=dict(event), source=source, headers=dict(headers),
                         id=event_id(self.type, tenant, self._key(event)))
                for event in events]

    def _key(self, event: Mapping[str, Any]) -> Any:
        key = self.key_expr.search(event)
        # Without its key a change is named by what it says: keyless changes must not
        # all share one id (the second would be absorbed as the first).
        return {"event": dict(event)} if key is None else key
