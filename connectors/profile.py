"""A connector's profile: the endpoint's operations named once in the county's words.

Routes, pollers and the reconciler call a connector's operation by the name
the county gives it (``submit_application``, ``query_progress``,
``receive_tax_result`` …) with a canonical payload, and get a canonical answer.
The connector's ``operations:`` block says, once, what that means for this
vendor: which of its operations it is, how the canonical payload becomes the
vendor's (``payload``), how the vendor's reply becomes canonical again
(``reply``), and which replies are refusals (``success``). Swapping vendors
changes that one block. SOAP, REST and AMQP blocks share these keys; each type
adds only what reaches its own wire (SOAP ``operation``, REST ``method``,
``path``, ``query``, ``body`` …, AMQP ``action``)::

    legacy:
      type: soap
      wsdl: wsdl/legacy.wsdl
      records:                                   # vendor record -> canonical, reused below
        stage_change: {business_no: YWH, sequence: XH, stage: "<JMESPath of ZT>"}
      operations:
        submit_application:
          operation: SubmitApplication           # the vendor's operation
          payload:                               # vendor field <- JMESPath over the canonical payload
            YWH: business_no
            QLR: {each: applicants, fields: {QLRMC: name, ZJH: id_number}}
          reply: {business_no: YWH}              # canonical field <- JMESPath over the reply
        query_progress:
          operation: QueryProgress
          payload: {YWH: business_no}
          reply: {changes: {each: HJ, as: stage_change}}
        receive_tax_result:
          operation: ReceiveTaxResult
          payload: {YWH: business_no, WSZT: "status == 'paid' && '1' || '0'"}
          success: {path: CG, ok: [true], message_path: XX}

A mapping's value is a JMESPath expression (text), a nested mapping, or one of
``{each: <list>, as: <record> | fields: <mapping>}`` (every item of a list
mapped) and ``{from: <value>, as: <record> | fields: <mapping>}`` (one value
mapped). Fields whose value is null are left out, as in a route's ``map``.

Success rules (``success: {path, ok, recoverable, message_path}``, on an
operation or the whole block) judge the vendor's reply as it came, before
``response`` and ``reply``: the value at ``path`` must be one of ``ok``
(``null`` in ``ok``: a reply without it is a success too). Anything else is a
refusal, raised as ``PermanentError`` (``RecoverableError`` for the codes in
``recoverable``) that carries the system's own message from ``message_path``,
so the route dead-letters the message with it and the call never counts as
delivered. A reply without ``path`` at all is a misconfigured rule, reported
as such (permanent) with the operation and the path.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError

from bdchub.core.errors import ConfigError, PermanentError, RecoverableError
from bdchub.core.i18n import _
from bdchub.core.suggest import did_you_mean

from .registry import CallProblem

# -- schemas --------------------------------------------------------------------

#: Keys of a mapping value that make it a list or value application, not a nested mapping.
_APPLY_KEYS = ("each", "from")
_EXPR = {"type": "string", "minLength": 1, "description": "JMESPath expression"}

#: JSON Schema ``$defs`` every connector type with a profile adds to its config schema.
DEFS: dict[str, Any] = {
    "profile_mapping": {
        "type": "object",
        "description": "target field -> JMESPath, nested mapping, {each|from, as|fields}",
        "additionalProperties": {"$ref": "#/$defs/profile_value"},
    },
    "profile_value": {
        "anyOf": [
            {"type": "string", "minLength": 1},
            {"type": "object", "additionalProperties": False,
             "required": ["each"], "minProperties": 2, "maxProperties": 2,
             "properties": {"each": _EXPR, "as": {"type": "string"},
                            "fields": {"$ref": "#/$defs/profile_mapping"}}},
            {"type": "object", "additionalProperties": False,
             "required": ["from"], "minProperties": 2, "maxProperties": 2,
             "properties": {"from": _EXPR, "as": {"type": "string"},
                            "fields": {"$ref": "#/$defs/profile_mapping"}}},
            {"allOf": [{"$ref": "#/$defs/profile_mapping"},
                       {"not": {"anyOf": [{"required": [k]} for k in _APPLY_KEYS]}}]},
        ],
    },
}

SUCCESS_SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["path", "ok"],
    "description": "which replies mean success: the value at path must be one of ok",
    "properties": {
        "path": {"type": "string", "minLength": 1,
                 "description": "JMESPath of the result code in the system's reply"},
        "ok": {"type": "array", "items": {"type": ["string", "integer", "boolean", "null"]},
               "minItems": 1, "description": "codes that mean success (null: a reply "
                                              "without the code is a success too)"},
        "recoverable": {"type": "array", "items": {"type": ["string", "integer"]},
                        "description": "codes worth retrying (e.g. busy)"},
        "message_path": {"type": "string", "minLength": 1,
                         "description": "JMESPath of the system's own message"},
    },
}

#: The profile keys of one operation, the same for every connector type.
OPERATION_PROPERTIES: dict[str, Any] = {
    "payload": {"anyOf": [_EXPR, {"$ref": "#/$defs/profile_mapping"}],
                "description": "the vendor's field -> JMESPath over the canonical payload "
                               "(or one expression); default: the payload as given"},
    "reply": {"$ref": "#/$defs/profile_mapping",
              "description": "canonical field -> JMESPath over the vendor's reply, after "
                             "response; default: the reply as given"},
    "response": {"type": "string", "minLength": 1,
                 "description": "JMESPath over the vendor's reply, taken before reply"},
    "success": SUCCESS_SCHEMA,
}

#: Block-level profile keys: ``records`` and the ``success`` rule of every operation.
BLOCK_PROPERTIES: dict[str, Any] = {
    "records": {"type": "object", "additionalProperties": {"$ref": "#/$defs/profile_mapping"},
                "description": "named mappings of one record (e.g. a stage change), used "
                               "as {each: <list>, as: <name>} in payload and reply"},
    "success": SUCCESS_SCHEMA,
}


# -- compiled pieces ------------------------------------------------------------

Problem = Callable[[tuple[str | int, ...], str], None]


class Node:
    """One compiled mapping value."""

    def apply(self, data: Any, records: Mapping[str, Node]) -> Any:
        raise NotImplementedError


@dataclass
class Expr(Node):
    expr: Any

    def apply(self, data: Any, records: Mapping[str, Node]) -> Any:
        return self.expr.search(data)


@dataclass
class Fields(Node):
    fields: dict[str, Node]

    def apply(self, data: Any, records: Mapping[str, Node]) -> Any:
        out = {}
        for key, node in self.fields.items():
            value = node.apply(data, records)
            if value is not None:
                out[key] = value
        return out

    def keys(self) -> list[str]:
        return list(self.fields)


@dataclass
class Applied(Node):
    """``{each|from: expr, as|fields: …}``: the record (or inline mapping) over a value."""

    source: Any
    each: bool
    record: str | None = None
    inline: Node | None = None

    def apply(self, data: Any, records: Mapping[str, Node]) -> Any:
        value = self.source.search(data)
        if value is None:
            return None
        node = records[self.record] if self.record is not None else self.inline
        assert node is not None
        if not self.each:
            return node.apply(value, records)
        # A SOAP list of one often comes back as the item itself.
        items = value if isinstance(value, list) else [value]
        return [node.apply(item, records) for item in items]


@dataclass
class SuccessRule:
    """A compiled ``success:`` rule."""

    path: str
    code: Any
    ok: frozenset[str]
    missing_ok: bool
    recoverable: frozenset[str]
    message: Any = None

    def check(self, data: Any, *, connector: str, operation: str,
              status: int | None = None) -> None:
        """Nothing if ``data`` is a success; else the refusal, with the system's message."""
        code = self.code.search(data) if isinstance(data, Mapping | list) else None
        if code is None:
            if self.missing_ok:
                return
            raise PermanentError(
                _("connector {name}: operation {op}: the reply has no {path} (the path of the "
                  "success rule); it has: {keys}", name=connector, op=operation,
                  path=self.path, keys=_keys(data)),
                connector=connector, operation=operation, status=status)
        if _text(code) in self.ok:
            return
        text = self.message.search(data) if self.message is not None else None
        error_cls = RecoverableError if _text(code) in self.recoverable else PermanentError
        error = error_cls(_("connector {name}: operation {op} failed with code {code}: {text}",
                            name=connector, op=operation, code=_text(code),
                            text="" if text is None else text),
                          connector=connector, operation=operation, status=status)
        # The system's own words, for whoever handles the error (dead letters quote str(error)).
        error.system_message = "" if text is None else str(text)  # type: ignore[attr-defined]
        error.result_code = code  # type: ignore[attr-defined]
        raise error


