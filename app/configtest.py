"""``hub test``: unit tests of a configuration, run in this process.

Each case of a test file (``app.configtest_spec``) gets a hub of its own, built
from the config as ``hub run`` builds it, except that

- the broker is the in-memory one, driven here until nothing is left to deliver,
  and the store is an in-memory SQLite store;
- every connector is a ``connectors.fake.FakeConnector`` answering from the
  case's mocks, inside the connector's own retries and breaker (its ``retry:``
  and ``breaker:`` work as they would); a fault or an HTTP status is turned
  into the error the real connector type would raise;
- time is a fake clock: sleeps (retry backoff) move it, and ``advance`` moves it
  and runs the scheduler, so parked messages come back and awaits time out;
- inbound requests go through the inbound API itself (``web.app``), signed with
  the client's key from the config.

Then the expectations are compared (``app.configtest_match``) and each
difference reported at the line of the expectation that failed.
"""

from __future__ import annotations

import copy
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from bdchub.connectors.base import CallContext
from bdchub.core.envelope import Envelope
from bdchub.core.errors import (
    ConnectorError,
    HubError,
    PermanentError,
    RecoverableError,
    TimeoutError_,
)
from bdchub.core.i18n import _
from bdchub.core.yamlsource import Location, Path_, dotted
from bdchub.routes.middleware import Middleware

from .configtest_match import assign, differences, show, where_differences
from .configtest_spec import Answer, Case, TestFile, duration, wheres

log = logging.getLogger("bdchub.configtest")

#: Deliveries one input may cause before the case is said not to settle.
MAX_DELIVERIES = 20_000
#: Scheduler passes after one clock move (each may release more work).
MAX_PASSES = 100
#: Items a poller may pull in one ``poll`` while it says more is waiting.
MAX_POLLS = 100


@dataclass
class Failure:
    """One expectation that did not hold: where it is written, and what differed."""

    location: Location
    what: str
    message: str
    details: list[str] = field(default_factory=list)


@dataclass
class CaseResult:
    file: Path
    name: str
    location: Location
    outcome: str  # passed | failed | skipped
    failures: list[Failure] = field(default_factory=list)
    trace: list[str] = field(default_factory=list)  # what happened, for -v
    routes: set[str] = field(default_factory=set)   # the routes that ran


@dataclass
class CallRecord:
    """One call that reached a mocked endpoint: ``operation`` as the route named it,
    ``vendor`` as the endpoint knows it (the profile's), and the ``payload`` the
    endpoint got (after the profile's mapping)."""

    connector: str
    operation: str
    vendor: str
    payload: Any
    key: str
    answer: str

    @property
    def name(self) -> str:
        if self.vendor != self.operation:
            return f"{self.connector}.{self.operation} ({self.vendor})"
        return f"{self.connector}.{self.operation}"

    def is_(self, operation: str) -> bool:
        return operation in (self.operation, self.vendor)

    @property
    def route(self) -> str:
        # Idempotency keys read {origin}:{route}:{step}: the caller, for reports.
        parts = self.key.split(":")
        return parts[1] if len(parts) >= 3 else ""


class FakeClock:
    """The case's time: it moves only when told, or when something sleeps."""

    def __init__(self, start: float):
        self.now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.now += max(0.0, float(seconds))


class _Recorder(Middleware):
    """What the hub published and how each route run ended."""

    def __init__(self) -> None:
        self.published: list[Envelope] = []
        self.runs: list[dict[str, str]] = []
        self._lock = threading.Lock()

    def on_publish(self, envelope: Any) -> None:
        with self._lock:
            self.published.append(envelope)

    def after_message(self, route: str, envelope: Any, outcome: str) -> None:
        with self._lock:
            self.runs.append({"route": route, "outcome": outcome, "type": envelope.type,
                              "business_no": envelope.business_no})

    def on_duplicate(self, route: str, envelope: Any) -> None:
        with self._lock:
            self.runs.append({"route": route, "outcome": "duplicate", "type": envelope.type,
                              "business_no": envelope.business_no})


class _Script:
    """The answers of one mocked operation, in order; the last one stays unless it
    was given ``times``."""

    def __init__(self, answers: list[Answer]):
        self.left = [(a, a.times if a.times is not None
                      else (None if i == len(answers) - 1 else 1))
                     for i, a in enumerate(answers)]

    def next(self) -> Answer | None:
        for i, (answer, remaining) in enumerate(self.left):
            if remaining is None:
                return answer
            if remaining > 0:
                self.left[i] = (answer, remaining - 1)
                return answer
        return None


