"""What ops read in the hub's log: one WARNING for each breaker change, park,
dead letter, poller failure and refused signature (once, not once a retry),
carrying the message id, the masked business number, the route, the step and the
tenant where known; and the log written as JSON lines when the config says so."""

from __future__ import annotations

import io
import json
import logging

import pytest

from bdchub.core.errors import RecoverableError
from tests.routes.helpers import Clock, application, echo, fake, make_hub


def warnings(caplog: pytest.LogCaptureFixture, event: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records
            if r.levelno == logging.WARNING and getattr(r, "event", None) == event]


def test_one_warning_per_breaker_state_change_not_per_refused_call(caplog):
    from bdchub.connectors.resilience import CircuitBreaker

    clock = Clock()
    breaker = CircuitBreaker("tax", failures=2, reset_after=30, clock=clock)
    caplog.set_level(logging.INFO)
    for _ in range(5):  # two failures open it; the next three only hit the open breaker
        try:
            breaker.acquire()
            breaker.record_failure()
        except RecoverableError:
            pass
    clock.advance(31)
    trial = breaker.acquire()
    breaker.record_success(trial)
    changes = [(r.previous, r.state, r.connector) for r in warnings(caplog, "breaker.changed")]
    assert changes == [("closed", "open", "tax"), ("open", "half-open", "tax"),
                       ("half-open", "closed", "tax")]
    assert warnings(caplog, "breaker.changed")[0].getMessage() == \
        "circuit of connector tax: closed -> open"


class Down:
    def __call__(self, op, payload, ctx):
        raise RecoverableError("tax endpoint down", connector="tax", operation=op)


ROUTES = {"tax": {"from": "application.submitted",
                  "on_error": {"retry": {"attempts": 3, "backoff": 0.5}, "park_for": 30,
                               "park_max": 2},
                  "steps": [{"enrich": {"connector": "legacy", "operation": "lookup",
                                        "into": "legacy"}},
                            {"to": {"connector": "tax", "operation": "declare"}}]}}


def test_one_warning_per_parking_and_per_dead_letter_with_the_message_context(caplog):
    clock = Clock()
    hub = make_hub(ROUTES, {"legacy": fake("legacy", echo), "tax": fake("tax", Down())},
                   clock=clock)
    caplog.set_level(logging.INFO)
    env = hub.send("application.submitted", application("320684-2026-000042"))
    hub.run_until_idle()
    # Three attempts (two retries), one parking: one warning.
    [parked] = warnings(caplog, "message.parked")
    assert parked.getMessage().startswith(
        "route tax: message parked at step 1:to (parking 1), tried again in 30 s: "
        "RecoverableError: tax endpoint down")
    assert (parked.route, parked.step, parked.tenant, parked.business_no) == (
        "tax", "1:to", "320684", "3206**********0042")
    assert parked.message_id == env.id
    for _ in range(2):
        clock.advance(31)
        hub.tick()
        hub.run_until_idle()
    assert len(warnings(caplog, "message.parked")) == 2
    [dead] = warnings(caplog, "message.dead_lettered")
    [row] = hub.dlq_list()
    assert dead.reason == "park_max" and dead.dead_letter_id == row["id"]
    assert f"see hub dlq show {row['id']}" in dead.getMessage()
    assert (dead.route, dead.business_no) == ("tax", "3206**********0042")
    # The business number is never in the log in full.
    assert "320684-2026-000042" not in caplog.text


class Refuses:
    """An endpoint whose error quotes the ID number it refused, as some do."""

    def __call__(self, op, payload, ctx):
        raise RecoverableError("证件号 320684198503120313 核验服务不可用", connector="tax",
                               operation=op)


def test_an_error_quoting_an_id_number_is_logged_masked():
    import logging as _logging

    stream = io.StringIO()
    handler = _logging.StreamHandler(stream)
    _logging.getLogger("bdchub").addHandler(handler)
    try:
        hub = make_hub(ROUTES, {"legacy": fake("legacy", echo), "tax": fake("tax", Refuses())},
                       clock=Clock())
        hub.send("application.submitted", application("320684-2026-000043"))
        hub.run_until_idle()
    finally:
        _logging.getLogger("bdchub").removeHandler(handler)
    logged = stream.getvalue()
    assert "message parked" in logged
    assert "320684198503120313" not in logged and "核验服务不可用" in logged


class Failing:
    def __init__(self):
        self.fail = True
        self.calls = 0

    def call(self, operation, payload, context=None):
        self.calls += 1
        if self.fail:
            raise RecoverableError("court endpoint down", connector="court",
                                   operation=operation)
        return {"Order": []}