def _text(value: Any) -> str:
    """Codes compared as text: YAML ``true`` matches xs:boolean ``true`` and "true"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _keys(data: Any) -> str:
    if isinstance(data, Mapping):
        return ", ".join(map(str, data)) or "-"
    return type(data).__name__ if data is not None else "null"


@dataclass
class Operation:
    """One compiled operation of a profile."""

    name: str
    vendor: str
    payload: Node | None = None
    reply: Node | None = None
    response: Any = None
    success: SuccessRule | None = None
    records: Mapping[str, Node] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """How errors name it: the county's word, and the vendor's when they differ."""
        return self.name if self.vendor == self.name else f"{self.name} ({self.vendor})"

    def request(self, payload: Any) -> Any:
        """The vendor's payload for a canonical one."""
        if self.payload is None:
            return payload
        return self.payload.apply(payload if payload is not None else {}, self.records)

    def result(self, data: Any, *, connector: str, status: int | None = None) -> Any:
        """The canonical answer for the vendor's reply; a refusal raises."""
        if self.success is not None:
            self.success.check(data, connector=connector, operation=self.label, status=status)
        if self.response is not None:
            data = self.response.search(data)
        if self.reply is not None and data is not None:
            data = self.reply.apply(data, self.records)
        return data


class Profile:
    """The compiled profile of one connector block.

    ``vendor_key`` names the key of an operation that holds the vendor's
    operation (SOAP ``operation``); without one the operation's name is the
    vendor's. Problems are reported through ``problem(path, message)`` with
    paths below the block, or raised together as one ``ConfigError``.
    """

    def __init__(self, connector: str, block: Mapping[str, Any], *,
                 vendor_key: str | None = None, problem: Problem | None = None):
        self.connector = connector
        found: list[str] = []

        def report(path: tuple[str | int, ...], message: str) -> None:
            if problem is not None:
                problem(path, message)
            else:
                where = ".".join(map(str, ("connectors", connector, *path)))
                found.append(f"{where}: {message}")

        self._report = report
        raw_records = block.get("records") or {}
        self._record_names = list(raw_records)
        self.records: dict[str, Node] = {}
        for name, mapping in raw_records.items():
            self.records[name] = self._node(mapping, ("records", name))
        self.success = self._success(block.get("success"), ("success",))
        self.operations: dict[str, Operation] = {}
        for name, spec in (block.get("operations") or {}).items():
            spec = spec or {}
            vendor = str(spec.get(vendor_key) or name) if vendor_key else name
            path = ("operations", name)
            self.operations[name] = Operation(
                name=name, vendor=vendor,
                payload=self._node(spec["payload"], (*path, "payload"))
                if spec.get("payload") is not None else None,
                # REST's reply may also be the word for how its body is read.
                reply=self._node(spec["reply"], (*path, "reply"))
                if isinstance(spec.get("reply"), Mapping) else None,
                response=self._expr(spec["response"], (*path, "response"))
                if spec.get("response") else None,
                success=self._success(spec.get("success"), (*path, "success")) or self.success,
                records=self.records)
        if found:
            raise ConfigError(found)

    def get(self, name: str) -> Operation | None:
        return self.operations.get(name)

    def operation(self, name: str) -> Operation:
        """The declared operation, else the vendor's own of that name under the
        block's success rule (a SOAP service answers every WSDL operation)."""
        found = self.operations.get(name)
        if found is None:
            found = Operation(name=name, vendor=name, success=self.success, records=self.records)
        return found

    # -- compiling
    def _expr(self, text: Any, path: tuple[str | int, ...]) -> Any:
        try:
            return jmespath.compile(str(text))
        except JMESPathError as exc:
            self._report(path, _("'{expr}' is not a valid JMESPath expression: {error}",
                                 expr=text, error=str(exc).splitlines()[0]))
            return jmespath.compile("`null`")

    def _fields(self, mapping: Mapping[str, Any], path: tuple[str | int, ...]) -> Fields:
        return Fields({str(k): self._node(v, (*path, k)) for k, v in mapping.items()})

    def _node(self, value: Any, path: tuple[str | int, ...]) -> Node:
        if isinstance(value, Mapping) and any(k in value for k in _APPLY_KEYS):
            each = "each" in value
            source = self._expr(value["each" if each else "from"], (*path, "each" if each
                                                                       else "from"))
            record = value.get("as")
            if record is not None:
                if record not in self._record_names:
                    self._report((*path, "as"), _("no record named '{name}' under "
                                                  "records:{hint}", name=record,
                                                  hint=did_you_mean(record, self._record_names)))
                    return Expr(jmespath.compile("`null`"))
                return Applied(source, each, record=str(record))
            return Applied(source, each, inline=self._fields(value.get("fields") or {},
                                                             (*path, "fields")))
        if isinstance(value, Mapping):
            return self._fields(value, path)
        return Expr(self._expr(value, path))

    def _success(self, rule: Any, path: tuple[str | int, ...]) -> SuccessRule | None:
        if not isinstance(rule, Mapping) or "path" not in rule:
            return None
        ok = list(rule.get("ok") or [])
        return SuccessRule(
            path=str(rule["path"]), code=self._expr(rule["path"], (*path, "path")),
            ok=frozenset(_text(v) for v in ok if v is not None),
            missing_ok=any(v is None for v in ok),
            recoverable=frozenset(_text(v) for v in rule.get("recoverable") or []),
            message=self._expr(rule["message_path"], (*path, "message_path"))
            if rule.get("message_path") else None)