class _WebPort:
    """The hub as the inbound API sees it, with the audit log kept in memory."""

    def __init__(self, hub: Any):
        self._hub = hub
        self.audits: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._hub, name)

    def audit(self, event: str, **fields: Any) -> None:
        self.audits.append((event, fields))


class _Unsettled(Exception):  # noqa: N818 - control flow: the case never went idle
    pass


class _Connectors:
    """What the config's connector types do around the endpoint, which a mock
    replaces: the profile (``connectors.profile``: the vendor's operation, payload
    mapping, success rule and reply mapping), and the error each type raises for
    a fault or an HTTP status."""

    #: Types whose blocks carry a profile, and the key naming the vendor's operation
    #: (REST and AMQP operations are the vendor's under their own names).
    PROFILED = {"soap": "operation", "rest": None, "amqp": None}

    def __init__(self, config: Mapping[str, Any]):
        self.config = config
        self._real: dict[str, Any] = {}
        self._profiles: dict[str, Any] = {}

    def profile(self, name: str) -> Any:
        """The connector's compiled profile, or None for a type without one."""
        if name not in self._profiles:
            from bdchub.connectors.profile import Profile

            block = (self.config.get("connectors") or {})[name]
            type_name = block.get("type")
            self._profiles[name] = (Profile(name, block, vendor_key=self.PROFILED[type_name])
                                    if type_name in self.PROFILED else None)
        return self._profiles[name]

    def real(self, name: str) -> Any:
        found = self._real.get(name)
        if found is None:
            from bdchub.connectors import registry

            block = dict((self.config.get("connectors") or {})[name])
            found = self._real[name] = registry.create(name, block,
                                                       base_dir=self.config.get("__dir__"))
        return found

    def error(self, name: str, operation: str, answer: Answer) -> ConnectorError:
        value = answer.value
        where = {"connector": name, "operation": operation}
        if answer.kind == "timeout":
            return TimeoutError_(_("connector {name}: no answer in time (mocked)", name=name),
                                 **where)
        if answer.kind == "error":
            spec = value if isinstance(value, Mapping) else {"message": str(value)}
            cls = PermanentError if spec.get("permanent") else RecoverableError
            return cls(_("connector {name}: {error}", name=name, error=spec["message"]), **where)
        real = self.real(name)
        if answer.kind == "fault":
            from zeep.exceptions import Fault

            spec = value if isinstance(value, Mapping) else {"message": str(value)}
            return real.classify(Fault(spec["message"], code=spec.get("code", "Client")),
                                 operation)
        spec = value if isinstance(value, Mapping) else {"status": int(value)}
        status = int(spec["status"])
        message = spec.get("message") or f"HTTP {status}"
        if real.type_name == "soap":
            from zeep.exceptions import TransportError

            return real.classify(TransportError(message, status_code=status), operation)
        from bdchub.connectors.http import status_error

        return status_error(status, _("connector {name}: operation {op} answered HTTP "
                                      "{status}: {text}", name=name, op=operation,
                                      status=status, text=message),
                            connector=name, operation=operation,
                            retry_after=spec.get("retry_after"))