def test_one_warning_when_a_poller_starts_failing_and_a_line_when_it_works_again(
        caplog, tmp_path):
    import threading

    from bdchub.app.pollers import CursorStore, Poller
    from bdchub.core.store import Store

    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    court = Failing()
    poller = Poller("court_orders", {"connector": "court", "operation": "PullJudgments",
                                     "every": 0.001, "items": "Order",
                                     "publish": "court.order_received"},
                    connector=court, publish=lambda env: None, tenant="320684",
                    cursors=CursorStore(store.engine))
    stop = threading.Event()
    caplog.set_level(logging.DEBUG)

    def until(calls: int):
        def wait(_seconds: float) -> bool:
            if court.calls >= calls:
                stop.set()
            return stop.is_set()
        return wait

    stop.wait = until(5)  # type: ignore[method-assign] - five polls, no real waiting
    poller.run(stop)
    [failed] = warnings(caplog, "poller.failed")
    assert failed.poller == "court_orders"
    assert failed.getMessage() == ("poller court_orders failed: court endpoint down; it tries "
                                   "again at its next poll")
    court.fail = False
    stop.clear()
    stop.wait = until(7)  # type: ignore[method-assign]
    poller.run(stop)
    assert len(warnings(caplog, "poller.failed")) == 1
    assert [r.levelno for r in caplog.records
            if getattr(r, "event", None) == "poller.recovered"] == [logging.INFO]
    store.close()


def test_one_warning_per_refused_signature_naming_the_client(caplog):
    from werkzeug.test import Client

    from bdchub.web.app import create_app
    from bdchub.web.fake import FakeHub
    from bdchub.web.signing import signed_headers
    from tests.web.conftest import APP_KEY, config

    app = create_app(FakeHub(), config())
    caplog.set_level(logging.INFO)
    raw = b"{}"
    headers = signed_headers(APP_KEY, "not-the-secret-0123456789", "POST",
                             "/api/v1/applications", raw)
    answer = Client(app).post("/api/v1/applications", data=raw,
                              headers={**headers, "Content-Type": "application/json"})
    assert answer.status_code == 401
    [refused] = warnings(caplog, "signature.refused")
    assert refused.client == "county_window" and refused.code == "bad_signature"
    assert APP_KEY in refused.getMessage() and "/api/v1/applications" in refused.getMessage()

    # The same client retrying with the wrong secret: counted, not one warning each.
    for _attempt in range(5):
        headers = signed_headers(APP_KEY, "not-the-secret-0123456789", "POST",
                                 "/api/v1/applications", raw)
        assert Client(app).post("/api/v1/applications", data=raw, headers={
            **headers, "Content-Type": "application/json"}).status_code == 401
    assert len(warnings(caplog, "signature.refused")) == 1


def test_refused_signatures_of_a_minute_are_counted_into_one_warning(caplog):
    from types import SimpleNamespace

    from bdchub.web.intake import SignatureWarnings
    from bdchub.web.signing import AuthFailure

    clock = Clock(0.0)
    throttle = SignatureWarnings(window=60.0, clock=clock)
    caplog.set_level(logging.INFO)

    def refused(address: str, client: str | None = "bank") -> None:
        headers = {"REMOTE_ADDR": address, "HTTP_X_APP_KEY": "ik-bank"}
        req = SimpleNamespace(client=SimpleNamespace(name=client) if client else None,
                              endpoint="/api/v1/bank/mortgages", path="/x",
                              header=headers.get)
        throttle.note(req, AuthFailure("bad_signature", "signature_mismatch"))

    for _n in range(5):
        refused("10.0.0.7")
    refused("10.0.0.8")  # another address is another warning
    assert [(w.count, "10.0.0.7" in w.getMessage()) for w in
            warnings(caplog, "signature.refused")] == [(1, True), (1, False)]
    clock.advance(61)
    refused("10.0.0.7")  # after the minute: the four held back are written, then counted
    found = warnings(caplog, "signature.refused")
    assert len(found) == 3 and found[2].count == 4 and found[2].client == "bank"
    assert "4 times in the last minute" in found[2].getMessage()


def test_the_log_is_json_lines_with_the_message_context_when_the_config_says_so():
    from bdchub.core.logs import configure, log_context

    out = io.StringIO()
    handler = configure({"format": "json", "level": "WARNING"}, stream=out)
    try:
        log = logging.getLogger("bdchub.test")
        with log_context(message_id="m-1", business_no="320684-2026-000042", route="tax",
                         tenant="320684"), log_context(step="1:to"):
            log.info("not written: below the level")
            log.warning("parked", extra={"event": "message.parked"})
        [line] = out.getvalue().splitlines()
        record = json.loads(line)
        assert {k: record[k] for k in ("level", "logger", "message", "message_id",
                                       "business_no", "route", "step", "tenant", "event")} == {
            "level": "WARNING", "logger": "bdchub.test", "message": "parked",
            "message_id": "m-1", "business_no": "3206**********0042", "route": "tax",
            "step": "1:to", "tenant": "320684", "event": "message.parked"}
        assert record["time"][:2] == "20"
    finally:
        logging.getLogger().removeHandler(handler)


def test_the_text_log_keeps_its_lines_and_appends_the_context():
    from bdchub.core.logs import configure, log_context

    out = io.StringIO()
    handler = configure({"format": "text"}, level="DEBUG", stream=out)
    try:
        with log_context(route="tax", message_id="m-1"):
            logging.getLogger("bdchub.test").debug("hello")
        assert out.getvalue().rstrip().endswith(
            "DEBUG bdchub.test: hello [message_id=m-1 route=tax]")
    finally:
        logging.getLogger().removeHandler(handler)