# -- a record on its own: callbacks ------------------------------------------------

def record_problem(connectors: Any, ref: str) -> str | None:
    """What is wrong with ``connector.record`` as a reference to a profile's record."""
    connectors = connectors if isinstance(connectors, Mapping) else {}
    name, _sep, record = ref.partition(".")
    if name not in connectors:
        return _("no connector named '{name}' under connectors:{hint}", name=name,
                 hint=did_you_mean(name, connectors))
    block = connectors[name]
    records = block.get("records") if isinstance(block, Mapping) else None
    records = records if isinstance(records, Mapping) else {}
    if record not in records:
        return _("connector '{connector}' has no record '{record}' under records:{hint}",
                 connector=name, record=record, hint=did_you_mean(record, records))
    return None


def record_mapping(connectors: Mapping[str, Any], ref: str) -> Callable[[Any], dict[str, Any]]:
    """The mapping of record ``connector.record`` as a function of one body: a
    system that calls back in its own field names is made canonical with the
    record its replies are mapped with. ``ConfigError`` for a reference to nothing."""
    problem = record_problem(connectors, ref)
    if problem is not None:
        raise ConfigError(problem)
    name, _sep, record = ref.partition(".")
    records = Profile(name, connectors[name]).records
    node = records[record]

    def canonical(body: Any) -> dict[str, Any]:
        mapped = node.apply(body, records)
        return mapped if isinstance(mapped, dict) else {}

    return canonical