class CaseRun:
    """One case: its hub, its inputs, its expectations."""

    def __init__(self, test: TestFile, case: Case, connectors: _Connectors):
        self.test = test
        self.case = case
        self.kinds = connectors
        self.clock = FakeClock(case.clock)
        self.recorder = _Recorder()
        self.calls: list[CallRecord] = []
        self.scripts = {key: _Script(answers) for key, answers in case.mocks.items()}
        self.failures: list[Failure] = []
        self.inputs: set[str] = set()
        self.delivered = 0
        self._lock = threading.Lock()
        self.hub: Any = None
        self.port: _WebPort | None = None
        self.app: Any = None
        self.pollers: dict[str, Any] = {}
        self.reconciler: Any = None
        self.replies: list[tuple[str, str, int, Any]] = []

    # -- assembly
    def _fakes(self) -> dict[str, Any]:
        from bdchub.connectors.fake import FakeConnector
        from bdchub.connectors.metrics import ConnectorMetrics
        from bdchub.connectors.resilience import ResilientConnector, policies_from

        metrics = ConnectorMetrics(CollectorRegistry())
        built = {}
        for name, block in (self.test.config.get("connectors") or {}).items():
            fake = FakeConnector(name, {}, handler=self._handler(name),
                                 base_dir=self.test.config.get("__dir__"))
            # Its own retries and breaker, on the fake clock; the jitter fixed, so a
            # case moves its clock the same way every time.
            built[name] = ResilientConnector(
                fake, **policies_from(name, dict(block), metrics=metrics, clock=self.clock,
                                      sleep=self.clock.sleep), rng=random.Random(0))
        return built

    def _handler(self, name: str) -> Callable[[str, Any, CallContext], Any]:
        profile = self.kinds.profile(name)

        def answer(operation: str, payload: Any, context: CallContext) -> Any:
            # What the connector's profile makes of the call, as the real type would:
            # the endpoint sees the vendor's operation and payload, the route gets
            # the reply judged by the success rule and mapped back.
            op = profile.operation(operation) if profile is not None else None
            vendor = op.vendor if op is not None else operation
            sent = op.request(payload) if op is not None else payload
            script = self.scripts.get((name, operation)) or self.scripts.get((name, vendor))
            chosen = script.next() if script is not None else None
            record = CallRecord(name, operation, vendor, copy.deepcopy(sent),
                                context.idempotency_key,
                                chosen.kind if chosen is not None else "unmocked")
            with self._lock:
                self.calls.append(record)
            if chosen is None:
                self._unmocked(record, script is not None)
                raise PermanentError(_("{call} is not mocked in this test", call=record.name),
                                     connector=name, operation=operation)
            if chosen.kind != "reply":
                raise self.kinds.error(name, operation, chosen)
            reply = copy.deepcopy(chosen.value)
            return op.result(reply, connector=name) if op is not None else reply
        return answer

    def _unmocked(self, record: CallRecord, ran_out: bool) -> None:
        by = _(" by route {route}", route=record.route) if record.route else ""
        if ran_out:
            message = _("{call} was called{by} more often than its mocked answers allow",
                        call=record.name, by=by)
            answers = (self.case.mocks.get((record.connector, record.operation))
                       or self.case.mocks[(record.connector, record.vendor)])
            what = where = answers[-1].path
        else:
            message = _("{call} was called{by} but this case does not mock it; add it under "
                        "mocks:", call=record.name, by=by)
            what = (*self.case.path, "mocks") if "mocks" in self._case_spec() else self.case.path
            where = what if "mocks" in self._case_spec() else (*self.case.path, "name")
        with self._lock:
            if not any(f.message == message for f in self.failures):
                self.failures.append(Failure(self.test.where(where), dotted(what), message,
                                             [_("payload: {payload}",
                                                payload=show(record.payload, 400))]))

    def _case_spec(self) -> Mapping[str, Any]:
        return self.test.source.data["cases"][self.case.path[1]]

    def _build(self) -> None:
        from bdchub.routes.middleware import MetricsMiddleware
        from bdchub.routes.runtime import Hub

        self.hub = Hub.from_config(
            self.test.config, broker="memory://", store="sqlite://", connectors=self._fakes(),
            middleware=[self.recorder], metrics=MetricsMiddleware(CollectorRegistry()),
            clock=self.clock, sleep=self.clock.sleep, inline=True)
        self.hub.start()

    def _web(self) -> Any:
        if self.app is None:
            from bdchub.web.app import create_app
            from bdchub.web.metrics import InboundMetrics

            self.port = _WebPort(self.hub)
            self.app = create_app(self.port, dict(self.test.config), clock=self.clock,
                                  metrics=InboundMetrics(CollectorRegistry()))
        return self.app

    # -- running
    def run(self) -> CaseResult:
        location = self.test.where((*self.case.path, "name"))
        if self.case.skip:
            return CaseResult(self.test.path, self.case.name, location, "skipped")
        try:
            self._build()
            for kind, spec, path in self.case.inputs:
                getattr(self, f"_input_{kind}")(spec, path)
                self._settle(path)
            self._check()
        except _Unsettled as exc:
            path = exc.args[0]
            self.failures.append(Failure(self.test.where(path), dotted(path), _(
                "the hub did not settle: more than {n} deliveries after this input (does a "
                "route publish what it takes?)", n=MAX_DELIVERIES)))
        except HubError as exc:
            self.failures.append(Failure(location, "", _("the case could not run: {error}",
                                                         error=exc)))
        except Exception as exc:  # noqa: BLE001 - one broken case must not end the run
            log.exception("case %s failed to run", self.case.name)
            error = f"{type(exc).__name__}: {exc}"
            self.failures.append(Failure(location, "", _("the case could not run: {error}",
                                                         error=error)))
        finally:
            if self.hub is not None:
                self.hub.kill()
        return CaseResult(self.test.path, self.case.name, location,
                          "failed" if self.failures else "passed", self.failures, self._trace(),
                          {run["route"] for run in self.recorder.runs})

    def _settle(self, path: Path_) -> None:
        left = MAX_DELIVERIES - self.delivered
        delivered = self.hub.run_until_idle(max_deliveries=left)
        self.delivered += delivered
        if delivered >= left:
            raise _Unsettled(path)

    def _input_message(self, spec: Mapping[str, Any], path: Path_) -> None:
        body = copy.deepcopy(spec.get("body") or {})
        tenant = spec.get("tenant") or str(body.get("tenant") or self.hub.tenant)
        business_no = spec.get("business_no", str(body.get("business_no") or ""))
        env = Envelope(type=spec["type"], tenant=tenant, body=body, business_no=business_no,
                       source=spec.get("source", "hub-test"),
                       headers=dict(spec.get("headers") or {}),
                       **({"id": spec["id"]} if spec.get("id") else {}))
        self.inputs.add(env.id)
        self.hub.publish(env)

    def _input_request(self, spec: Mapping[str, Any], path: Path_) -> None:
        from werkzeug.test import Client

        from bdchub.web.signing import signed_headers

        app = self._web()
        method = spec.get("method", "POST")
        body = spec.get("body")
        data = (b"" if body is None else body.encode() if isinstance(body, str)
                else json.dumps(body, ensure_ascii=False).encode())
        headers = dict(spec.get("headers") or {})
        client = spec.get("client")
        if spec.get("sign", True) and client:
            signer = app.intake.clients.get(client)
            if signer is None:
                raise HubError(_("inbound client '{name}' is disabled in the config",
                                 name=client))
            headers = {**signed_headers(signer.app_key, signer.app_secret, method, spec["path"],
                                        data, timestamp=int(self.clock())), **headers}
        base, _sep, query = spec["path"].partition("?")
        # A body is JSON unless the case's headers say otherwise (SOAP's text/xml).
        typed = any(k.lower() == "content-type" for k in headers)
        reply = Client(app).open(base, method=method, query_string=query or None, data=data,
                                 headers=headers,
                                 content_type="application/json" if data and not typed else None)
        raw = reply.get_data()
        try:
            answer: Any = json.loads(raw) if raw else None
        except ValueError:
            answer = raw.decode("utf-8", errors="replace")
        self.replies.append((method, spec["path"], reply.status_code, answer))
        expected = spec.get("reply")
        if expected is not None:
            self._check_reply(expected, reply.status_code, answer, (*path, "reply"))

    def _input_advance(self, spec: Any, path: Path_) -> None:
        by = duration(spec["by"] if isinstance(spec, Mapping) else spec)
        every = duration(spec["every"]) if isinstance(spec, Mapping) and "every" in spec else by
        end = self.clock.now + by
        while True:
            self.clock.now = min(end, self.clock.now + every) if every > 0 else end
            self._scheduler(path)
            if self.clock.now >= end:
                return

    def _scheduler(self, path: Path_) -> None:
        for _pass in range(MAX_PASSES):
            done = self.hub.tick()
            self._settle(path)
            if not any(done.values()):
                return

    def _input_poll(self, name: str, path: Path_) -> None:
        """One pass of poller ``name`` (a feed poller pulls again while more is
        waiting), even one the config leaves disabled: it can be tested first."""
        poller = self.pollers.get(name)
        if poller is None:
            from .pollers import Pollers

            spec = {**self.test.config["pollers"][name], "enabled": True}
            built = Pollers({**self.test.config, "pollers": {name: spec}},
                            connectors=self.hub.connectors, publish=self.hub.publish,
                            store_engine=self.hub.store.engine, clock=self.clock)
            poller = self.pollers[name] = built.items[0]
        if not hasattr(poller, "poll_once"):
            poller.run_once()
            return
        for _n in range(MAX_POLLS):
            if not poller.poll_once():
                return

    def _input_reconcile(self, _spec: Any, path: Path_) -> None:
        if self.reconciler is None:
            from .reconciler import ReconcileMetrics, Reconciler

            self.reconciler = Reconciler(
                self.test.config["reconcile"], store=self.hub.store,
                connectors=self.hub.connectors, publish=self.hub.publish, clock=self.clock,
                metrics=ReconcileMetrics(CollectorRegistry()))
        self.reconciler.run_once()

    # -- expectations
    def _fail(self, path: Path_, message: str, details: Iterable[str] = ()) -> None:
        self.failures.append(Failure(self.test.where(path), dotted(path), message,
                                     list(details)))

    def _check_reply(self, expected: Mapping[str, Any], status: int, body: Any,
                     path: Path_) -> None:
        found: list[str] = []
        if "status" in expected and expected["status"] != status:
            found.append(_("status: expected {expected}, got {actual}",
                           expected=expected["status"], actual=status))
        if "body" in expected:
            found += differences(expected["body"], body, "body")
        if "body_equals" in expected:
            found += differences(expected["body_equals"], body, "body", exact=True)
        found += where_differences(wheres(expected), body, "body")
        if found:
            self._fail(path, _("the reply differs"), [*found, _("reply: {status} {body}",
                                                                status=status,
                                                                body=show(body, 400))])

    def _check(self) -> None:
        expect = self.case.expect
        base = (*self.case.path, "expect")
        in_order = bool(expect.get("in_order"))
        calls = list(self.calls)
        published = [e for e in self.recorder.published if e.id not in self.inputs]
        if "calls" in expect:
            self._match_list(
                expect["calls"], calls, (*base, "calls"), in_order=in_order,
                same=lambda e, a: e["connector"] == a.connector
                and ("operation" not in e or a.is_(e["operation"])),
                diff=_call_differences, label=lambda a: a.name,
                none=_("no call to {name}"), noun=_("calls"),
                name=lambda e: ".".join(filter(None, (e["connector"], e.get("operation")))))
        for j, named in enumerate(expect.get("no_calls") or []):
            made = [c for c in calls if _names(named, c)]
            if made:
                self._fail((*base, "no_calls", j), _("{name} was called {n} time(s)",
                                                     name=named, n=len(made)),
                           [_("payload: {payload}", payload=show(c.payload)) for c in made[:3]])
        for named, count in (expect.get("call_counts") or {}).items():
            made = [c for c in calls if _names(named, c)]
            if len(made) != count:
                self._fail((*base, "call_counts", named), _(
                    "{name}: expected {n} call(s), got {m}", name=named, n=count, m=len(made)))
        if "published" in expect:
            self._match_list(
                expect["published"], published, (*base, "published"), in_order=in_order,
                same=lambda e, a: _type_matches(e["type"], a.type), diff=_message_differences,
                label=lambda a: f"{a.type} ({a.business_no})" if a.business_no else a.type,
                none=_("no message of type {name} was published"), noun=_("messages"),
                name=lambda e: e["type"])
        for j, type_ in enumerate(expect.get("not_published") or []):
            sent = [e for e in published if _type_matches(type_, e.type)]
            if sent:
                self._fail((*base, "not_published", j), _(
                    "{type} was published {n} time(s)", type=type_, n=len(sent)),
                    [_("body: {body}", body=show(e.body)) for e in sent[:3]])
        if "progress" in expect:
            self._check_progress(expect["progress"], (*base, "progress"))
        if "dead_letters" in expect:
            rows = self.hub.store.dead_letters(limit=10_000)
            self._match_list(expect["dead_letters"], rows, (*base, "dead_letters"),
                             same=lambda e, a: e.get("route", a["route"]) == a["route"],
                             diff=_row_differences, label=_row_label,
                             none=_("no dead letter of route {name}"), noun=_("dead letters"),
                             name=lambda e: e.get("route", "?"))
        if "parked" in expect:
            rows = self.hub.store.parked_list(10_000)
            self._match_list(expect["parked"], rows, (*base, "parked"),
                             same=lambda e, a: e.get("route", a["route"]) == a["route"],
                             diff=_row_differences, label=_row_label,
                             none=_("no parked message of route {name}"),
                             noun=_("parked messages"), name=lambda e: e.get("route", "?"))
        if "verifications" in expect:
            self._check_verifications(expect["verifications"], (*base, "verifications"))
        if "runs" in expect:
            self._match_list(expect["runs"], self.recorder.runs, (*base, "runs"),
                             in_order=in_order, same=lambda e, a: e["route"] == a["route"],
                             diff=lambda e, a: differences(
                                 {k: v for k, v in e.items() if k != "route"}, a),
                             label=lambda a: f"{a['route']}: {a['outcome']}",
                             none=_("route {name} did not run"), noun=_("route runs"),
                             name=lambda e: e["route"])

    def _match_list(self, expected: list[Mapping[str, Any]], actual: list[Any], path: Path_, *,
                    same: Callable[[Any, Any], bool], diff: Callable[[Any, Any], list[str]],
                    label: Callable[[Any], str], none: str, noun: str,
                    name: Callable[[Any], str], in_order: bool = False) -> None:
        if not expected:
            if actual:
                self._fail(path, _("expected no {noun}, got {n}", noun=noun, n=len(actual)),
                           [label(a) for a in actual[:10]])
            return
        found = {(i, j): not diff(e, a) for i, e in enumerate(expected)
                 for j, a in enumerate(actual) if same(e, a)}
        matched = assign(len(expected), len(actual), lambda i, j: found.get((i, j), False),
                         in_order=in_order)
        unordered = assign(len(expected), len(actual),
                           lambda i, j: found.get((i, j), False)) if in_order else matched
        for i, want in enumerate(expected):
            if i in matched:
                continue
            here = (*path, i)
            candidates = [a for a in actual if same(want, a)]
            if not candidates:
                self._fail(here, none.format(name=name(want)),
                           [_("{noun}: {list}", noun=noun,
                              list=", ".join(label(a) for a in actual[:20]) or "-")])
                continue
            if in_order and len(unordered) == len(expected):
                self._fail(here, _("{name} came, but not in the expected order",
                                   name=name(want)),
                           [_("in order: {list}", list=", ".join(label(a) for a in actual[:20]))])
                continue
            best = min(candidates, key=lambda a: len(diff(want, a)))
            details = diff(want, best) or [_("it matched another expectation of this list")]
            self._fail(here, _("no {name} matched; the closest of {n}:", name=name(want),
                               n=len(candidates)), details)

    def _check_progress(self, expected: Any, path: Path_) -> None:
        items = expected if isinstance(expected, list) else [expected]
        for i, want in enumerate(items):
            here = (*path, i) if isinstance(expected, list) else path
            business_no = str(want.get("business_no") or self.case.business_no)
            if not business_no:
                self._fail(here, _("say which case: business_no here or in the case"))
                continue
            tenant = str(want.get("tenant") or self.hub.tenant)
            row = self.hub.store.progress(tenant, business_no)
            if row is not None:
                row = {**row, **self._submitter(tenant, business_no)}
            if row is None:
                self._fail(here, _("case {business_no} has no progress", business_no=business_no))
                continue
            found = differences({k: v for k, v in want.items() if k not in ("business_no",
                                                                           "tenant")}, row)
            if found:
                self._fail(here, _("the progress of case {business_no} differs",
                                   business_no=business_no), found)

    def _submitter(self, tenant: str, business_no: str) -> dict[str, Any]:
        """Who submitted the case (the store keeps it beside the progress row)."""
        from sqlalchemy import select

        from bdchub.core.store import submitters

        with self.hub.store.engine.connect() as conn:
            row = conn.execute(select(submitters).where(
                submitters.c.tenant == tenant, submitters.c.business_no == business_no)).first()
        return {"submitted_by": row.client, "submitted_channel": row.channel} if row else {}

    def _check_verifications(self, expected: list[Mapping[str, Any]], path: Path_) -> None:
        by_case: dict[str, list[dict[str, Any]]] = {}
        for want in expected:
            business_no = str(want.get("business_no") or self.case.business_no)
            if business_no not in by_case:
                by_case[business_no] = self.hub.store.verifications_for(business_no)
        rows = [r for rows in by_case.values() for r in rows]
        self._match_list(expected, rows, path,
                         same=lambda e, a: e["kind"] == a["kind"] and str(
                             e.get("business_no") or self.case.business_no) == a["business_no"],
                         diff=_verification_differences,
                         label=lambda a: f"{a['kind']} ({a['business_no']})",
                         none=_("no verification record of kind {name}"),
                         noun=_("verification records"), name=lambda e: e["kind"])

    def _trace(self) -> list[str]:
        lines = [_("call {name}{by}: {answer} {payload}", name=c.name, by=_by(c),
                   answer=c.answer, payload=show(c.payload, 200)) for c in self.calls]
        lines += [_("published {type} ({business_no}) {body}", type=e.type,
                    business_no=e.business_no, body=show(e.body, 200))
                  for e in self.recorder.published if e.id not in self.inputs]
        lines += [_("route {route}: {outcome} ({type})", **run) for run in self.recorder.runs]
        lines += [_("reply {method} {path}: {status} {body}", method=m, path=p, status=s,
                    body=show(b, 200)) for m, p, s, b in self.replies]
        return lines


