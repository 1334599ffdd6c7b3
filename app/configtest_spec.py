"""Config unit test files: their shape, where they are, and what they may name.

A test file (YAML, beside the config in ``<config name>.tests/``) says which
config it tests, what answers the config's connectors give, and cases of
inputs and expected outputs (docs/testing-config.md)::

    config: ../config.yaml            # default: the config its folder is named after
    environment: {HUB_LEGACY_WSDL: schemas/wsdl/legacy.wsdl}
    clock: "2024-05-06T09:30:00+08:00"
    mocks:                            # for every case; a case's own replace them per operation
      window_county: {report_progress: {reply: {received: true}}}
    cases:
      - name: an application is forwarded to the registration system
        mocks:
          legacy:
            SubmitApplication: [{timeout: true, times: 2}, {reply: {FHDM: "0"}}]
        inputs:
          - message: {type: application.submitted, body: {...}}
        expect:
          calls: [{connector: legacy, operation: SubmitApplication, payload: {YWH: "…"}}]

``load(path)`` reads one file and checks it against its config: the file's
shape (``SCHEMA``) and every name it uses (connectors and their operations,
routes, clients, pollers, message types, JMESPath expressions), each problem
at ``file:line:column`` with a "did you mean". A file with problems raises
``ConfigError`` (exit 2): no case of it runs.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError

from bdchub.core.broker import topic_matches
from bdchub.core.config import Checker
from bdchub.core.config import load as load_config
from bdchub.core.errors import ConfigError
from bdchub.core.i18n import _
from bdchub.core.suggest import did_you_mean
from bdchub.core.yamlsource import Location, Path_, Source, load_yaml

#: The folder of a config's tests: ``config.yaml`` -> ``config.tests/``.
TESTS_SUFFIX = ".tests"
#: Start of every case's clock unless the file or the case sets one (China time).
DEFAULT_CLOCK = "2024-05-06T09:00:00+08:00"
#: A clock jump of an ``advance`` may tick at most this many times.
MAX_TICKS = 10_000

ANSWER_KINDS = ("reply", "fault", "http_error", "timeout", "error")
INPUT_KINDS = ("message", "request", "advance", "poll", "reconcile")

_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?[dhms])+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([dhms])")
_UNIT = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}

_TYPE = {"type": "string", "pattern": r"^[a-z#*][a-z0-9_#*]*(\.[a-z#*][a-z0-9_#*]*)*$",
         "description": "a message type (dotted), or a topic pattern with * and #"}
_WHERE = {"anyOf": [{"type": "string", "minLength": 1},
                    {"type": "array", "items": {"type": "string", "minLength": 1}}],
          "description": "JMESPath expression(s) that must be true"}
_HEADERS = {"type": "object", "additionalProperties": {"type": "string"}}
_SET = {"type": "object", "description": "path in the body (a.b[0].c) -> value, over body"}
_DURATION_SCHEMA = {"anyOf": [{"type": "number", "minimum": 0},
                              {"type": "string", "pattern": _DURATION.pattern}],
                    "description": "seconds, or 7d, 36h, 90m, 30s, 1d12h"}

ANSWER: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "minProperties": 1,
    "properties": {
        "reply": {"description": "what the connector hands the route"},
        "fault": {"anyOf": [
            {"type": "string"},
            {"type": "object", "additionalProperties": False, "required": ["message"],
             "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}],
            "description": "a SOAP fault (code Client by default)"},
        "http_error": {"anyOf": [
            {"type": "integer", "minimum": 100, "maximum": 599},
            {"type": "object", "additionalProperties": False, "required": ["status"],
             "properties": {"status": {"type": "integer", "minimum": 100, "maximum": 599},
                            "message": {"type": "string"},
                            "retry_after": {"type": "number", "minimum": 0}}}]},
        "timeout": {"const": True, "description": "no answer in time"},
        "error": {"anyOf": [
            {"type": "string"},
            {"type": "object", "additionalProperties": False, "required": ["message"],
             "properties": {"message": {"type": "string"}, "permanent": {"type": "boolean"}}}],
            "description": "the call failed (recoverable unless permanent: true)"},
        "times": {"type": "integer", "minimum": 1,
                  "description": "this answer for that many calls, then the next"},
    },
}
MOCKS: dict[str, Any] = {
    "type": "object",
    "additionalProperties": {
        "type": "object",
        "additionalProperties": {"anyOf": [ANSWER, {"type": "array", "minItems": 1,
                                                    "items": ANSWER}]},
    },
    "description": "connector -> operation -> an answer, or answers in order",
}
REPLY: dict[str, Any] = {
    "type": "object", "additionalProperties": False,
    "properties": {"status": {"type": "integer", "minimum": 100, "maximum": 599},
                   "body": {}, "body_equals": {}, "where": _WHERE},
}
INPUT: dict[str, Any] = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "message": {
            "type": "object", "additionalProperties": False, "required": ["type"],
            "properties": {"type": _TYPE, "body": {"type": "object"},
                           "tenant": {"type": "string", "pattern": r"^\d{6}$"},
                           "set": _SET, "business_no": {"type": "string"},
                           "headers": _HEADERS, "source": {"type": "string"},
                           "id": {"type": "string"}}},
        "request": {
            "type": "object", "additionalProperties": False, "required": ["path"],
            "properties": {"method": {"enum": ["GET", "POST", "PUT", "PATCH", "DELETE"]},
                           "path": {"type": "string", "pattern": "^/"},
                           "client": {"type": "string"}, "body": {}, "set": _SET,
                           "headers": _HEADERS,
                           "sign": {"type": "boolean"}, "reply": REPLY}},
        "advance": {"anyOf": [
            _DURATION_SCHEMA,
            {"type": "object", "additionalProperties": False, "required": ["by"],
             "properties": {"by": _DURATION_SCHEMA, "every": _DURATION_SCHEMA}}]},
        "poll": {"type": "string", "description": "a poller's name: one poll"},
        "reconcile": {"const": True, "description": "one pass of the reconciler"},
    },
}
_CALL_EXP = {"type": "object", "additionalProperties": False, "required": ["connector"],
             "properties": {"connector": {"type": "string"}, "operation": {"type": "string"},
                            "payload": {}, "payload_equals": {}, "where": _WHERE}}
_PUBLISHED_EXP = {"type": "object", "additionalProperties": False, "required": ["type"],
                  "properties": {"type": _TYPE, "business_no": {"type": "string"},
                                 "tenant": {"type": "string"}, "source": {"type": "string"},
                                 "body": {}, "body_equals": {}, "headers": _HEADERS,
                                 "where": _WHERE}}
_PROGRESS_EXP = {"type": "object", "minProperties": 1,
                 "description": "columns of the case's progress row (stage, status, …)"}
_DEAD_EXP = {"type": "object", "additionalProperties": False,
             "properties": {"route": {"type": "string"}, "reason": {"type": "string"},
                            "step": {"type": "string"}, "type": {"type": "string"},
                            "business_no": {"type": "string"}, "error": {"type": "string"}}}
_PARKED_EXP = {"type": "object", "additionalProperties": False,
               "properties": {"route": {"type": "string"}, "step": {"type": "string"},
                              "business_no": {"type": "string"}, "error": {"type": "string"}}}
_VERIFICATION_EXP = {"type": "object", "additionalProperties": False, "required": ["kind"],
                     "properties": {"kind": {"type": "string"}, "connector": {"type": "string"},
                                    "operation": {"type": "string"},
                                    "business_no": {"type": "string"}, "result": {},
                                    "result_equals": {}, "where": _WHERE}}
_RUN_EXP = {"type": "object", "additionalProperties": False, "required": ["route"],
            "properties": {"route": {"type": "string"}, "outcome": {"type": "string"},
                           "type": {"type": "string"}, "business_no": {"type": "string"}}}


def _listed(item: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": item}


EXPECT: dict[str, Any] = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "in_order": {"type": "boolean", "description": "calls and published in this order"},
        "calls": _listed(_CALL_EXP),
        "no_calls": _listed({"type": "string"}),
        "call_counts": {"type": "object", "additionalProperties": {"type": "integer",
                                                                  "minimum": 0}},
        "published": _listed(_PUBLISHED_EXP),
        "not_published": _listed(_TYPE),
        "progress": {"anyOf": [_PROGRESS_EXP, _listed(_PROGRESS_EXP)]},
        "dead_letters": _listed(_DEAD_EXP),
        "parked": _listed(_PARKED_EXP),
        "verifications": _listed(_VERIFICATION_EXP),
        "runs": _listed(_RUN_EXP),
    },
}
CASE: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["name", "inputs"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "description": {"type": "string"},
        "skip": {"type": "string", "description": "why this case does not run for now"},
        "clock": {"type": ["string", "number"]},
        "business_no": {"type": "string",
                        "description": "the case progress and verifications are read for"},
        "mocks": MOCKS,
        "inputs": {"type": "array", "minItems": 1, "items": INPUT},
        "expect": EXPECT,
    },
}
#: The whole test file.
SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["cases"],
    "properties": {
        "config": {"type": "string", "description": "the config, relative to this file"},
        "description": {"type": "string"},
        "environment": {"type": "object",
                        "additionalProperties": {"type": ["string", "number", "boolean"]},
                        "description": "${VAR} values for the config"},
        "clock": {"type": ["string", "number"]},
        "fixtures": {"description": "anything, for YAML anchors (&name) the cases use"},
        "mocks": MOCKS,
        "cases": {"type": "array", "minItems": 1, "items": CASE},
    },
}


# -- what a file holds, once checked ------------------------------------------------

@dataclass
class Answer:
    """One scripted answer of a mocked operation."""

    kind: str           # reply | fault | http_error | timeout | error
    value: Any
    times: int | None   # None: once, or for ever when it is the last answer
    path: Path_


@dataclass
class Case:
    name: str
    path: Path_
    clock: float
    mocks: dict[tuple[str, str], list[Answer]]
    inputs: list[tuple[str, Any, Path_]]
    expect: dict[str, Any]
    business_no: str
    skip: str = ""


@dataclass
class TestFile:
    path: Path
    source: Source
    config_path: Path
    config: dict[str, Any]
    cases: list[Case] = field(default_factory=list)

    def where(self, path: Path_, *, key: bool = False) -> Location:
        return self.source.where(path, key=key)


# -- finding test files ---------------------------------------------------------------

def tests_folder(config_path: str | os.PathLike[str]) -> Path:
    """Where a config's tests live: ``config.yaml`` -> ``config.tests/`` beside it."""
    config = Path(config_path)
    return config.with_name(config.stem + TESTS_SUFFIX)