# -- hub check ------------------------------------------------------------------

class ProfileCheck:
    """``hub check`` of a block's profile, as ``connectors.registry`` asks a type's
    ``config_check`` for it: ``block()`` lists the problems of its mappings, records
    and success rules (invalid JMESPath, unknown records), each at its key path."""

    def __init__(self, name: str, block: Mapping[str, Any], *, vendor_key: str | None = None):
        self.name = name
        self.config = block
        self.vendor_key = vendor_key

    def block(self) -> list[CallProblem]:
        problems: list[CallProblem] = []
        self.profile = Profile(self.name, self.config, vendor_key=self.vendor_key,
                               problem=lambda path, message: problems.append(
                                   CallProblem(path, message)))
        return problems


class VendorCheck(ProfileCheck):
    """A profile's check joined to the check of the vendor's own description (a
    WSDL's, ``connectors.wsdl.WsdlCheck``): whether the vendor has the operations
    stays the vendor check's; the profile adds that a mapped payload's keys are
    the vendor's parameters (a route's payload keys are then canonical and not the
    vendor's business), and that a success rule's path is in the reply, when
    ``outputs(vendor operation)`` can tell what the reply holds."""

    def __init__(self, name: str, block: Mapping[str, Any], inner: Any, *,
                 vendor_key: str | None = None,
                 outputs: Callable[[str], Collection[str] | None] = lambda op: None):
        super().__init__(name, block, vendor_key=vendor_key)
        self.inner = inner
        self.outputs = outputs

    def _specs(self) -> Mapping[str, Any]:
        specs = self.config.get("operations")
        return specs if isinstance(specs, Mapping) else {}

    def block(self) -> list[CallProblem]:
        problems = super().block()
        if problems:
            return problems + list(self.inner.block())  # mappings that do not compile
        problems += self.inner.block()
        for name, spec in self._specs().items():
            if not isinstance(spec, Mapping):
                continue
            if isinstance(spec.get("payload"), Mapping):
                for problem in self.inner.call(name, list(spec["payload"])):
                    if problem.path[:1] == ("payload",):
                        problems.append(problem._replace(path=("operations", name,
                                                               *problem.path)))
            problems += self._success_path(name, spec)
        return problems

    def _success_path(self, name: str, spec: Mapping[str, Any]) -> list[CallProblem]:
        op = self.profile.operation(name)
        rule = op.success
        head = leading_field(rule.path) if rule is not None else None
        if rule is None or head is None or rule.missing_ok:
            return []
        outputs = self.outputs(op.vendor)
        if outputs is None or head in outputs:
            return []
        at = ("operations", name, "success", "path") if isinstance(spec.get("success"), Mapping) \
            else ("success", "path")
        return [CallProblem(at, _(
            "operation {op}: the success rule's path {path} is not in the reply, which has: "
            "{keys}", op=op.label, path=rule.path, keys=", ".join(outputs) or "-"))]

    def call(self, operation: str, payload_keys: Any = ()) -> list[CallProblem]:
        spec = self._specs().get(operation)
        if isinstance(spec, Mapping) and spec.get("payload") is not None:
            payload_keys = ()  # canonical: the profile's mapping names the vendor's parameters
        return list(self.inner.call(operation, payload_keys))

    def notice(self) -> str | None:
        notice = getattr(self.inner, "notice", None)
        return notice() if notice is not None else None


def leading_field(path: str) -> str | None:
    """The first field a JMESPath expression reads (``Result.Code`` -> ``Result``),
    or None when it starts otherwise (a function, a literal …)."""
    try:
        node = jmespath.compile(path).parsed
    except JMESPathError:
        return None
    while node.get("type") in ("subexpression", "index_expression", "projection",
                               "value_projection", "filter_projection", "flatten"):
        node = node["children"][0]
    return str(node["value"]) if node.get("type") == "field" else None


__all__ = ["BLOCK_PROPERTIES", "DEFS", "OPERATION_PROPERTIES", "SUCCESS_SCHEMA", "Operation",
           "Profile", "ProfileCheck", "SuccessRule", "VendorCheck", "leading_field",
           "record_mapping", "record_problem"]