def _by(call: CallRecord) -> str:
    return f" [{call.route}]" if call.route else ""


def _names(named: str, call: CallRecord) -> bool:
    connector, _sep, operation = named.partition(".")
    return call.connector == connector and (not operation or call.is_(operation))


def _type_matches(pattern: str, type_: str) -> bool:
    from bdchub.core.broker import topic_matches

    return topic_matches(pattern, type_)


def _call_differences(want: Mapping[str, Any], call: CallRecord) -> list[str]:
    out: list[str] = []
    if "payload" in want:
        out += differences(want["payload"], call.payload, "payload")
    if "payload_equals" in want:
        out += differences(want["payload_equals"], call.payload, "payload", exact=True)
    return out + where_differences(wheres(want), call.payload, "payload")


def _message_differences(want: Mapping[str, Any], env: Envelope) -> list[str]:
    out: list[str] = []
    for key in ("business_no", "tenant", "source"):
        if key in want and want[key] != getattr(env, key):
            out.append(_("{path}: expected {expected}, got {actual}", path=key,
                         expected=show(want[key]), actual=show(getattr(env, key))))
    if "headers" in want:
        out += differences(want["headers"], dict(env.headers), "headers")
    if "body" in want:
        out += differences(want["body"], env.body, "body")
    if "body_equals" in want:
        out += differences(want["body_equals"], env.body, "body", exact=True)
    return out + where_differences(wheres(want), env.body, "body")