def discover(paths: Iterable[str | os.PathLike[str]],
             config_path: str | os.PathLike[str]) -> list[Path]:
    """The test files named (folders: their ``*.yaml`` and ``*.yml``, sorted),
    or, when none is named, those of the config's tests folder."""
    named = [Path(p) for p in paths] or [tests_folder(config_path)]
    found: list[Path] = []
    for target in named:
        if target.is_dir():
            found += sorted(p for p in target.rglob("*") if p.suffix in (".yaml", ".yml")
                            and p.is_file())
        elif target.is_file():
            found.append(target)
        else:
            raise ConfigError(_("{path}: no such test file or folder", path=target))
    if not found:
        raise ConfigError(_("no test files in {paths}; see docs/testing-config.md",
                            paths=", ".join(map(str, named))))
    return found


def default_config(test_file: Path, fallback: str | os.PathLike[str]) -> Path:
    """The config a test file tests when it names none: the one its folder is named
    after (``config.tests/x.yaml`` -> ``config.yaml``), else ``fallback`` (``-c``)."""
    folder = test_file.parent
    if folder.name.endswith(TESTS_SUFFIX):
        stem = folder.name[:-len(TESTS_SUFFIX)]
        for suffix in (".yaml", ".yml"):
            candidate = folder.with_name(stem + suffix)
            if candidate.is_file():
                return candidate
    return Path(fallback)


