"""``dispatch``: send the message to the county it belongs to, chosen by division code.

A province hub takes a department's result once ("总对总") and hands it down to
the county whose GB/T 2260 code the message carries::

    - dispatch:
        division: unit_code                  # or business_no, _tenant: a JMESPath expression
        operation: deliver_result            # default operation of connector targets
        retired: successor                   # or refuse; default successor
        counties:
          "320684": {connector: county_haimen}                  # the county's own hub
          "320612": {publish: tax.cleared, queue: county.320612} # its queue over AMQP
          "320623": {connector: shared_djxt, params: {county: "320623"}}  # a shared system

The expression's value gives the code by its first six digits: a code or tenant
(6), a unit code (28, GB/T 37346) or a business number that starts with one.
A configured county matches the code itself first (a county may still be known
by its former code, as 海门 by 320684); a retired code then goes to its successor
(``schemas.successors``, chains followed) unless ``retired: refuse``; a current
code also reaches a county configured under the code it replaced. The county
found becomes the message's tenant and its ``x-hub-county`` header (with
``x-hub-division``, the code the message carried), so later steps, the store's
rows and ``hub trace`` are the county's. A connector target is called with the
body (or ``payload``) and ``params`` merged in, its answer kept at ``into`` and,
with ``record: KIND``, as a verification record of the case (a county hub's
acknowledgement, as ``enrich … record:`` keeps one); a publish target emits the body
as a message of that type (to ``queue`` when given).

A message whose code cannot be had, is unknown, retired without a single
successor, refused, or outside the counties is dead-lettered at once (reason
``invalid``, never retried) with a sentence naming the code and what was tried.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from bdchub.core.errors import MessageError
from bdchub.core.i18n import _
from bdchub.core.store import dumps
from bdchub.core.suggest import did_you_mean
from bdchub.schemas import divisions, successors

from ..body import evaluate, with_path
from ..language import DURATION, EXPR, MAPPING, MESSAGE_TYPE
from .base import Call, Compiling, StepKind

H_COUNTY = "x-hub-county"        # the county a dispatch step chose
H_DIVISION = "x-hub-division"    # the division code the message carried

CONNECTOR_TARGET = {
    "type": "object", "additionalProperties": False, "required": ["connector"],
    "properties": {
        "connector": {"type": "string", "description": "name under connectors:"},
        "operation": {"type": "string", "description": "default: the step's operation"},
        "payload": {"oneOf": [EXPR, MAPPING]},
        "params": {"type": "object",
                   "additionalProperties": {"type": ["string", "number", "boolean"]},
                   "description": "fixed fields merged into the payload (a shared "
                                  "system's county parameter)"},
        "into": {"type": "string"},
        "record": {"type": "string", "description": "keep the county's answer as a "
                                                    "verification record of this kind"},
        "timeout": DURATION,
    },
}
PUBLISH_TARGET = {
    "type": "object", "additionalProperties": False, "required": ["publish"],
    "properties": {"publish": MESSAGE_TYPE,
                   "queue": {"type": "string", "minLength": 1,
                             "description": "the county's queue; default by type"}},
}


@dataclass(frozen=True)
class Target:
    """Where one county's messages go: a connector call or a message to publish."""

    county: str
    call: Call | None = None
    params: Mapping[str, Any] | None = None
    publish: str | None = None
    queue: str | None = None
    record: str | None = None

    def describe(self) -> str:
        if self.call is not None:
            return f"{self.call.connector}.{self.call.operation}"
        return f"{self.publish}@{self.queue}" if self.queue else str(self.publish)


def _name(code: str) -> str:
    division = divisions.lookup(code)
    return f"{code} {division.full_name}" if division else code


def division_code(value: Any) -> str | None:
    """The 6-digit division code ``value`` starts with (a code, tenant, 28-character
    unit code or a business number that starts with one), or None."""
    if not isinstance(value, str | int) or isinstance(value, bool):
        return None
    text = str(value).strip()
    head = text[:6]
    return head if len(head) == 6 and head.isascii() and head.isdigit() else None


def choose(value: Any, counties: Mapping[str, Target], *, follow: bool,
           alias: Mapping[str, str] | None = None, source: str = "") -> tuple[str, Target]:
    """The code ``value`` carries and the county target it goes to; a
    ``MessageError`` that says why when there is none (see the module)."""
    code = division_code(value)
    if code is None:
        raise MessageError(_("no division code in '{value}' (from {source}): it must start "
                             "with the 6 digits of a GB/T 2260 code", value=value,
                             source=source))
    alias = alias or {}
    if code in counties:
        return code, counties[code]
    found = successors.succession(code)
    if found.ending == "unknown":
        raise MessageError(_("division code {code} (from '{value}') is not a GB/T 2260 code "
                             "({snapshot}); no county to send it to", code=code, value=value,
                             snapshot=divisions.SNAPSHOT))
    if found.ending == "not_gbt":
        raise MessageError(_("division code {code} is a statistical code, not a GB/T 2260 "
                             "code; no county to send it to", code=_name(code)))
    if found.retired:
        last = divisions.lookup(code)
        seen = last.last_seen if last and last.last_seen else "?"
        if not follow:
            raise MessageError(_("division code {code} is retired (last listed {seen}) and "
                                 "this route refuses retired codes (retired: refuse)",
                                 code=_name(code), seen=seen))
        if found.ending == "split":
            raise MessageError(_("division code {code} is retired (last listed {seen}) and "
                                 "was split into {parts}: no single county to send it to",
                                 code=_name(code), seen=seen,
                                 parts=", ".join(map(_name, found.parts))))
        if found.successor is None:
            raise MessageError(_("division code {code} is retired (last listed {seen}) and "
                                 "the successor table ({table}) names no successor",
                                 code=_name(code), seen=seen, table=successors.TABLE))
    current = found.successor or code
    for candidate in (current, alias.get(current)):
        if candidate and candidate in counties:
            return code, counties[candidate]
    tried = " -> ".join(found.chain)
    raise MessageError(_("division code {code} (tried {tried}) is not one of this route's "
                         "counties: {counties}", code=_name(code), tried=tried,
                         counties=", ".join(counties)))