def _row_differences(want: Mapping[str, Any], row: Mapping[str, Any]) -> list[str]:
    out = differences({k: v for k, v in want.items() if k not in ("route", "error")}, row)
    if "error" in want and want["error"] not in str(row.get("last_error") or ""):
        out.append(_("error: expected it to contain {expected}, got {actual}",
                     expected=show(want["error"]), actual=show(row.get("last_error"), 300)))
    return out


def _row_label(row: Mapping[str, Any]) -> str:
    said = show(str(row.get("last_error") or ""), 200)
    return f"{row['route']} {row.get('step', '')} {row.get('reason', '')}: {said}"


def _verification_differences(want: Mapping[str, Any], row: Mapping[str, Any]) -> list[str]:
    out = differences({k: v for k, v in want.items()
                       if k in ("connector", "operation")}, row)
    if "result" in want:
        out += differences(want["result"], row["result"], "result")
    if "result_equals" in want:
        out += differences(want["result_equals"], row["result"], "result", exact=True)
    return out + where_differences(wheres(want), row["result"], "result")


# -- a whole run --------------------------------------------------------------------------

@dataclass
class Report:
    results: list[CaseResult]
    seconds: float

    @property
    def failed(self) -> list[CaseResult]:
        return [r for r in self.results if r.outcome == "failed"]

    def count(self, outcome: str) -> int:
        return sum(1 for r in self.results if r.outcome == outcome)


def run(files: list[TestFile], *, select: str = "",
        on_result: Callable[[CaseResult], None] | None = None) -> Report:
    """Run every case of ``files`` (those whose name contains ``select``)."""
    started = time.perf_counter()
    results = []
    kinds: dict[int, _Connectors] = {}
    for test in files:
        # Files of one config (and environment) share it: see configtest_spec.load.
        connectors = kinds.setdefault(id(test.config), _Connectors(test.config))
        for case in test.cases:
            if select and select not in case.name:
                continue
            result = CaseRun(test, case, connectors).run()
            results.append(result)
            if on_result is not None:
                on_result(result)
    return Report(results, time.perf_counter() - started)