# -- values -------------------------------------------------------------------------

def duration(value: Any) -> float:
    """Seconds of ``30``, ``"30s"``, ``"90m"``, ``"36h"``, ``"7d"`` or ``"1d12h"``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return sum(float(n) * _UNIT[u] for n, u in _DURATION_PART.findall(str(value)))


def clock_value(value: Any) -> float:
    """Unix seconds of a clock: a number, or an ISO 8601 time (China time when it
    names no offset). Raises ValueError."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone(dt.timedelta(hours=8)))
    return moment.timestamp()


def _plain(value: Any) -> Any:
    """Unquoted YAML times become text again, as they read: JSON has no time type."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


def wheres(spec: Mapping[str, Any]) -> list[str]:
    found = spec.get("where")
    if found is None:
        return []
    return [found] if isinstance(found, str) else list(found)


# -- what the config offers ---------------------------------------------------------

@dataclass
class Offer:
    """The names a test file of one config may use."""

    connectors: dict[str, dict[str, Any]]
    operations: dict[str, list[str]]
    routes: list[str]
    consumed: list[str]        # patterns routes take and awaits wait for
    types: list[str]           # types something can publish
    clients: dict[str, dict[str, Any]]
    pollers: list[str]
    reconcile: bool

    def takes(self, type_: str) -> bool:
        return any(topic_matches(p, type_) for p in self.consumed)


def offer(config: Mapping[str, Any]) -> Offer:
    """Every name of ``config`` a test may use, with the operations each connector has."""
    from bdchub.routes.compiler import compile_routes
    from bdchub.web.config_schema import with_defaults
    from bdchub.web.permissions import HUB_EVENTS, SUBMISSIONS, published

    connectors = {str(k): dict(v) for k, v in (config.get("connectors") or {}).items()}
    routes = compile_routes(config, connectors=None)
    used: dict[str, set[str]] = {name: set() for name in connectors}
    consumed: set[str] = set()
    types: set[str] = set(HUB_EVENTS) | set(SUBMISSIONS)
    for route in routes.values():
        consumed |= set(route.patterns) | route.awaited_types()
        if route.endpoint:
            types.add(str(route.endpoint.get("type")))
        for step in route.walk():
            for call in _calls(step.compiled):
                used.setdefault(call.connector, set()).add(str(call.operation))
    types |= set(published(config.get("routes")))
    inbound = with_defaults(config.get("inbound"))
    types |= {str(e["type"]) for e in inbound.get("endpoints") or [] if e.get("type")}
    pollers = {str(k): v for k, v in (config.get("pollers") or {}).items()}
    for spec in pollers.values():
        used.setdefault(str(spec["connector"]), set()).add(str(spec["operation"]))
        types.add(str(spec["publish"]))
    reconcile = config.get("reconcile") or {}
    if reconcile.get("connector"):
        used.setdefault(str(reconcile["connector"]), set()).add(str(reconcile["operation"]))
        types.add(str(reconcile["publish"]))
    clients = {str(k): dict(v) for k, v in (inbound.get("clients") or {}).items()}
    # What comes in is published too: what clients send and routes take.
    types |= {t for t in consumed | {s for c in clients.values() for s in c.get("sends") or ()}
              if isinstance(t, str) and "*" not in t and "#" not in t}
    operations = {name: sorted(_operations(name, block, used.get(name, set()), config))
                  for name, block in connectors.items()}
    return Offer(connectors=connectors, operations=operations, routes=sorted(routes),
                 consumed=sorted(consumed), types=sorted(types),
                 clients=clients,
                 pollers=sorted(pollers), reconcile=bool(reconcile))


def _calls(value: Any) -> Iterable[Any]:
    from bdchub.routes.steps.base import Call

    if isinstance(value, Call):
        yield value
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        # A step's compiled parts that hold calls (dispatch's county targets).
        for part in dataclasses.fields(value):
            yield from _calls(getattr(value, part.name))
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _calls(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _calls(item)


def _operations(name: str, block: Mapping[str, Any], used: set[str],
                config: Mapping[str, Any]) -> set[str]:
    """What connector ``name`` offers a mock: the operations its block declares (the
    profile's names in the county's words and the vendor's operations they stand
    for), and the vendor's own: what its WSDL has when that can be read here (a
    file, or the copy ``hub check`` reads), else, for a type that discovers its
    operations or declares none, what the config's routes, pollers and reconciler
    call."""
    from bdchub.connectors.registry import config_check, operations_of

    declared = set(operations_of(block))
    for spec in (block.get("operations") or {}).values():
        if isinstance(spec, Mapping) and isinstance(spec.get("operation"), str):
            declared.add(spec["operation"])
    probe = block.get("probe")
    if isinstance(probe, Mapping) and probe.get("operation"):
        used = used | {str(probe["operation"])}
    vendor = _vendor_operations(config_check(name, block, _folder(config)))
    if vendor is not None:
        return declared | set(vendor)
    if block.get("type") == "soap" or not declared:
        return declared | used
    return declared


def _vendor_operations(check: Any) -> list[str] | None:
    """What the type's own check read of the vendor (a WSDL's operations), looking
    through the checks that wrap it (a profile's); None when it could not read it."""
    for _depth in range(4):
        if check is None:
            return None
        found = getattr(check, "vendor_operations", None)
        if found is not None:
            return found()
        check = getattr(check, "inner", None)
    return None


def _folder(config: Mapping[str, Any]) -> Path | None:
    folder = config.get("__dir__")
    return Path(folder) if folder else None


# -- loading and checking -------------------------------------------------------------

def load(path: str | os.PathLike[str], config_path: str | os.PathLike[str] = "config.yaml",
         *, offers: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[dict, Offer]] | None = None
         ) -> TestFile:
    """Read and check one test file; ``ConfigError`` lists every problem at its line.
    ``offers`` caches configs by (path, environment) across the files of one run."""
    file = Path(path)
    source = load_yaml(file)
    source.data = _plain(source.data)
    checker = Checker(source.data, source)
    if not isinstance(source.data, dict):
        checker.add((), _("a test file is a mapping with cases"))
        checker.raise_if_any()
    if not checker.schema(source.data, SCHEMA, ()):
        checker.raise_if_any()
    data = source.data
    named = data.get("config")
    chosen = (file.parent / named) if named else default_config(file, config_path)
    environment = {str(k): _text(v) for k, v in (data.get("environment") or {}).items()}
    key = (str(chosen.resolve()), tuple(sorted(environment.items())))
    cached = offers.get(key) if offers is not None else None
    if cached is None:
        try:
            config = load_config(chosen, environ={**os.environ, **environment})
        except ConfigError as exc:
            where = source.where(("config",)) if named else Location(str(file), 1, 1)
            raise ConfigError([_("{loc}: the config {config} it tests has problems:",
                                 loc=where, config=chosen), *exc.problems]) from exc
        cached = (config, offer(config))
        if offers is not None:
            offers[key] = cached
    config, names = cached
    test = TestFile(path=file, source=source, config_path=chosen, config=config)
    _Checking(checker, names, test).run(data)
    checker.raise_if_any()
    return test


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class _Checking:
    """Checks the names a test file uses against its config, and builds its cases."""

    def __init__(self, checker: Checker, names: Offer, test: TestFile):
        self.checker = checker
        self.names = names
        self.test = test

    def add(self, path: Path_, message: str, key: bool = False) -> None:
        self.checker.add(path, message, key)

    def run(self, data: Mapping[str, Any]) -> None:
        start = self.clock(data.get("clock", DEFAULT_CLOCK), ("clock",))
        shared = self.mocks(data.get("mocks") or {}, ("mocks",))
        seen: dict[str, int] = {}
        for i, spec in enumerate(data["cases"]):
            path: Path_ = ("cases", i)
            name = spec["name"]
            if name in seen:
                self.add((*path, "name"), _("another case is named '{name}' (case {n}); "
                                            "give each case its own name", name=name,
                                            n=seen[name] + 1))
            seen.setdefault(name, i)
            clock = (self.clock(spec["clock"], (*path, "clock")) if "clock" in spec else start)
            mocks = {**shared, **self.mocks(spec.get("mocks") or {}, (*path, "mocks"))}
            inputs = [self.input(item, (*path, "inputs", j))
                      for j, item in enumerate(spec["inputs"])]
            expect = spec.get("expect") or {}
            self.expect(expect, (*path, "expect"))
            self.test.cases.append(Case(
                name=name, path=path, clock=clock, mocks=mocks,
                inputs=[x for x in inputs if x is not None], expect=expect,
                business_no=spec.get("business_no") or _first_business_no(spec["inputs"]),
                skip=spec.get("skip", "")))

    def clock(self, value: Any, path: Path_) -> float:
        try:
            return clock_value(value)
        except (ValueError, OverflowError):
            self.add(path, _("'{value}' is not a time: give Unix seconds or an ISO 8601 time "
                             "such as 2024-05-06T09:30:00+08:00", value=value))
            return 0.0

    # -- mocks
    def mocks(self, block: Mapping[str, Any], path: Path_) -> dict[tuple[str, str], list[Answer]]:
        out: dict[tuple[str, str], list[Answer]] = {}
        for connector, operations in block.items():
            if not self.connector(connector, (*path, connector), key=True):
                continue
            for operation, answers in operations.items():
                here = (*path, connector, operation)
                if not self.operation(connector, operation, here, key=True):
                    continue
                items = answers if isinstance(answers, list) else [answers]
                at = [(*here, j) for j in range(len(items))] if isinstance(answers, list) \
                    else [here]
                out[(connector, operation)] = [a for a in (
                    self.answer(connector, item, p) for item, p in zip(items, at, strict=True))
                    if a is not None]
        return out

    def answer(self, connector: str, spec: Mapping[str, Any], path: Path_) -> Answer | None:
        kinds = [k for k in ANSWER_KINDS if k in spec]
        if len(kinds) != 1:
            self.add(path, _("an answer is one of: {kinds} (with times: N to repeat it)",
                             kinds=", ".join(ANSWER_KINDS)))
            return None
        kind = kinds[0]
        type_name = self.names.connectors[connector].get("type")
        if kind == "fault" and type_name != "soap":
            self.add((*path, kind), _("connector '{connector}' is of type {type}: only a SOAP "
                                      "connector answers with a fault; use http_error or error",
                                      connector=connector, type=type_name), key=True)
        if kind == "http_error" and type_name not in ("rest", "soap"):
            self.add((*path, kind), _("connector '{connector}' is of type {type}: only REST and "
                                      "SOAP connectors answer with an HTTP status; use error",
                                      connector=connector, type=type_name), key=True)
        return Answer(kind=kind, value=spec[kind], times=spec.get("times"), path=path)

    def connector(self, name: str, path: Path_, key: bool = False) -> bool:
        if name in self.names.connectors:
            return True
        self.add(path, _("no connector named '{name}' in the config{hint}; it has: {known}",
                         name=name, hint=did_you_mean(name, self.names.connectors),
                         known=", ".join(self.names.connectors) or "-"), key=key)
        return False

    def operation(self, connector: str, operation: str, path: Path_, key: bool = False) -> bool:
        known = self.names.operations.get(connector, [])
        if operation in known:
            return True
        self.add(path, _("connector '{connector}' has no operation '{op}'{hint}; it has: {ops}",
                         connector=connector, op=operation, hint=did_you_mean(operation, known),
                         ops=", ".join(known) or "-"), key=key)
        return False

    # -- inputs
    def input(self, item: Mapping[str, Any], path: Path_) -> tuple[str, Any, Path_] | None:
        kinds = [k for k in INPUT_KINDS if k in item]
        if len(kinds) != 1:
            self.add(path, _("an input is one of: {kinds}", kinds=", ".join(INPUT_KINDS)))
            return None
        kind = kinds[0]
        spec = item[kind]
        here = (*path, kind)
        if kind in ("message", "request") and "set" in spec:
            spec = {**spec, "body": self.patched(spec.get("body"), spec["set"], (*here, "set"))}
        if kind == "message":
            type_ = spec["type"]
            if not self.names.takes(type_):
                self.add((*here, "type"), _(
                    "no route takes messages of type '{type}'{hint}",
                    type=type_, hint=did_you_mean(type_, [p for p in self.names.consumed
                                                         if "*" not in p and "#" not in p])))
        elif kind == "request":
            self.request(spec, here)
        elif kind == "advance":
            by, every = (spec.get("by"), spec.get("every")) if isinstance(spec, Mapping) \
                else (spec, None)
            if every is not None and duration(every) <= 0:
                self.add((*here, "every"), _("every must be more than 0 seconds"))
            elif every is not None and duration(by) / duration(every) > MAX_TICKS:
                self.add(here, _("at most {n} ticks per advance: make every longer",
                                 n=MAX_TICKS))
        elif kind == "poll":
            if spec not in self.names.pollers:
                self.add(here, _("no poller named '{name}'{hint}; the config has: {known}",
                                 name=spec, hint=did_you_mean(spec, self.names.pollers),
                                 known=", ".join(self.names.pollers) or "-"))
        elif kind == "reconcile" and not self.names.reconcile:
            self.add(here, _("the config has no reconcile: section"))
        return kind, spec, here

    def patched(self, body: Any, changes: Mapping[str, Any], path: Path_) -> Any:
        """``body`` with each ``set`` path changed (a fixture varied without YAML merge
        keys, which cannot replace a key they bring)."""
        out = copy.deepcopy(body) if body is not None else {}
        for target, value in changes.items():
            try:
                out = with_path(out, target, copy.deepcopy(value))
            except (KeyError, IndexError, TypeError, ValueError) as exc:
                self.add((*path, target), _("cannot set {path} in the body: {error}",
                                            path=target, error=exc), key=True)
        return out

    def request(self, spec: Mapping[str, Any], path: Path_) -> None:
        client = spec.get("client")
        if client is None:
            if spec.get("sign", True):
                self.add(path, _("name the inbound client that signs the request (client:), "
                                 "or send it unsigned with sign: false"))
        elif client not in self.names.clients:
            self.add((*path, "client"), _(
                "no inbound client named '{name}'{hint}; the config has: {known}", name=client,
                hint=did_you_mean(client, self.names.clients),
                known=", ".join(self.names.clients) or "-"))
        reply = spec.get("reply") or {}
        self.expressions(reply, (*path, "reply"))

    # -- expectations
    def expect(self, expect: Mapping[str, Any], path: Path_) -> None:
        for j, call in enumerate(expect.get("calls") or []):
            here = (*path, "calls", j)
            if self.connector(call["connector"], (*here, "connector")) and "operation" in call:
                self.operation(call["connector"], call["operation"], (*here, "operation"))
            self.expressions(call, here)
        for j, named in enumerate(expect.get("no_calls") or []):
            self.call_name(named, (*path, "no_calls", j))
        for named in expect.get("call_counts") or {}:
            self.call_name(named, (*path, "call_counts", named), key=True)
        for j, message in enumerate(expect.get("published") or []):
            here = (*path, "published", j)
            self.message_type(message["type"], (*here, "type"))
            self.expressions(message, here)
        for j, type_ in enumerate(expect.get("not_published") or []):
            self.message_type(type_, (*path, "not_published", j))
        for block in ("dead_letters", "parked", "runs"):
            for j, row in enumerate(expect.get(block) or []):
                if "route" in row:
                    self.route(row["route"], (*path, block, j, "route"))
        for j, row in enumerate(expect.get("verifications") or []):
            here = (*path, "verifications", j)
            if "connector" in row and self.connector(row["connector"], (*here, "connector")) \
                    and "operation" in row:
                self.operation(row["connector"], row["operation"], (*here, "operation"))
            self.expressions(row, here)

    def call_name(self, named: str, path: Path_, key: bool = False) -> None:
        connector, _sep, operation = named.partition(".")
        if self.connector(connector, path, key) and operation:
            self.operation(connector, operation, path, key)

    def message_type(self, type_: str, path: Path_) -> None:
        if "*" in type_ or "#" in type_ or type_ in self.names.types:
            return
        self.add(path, _("nothing in the config publishes messages of type '{type}'{hint}",
                         type=type_, hint=did_you_mean(type_, self.names.types)))

    def route(self, name: str, path: Path_) -> None:
        if name not in self.names.routes:
            self.add(path, _("no route named '{name}'{hint}", name=name,
                             hint=did_you_mean(name, self.names.routes)))

    def expressions(self, spec: Mapping[str, Any], path: Path_) -> None:
        texts = wheres(spec)
        for j, text in enumerate(texts):
            where = (*path, "where", j) if isinstance(spec.get("where"), list) else (*path, "where")
            try:
                jmespath.compile(text)
            except JMESPathError as exc:
                self.add(where, _("'{expr}' is not a valid JMESPath expression: {error}",
                                  expr=text, error=str(exc).splitlines()[0]))