class Dispatch(StepKind):
    name = "dispatch"
    schema = {
        "type": "object", "additionalProperties": False, "required": ["division", "counties"],
        "properties": {
            "division": {**EXPR, "description": "the code: unit_code, business_no, _tenant …"},
            "operation": {"type": "string", "description": "connector targets' operation"},
            "retired": {"enum": ["successor", "refuse"]},
            "counties": {"type": "object", "minProperties": 1,
                         "additionalProperties": {"oneOf": [CONNECTOR_TARGET, PUBLISH_TARGET]}},
        },
    }

    def compile(self, spec: Any, ctx: Compiling) -> dict[str, Any]:
        province = _hub_province(ctx.config)
        counties: dict[str, Target] = {}
        for county, target in spec["counties"].items():
            if not _county_ok(str(county), province, ctx):
                continue
            counties[str(county)] = self._target(str(county), target, spec, ctx)
        # A county configured under its former code also gets messages carrying
        # the code that replaced it (海门: configured 320684, current 320614).
        alias = {}
        for county in counties:
            now = successors.successor(county)
            if now and now != county and now not in counties:
                alias[now] = county
        return {"division": ctx.expr(spec["division"], "division"), "counties": counties,
                "alias": alias, "follow": spec.get("retired", "successor") == "successor"}

    @staticmethod
    def _target(county: str, target: Mapping[str, Any], spec: Mapping[str, Any],
                ctx: Compiling) -> Target:
        if "publish" in target:
            return Target(county, publish=target["publish"], queue=target.get("queue"))
        operation = target.get("operation") or spec.get("operation")
        if not operation:
            ctx.problem(_("county {county}: a connector target needs an operation (here or "
                          "the step's operation:)", county=county), "counties", county)
            operation = ""
        call = ctx.call({**target, "operation": operation}, "counties", county)
        return Target(county, call=call, params=dict(target.get("params") or {}),
                      record=target.get("record"))

    def run(self, engine, step, run) -> str:  # noqa: ANN001 - see StepKind.run
        c = step.compiled
        data = run.data()
        value = c["division"].search(data)
        code, target = choose(value, c["counties"], follow=c["follow"], alias=c["alias"],
                              source=step.spec["division"])
        run.headers[H_DIVISION] = code
        run.headers[H_COUNTY] = target.county
        run.rekey(target.county, run.business_no)
        via = f"{code} -> {target.county}" if code != target.county else code
        if target.publish is not None:
            run.emit(target.publish, run.body, step, queue=target.queue,
                     headers={H_COUNTY: target.county, H_DIVISION: code})
            return f"{via}: {target.describe()}"
        call = target.call
        assert call is not None  # a target is a call or a publish
        payload = evaluate(call.payload, run.data(), run.body)
        if target.params:
            payload = {**(payload if isinstance(payload, Mapping) else {"value": payload}),
                       **target.params}
        sub = replace(step, compiled={"calls": [replace(call, payload=_Fixed(payload))],
                                      "parallel": False})
        [reply] = engine.call_connectors(run, sub)
        if call.into:
            run.body = with_path(run.body, call.into, reply)
        if target.record:  # the county's acknowledgement, kept per message (hub trace)
            run.records.append({"kind": target.record, "connector": call.connector,
                                "operation": call.operation, "result": dumps(reply)})
        return f"{via}: {target.describe()}"


@dataclass(frozen=True)
class _Fixed:
    """A payload already built (the engine calls ``search`` on an expression)."""

    value: Any

    def search(self, data: Any) -> Any:
        return self.value


def _hub_province(config: Mapping[str, Any]) -> str | None:
    tenant = config.get("tenant")
    if isinstance(tenant, str) and len(tenant) == 6 and tenant.isdigit():
        return tenant[:2] + "0000"
    return None


def _typos_of(code: str) -> list[str]:
    """Current codes one slip away from ``code`` (a digit changed, two neighbours
    swapped): string likeness says little about digits."""
    found = []
    for known in divisions.codes():
        diff = [i for i in range(6) if known[i] != code[i]]
        if len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1
                              and known[diff[0]] == code[diff[1]]
                              and known[diff[1]] == code[diff[0]]):
            found.append((diff[0], known))
    # The slip furthest right keeps the province and prefecture the user meant.
    return [max(found)[1]] if found else []


def _county_ok(county: str, province: str | None, ctx: Compiling) -> bool:
    """Whether a ``counties:`` key can be dispatched to; says why not at its line."""
    if not (len(county) == 6 and county.isascii() and county.isdigit()):
        ctx.problem(_("county '{county}' must be a 6-digit GB/T 2260 division code",
                      county=county), "counties", county, key=True)
        return False
    if not divisions.is_known(county):
        ctx.problem(_("county '{county}' is not a GB/T 2260 division code ({snapshot}){hint}",
                      county=county, snapshot=divisions.SNAPSHOT,
                      hint=did_you_mean(county, _typos_of(county))), "counties", county,
                    key=True)
        return False
    if province is not None and county[:2] != province[:2]:
        ours = province[:2] + county[2:]
        ctx.problem(_("county {county} is not under the hub's province {province}{hint}",
                      county=_name(county), province=_name(province),
                      hint=did_you_mean(county, [ours] if divisions.is_known(ours) else [])),
                    "counties", county, key=True)
        return False
    return True


KIND = Dispatch()