_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def with_path(data: Any, path: str, value: Any) -> Any:
    """``data`` with ``value`` at ``path`` (``a.b[0].c``): mappings are made on the way,
    list items must exist. Raises KeyError, IndexError or TypeError."""
    steps: list[str | int] = [int(i) if i else k for k, i in _STEP.findall(path)]
    if not steps or "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in steps
                            ).lstrip(".") != path:
        raise ValueError(_("not a path like a.b[0].c"))
    root = data
    for i, step in enumerate(steps):
        last = i == len(steps) - 1
        if isinstance(step, int):
            if not isinstance(data, list):
                raise TypeError(_("{step} is not a list", step=step))
            if last:
                data[step] = value
            else:
                data = data[step]
            continue
        if not isinstance(data, dict):
            raise TypeError(_("'{step}' is not in a mapping", step=step))
        if last:
            data[step] = value
        else:
            data = data.setdefault(step, {} if not isinstance(steps[i + 1], int) else [])
    return root


def _first_business_no(inputs: list[Any]) -> str:
    """The case a test is about when it does not say: its first input's business number."""
    for item in inputs:
        spec = item.get("message") or item.get("request") if isinstance(item, Mapping) else None
        if not isinstance(spec, Mapping):
            continue
        body = spec.get("body")
        found = spec.get("business_no") or (body.get("business_no")
                                            if isinstance(body, Mapping) else None)
        if isinstance(found, str) and found:
            return found
    return ""
