"""Retries, breaker and limits as specified, on a fake connector (no sockets)."""

from __future__ import annotations

import threading
import time

import pytest
from prometheus_client import CollectorRegistry

from bdchub import connectors
from bdchub.connectors.fake import FakeConnector
from bdchub.connectors.metrics import ConnectorMetrics, use_registry
from bdchub.connectors.resilience import (
    CircuitBreaker,
    ConcurrencyLimit,
    RetryPolicy,
    TokenBucket,
)
from bdchub.core.errors import (
    CircuitOpenError,
    PermanentError,
    RecoverableError,
    TimeoutError_,
)

from .helpers import FakeClock


@pytest.fixture
def metrics():
    return ConnectorMetrics(CollectorRegistry())


def sample(metrics, name, **labels):
    return metrics.registry.get_sample_value(name, labels) or 0.0


def scripted(*outcomes):
    """A handler answering with the outcomes in order (exceptions are raised)."""
    queue = list(outcomes)

    def handler(operation, payload, context):
        outcome = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return handler


def make(metrics, handler, block=None, sleeps=None):
    block = {"type": "fake", "retry": {"attempts": 3, "backoff": 0.01, "jitter": 0},
             **(block or {})}
    inner = FakeConnector("tax", block, handler=handler)
    record = sleeps.append if sleeps is not None else (lambda s: None)
    return connectors.build("tax", block, inner=inner, metrics=metrics, sleep=record)


# ------------------------------------------------------------------- retries

def test_recoverable_failures_are_retried_until_success(metrics):
    sleeps: list[float] = []
    conn = make(metrics, scripted(RecoverableError("503"), RecoverableError("503"), {"ok": 1}),
                sleeps=sleeps)
    assert conn.call("check", {}) == {"ok": 1}
    assert len(conn.inner.calls) == 3
    assert sleeps == [0.01, 0.02]  # exponential backoff
    assert sample(metrics, "bdchub_connector_retries_total", connector="tax",
                  operation="check") == 2
    assert sample(metrics, "bdchub_connector_calls_total", connector="tax",
                  operation="check") == 1


def test_permanent_errors_are_not_retried(metrics):
    conn = make(metrics, scripted(PermanentError("400 bad request")))
    with pytest.raises(PermanentError):
        conn.call("check", {})
    assert len(conn.inner.calls) == 1
    assert sample(metrics, "bdchub_connector_errors_total", connector="tax", operation="check",
                  error="permanent") == 1


def test_retries_stop_after_attempts_and_raise_the_last_error(metrics):
    conn = make(metrics, scripted(RecoverableError("down")))
    with pytest.raises(RecoverableError, match="down"):
        conn.call("check", {})
    assert len(conn.inner.calls) == 3
    assert sample(metrics, "bdchub_connector_errors_total", connector="tax", operation="check",
                  error="recoverable") == 1


def test_retry_waits_at_least_retry_after(metrics):
    sleeps: list[float] = []
    conn = make(metrics, scripted(RecoverableError("429", retry_after=2.5), "ok"), sleeps=sleeps)
    assert conn.call("check", {}) == "ok"
    assert sleeps == [2.5]


def test_retry_after_beyond_max_time_gives_up_with_the_hint(metrics):
    sleeps: list[float] = []
    conn = make(metrics, scripted(RecoverableError("busy", retry_after=120), "ok"),
                block={"retry": {"attempts": 5, "max_time": 30}}, sleeps=sleeps)
    with pytest.raises(RecoverableError) as info:
        conn.call("check", {})
    assert info.value.retry_after == 120  # the route can park the message that long
    assert sleeps == []


def test_retry_never_sleeps_past_the_callers_deadline(metrics):
    sleeps: list[float] = []
    conn = make(metrics, scripted(RecoverableError("busy", retry_after=5), "ok"), sleeps=sleeps)
    with pytest.raises(RecoverableError):
        conn.call("check", {}, connectors.CallContext(deadline=time.monotonic() + 1))
    assert sleeps == []


def test_backoff_is_capped_and_jittered():
    policy = RetryPolicy(backoff=1, max_backoff=4, jitter=0.5)
    waits = [policy.backoff_for(n) for n in range(1, 8)]
    assert all(1 <= w <= 1.5 for w in waits[:1])
    assert all(4 <= w <= 4.5 for w in waits[3:])


def test_inner_timeout_gets_the_attempt_deadline(metrics):
    seen = []

    def handler(operation, payload, context):
        seen.append(context.deadline - time.monotonic())
        return "ok"

    conn = make(metrics, handler, block={"timeout": 2})
    conn.call("check", {})
    conn.call("check", {}, connectors.CallContext(deadline=time.monotonic() + 0.5))
    assert 1.5 < seen[0] <= 2
    assert 0 < seen[1] <= 0.5


def test_an_expired_deadline_fails_as_timeout_without_calling(metrics):
    conn = make(metrics, scripted("ok"))
    with pytest.raises(TimeoutError_):
        conn.call("check", {}, connectors.CallContext(deadline=time.monotonic() - 1))
    assert conn.inner.calls == []


# ------------------------------------------------------------------- breaker

def test_breaker_opens_after_consecutive_failures_and_half_opens_after_reset():
    clock = FakeClock()
    states = []
    breaker = CircuitBreaker("tax", failures=3, reset_after=10, clock=clock,
                             on_change=states.append)
    for _ in range(3):
        trial = breaker.acquire()
        breaker.record_failure(trial)
    assert breaker.state == "open"
    with pytest.raises(CircuitOpenError) as info:
        breaker.acquire()
    assert info.value.retry_after == pytest.approx(10)
    clock.advance(10)
    assert breaker.state == "half-open"
    trial = breaker.acquire()
    assert trial is True
    with pytest.raises(CircuitOpenError):  # one trial at a time
        breaker.acquire()
    breaker.record_success(trial)
    assert breaker.state == "closed"
    assert states == ["open", "half-open", "closed"]


def test_breaker_reopens_when_the_trial_fails():
    clock = FakeClock()
    breaker = CircuitBreaker("tax", failures=1, reset_after=5, half_open_calls=2, clock=clock)
    breaker.record_failure(breaker.acquire())
    clock.advance(5)
    first, second = breaker.acquire(), breaker.acquire()
    assert first and second
    breaker.record_failure(first)
    assert breaker.state == "open"
    with pytest.raises(CircuitOpenError):
        breaker.check()


def test_a_success_resets_the_failure_count():
    breaker = CircuitBreaker("tax", failures=2)
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state == "closed"


def test_breaker_is_consistent_under_threads():
    breaker = CircuitBreaker("tax", failures=1601)
    barrier = threading.Barrier(8)

    def work():
        barrier.wait()
        for _ in range(200):
            breaker.record_failure(breaker.acquire())

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert breaker._consecutive == 1600
    assert breaker.state == "closed"
    breaker.record_failure()
    assert breaker.state == "open"


def test_open_circuit_fails_fast_without_calling_and_shows_in_metrics_and_health(metrics):
    conn = make(metrics, scripted(RecoverableError("down")),
                block={"retry": {"attempts": 1}, "breaker": {"failures": 2, "reset_after": 60}})
    for _ in range(2):
        with pytest.raises(RecoverableError):
            conn.call("check", {})
    with pytest.raises(CircuitOpenError):
        conn.call("check", {})
    assert len(conn.inner.calls) == 2
    assert conn.health().circuit == "open"
    assert sample(metrics, "bdchub_connector_circuit_state", connector="tax") == 2
    assert sample(metrics, "bdchub_connector_errors_total", connector="tax", operation="check",
                  error="circuit_open") == 1


def test_permanent_errors_do_not_open_the_circuit(metrics):
    conn = make(metrics, scripted(PermanentError("404")),
                block={"breaker": {"failures": 1}})
    for _ in range(3):
        with pytest.raises(PermanentError):
            conn.call("check", {})
    assert conn.breaker.state == "closed"


# -------------------------------------------------------------------- limits

def test_token_bucket_spaces_calls_beyond_the_burst():
    clock = FakeClock()
    bucket = TokenBucket(rate=2, burst=2, clock=clock, sleep=clock.advance)
    waits = [bucket.acquire(10) for _ in range(5)]
    assert waits[:2] == [0, 0]
    assert waits[2:] == pytest.approx([0.5, 0.5, 0.5])


def test_token_bucket_refuses_a_wait_longer_than_the_caller_has():
    clock = FakeClock()
    bucket = TokenBucket(rate=1, burst=1, clock=clock, sleep=clock.advance)
    bucket.acquire(0)
    with pytest.raises(RecoverableError) as info:
        bucket.acquire(0.2)
    assert info.value.retry_after == pytest.approx(1.0)
    clock.advance(1.0)
    assert bucket.acquire(0) == 0  # the refusal reserved nothing


def test_rate_limit_applies_to_calls_through_the_wrapper(metrics):
    sleeps: list[float] = []
    conn = make(metrics, scripted("ok"), block={"limits": {"rate": 10, "burst": 1}},
                sleeps=sleeps)
    conn.rate._sleep = sleeps.append
    for _ in range(3):
        conn.call("check", {})
    # The sleeps are recorded, not slept, so the reservations queue up: 0.1 s apart.
    assert sleeps == pytest.approx([0.1, 0.2], abs=0.01)


def test_concurrency_limit_waits_at_most_the_call_timeout(metrics):
    release = threading.Event()
    entered = threading.Event()

    def handler(operation, payload, context):
        entered.set()
        release.wait(5)
        return "ok"

    conn = make(metrics, handler, block={"limits": {"concurrency": 1}, "timeout": 0.2,
                                         "retry": {"attempts": 1}})
    worker = threading.Thread(target=conn.call, args=("check", {}))
    worker.start()
    assert entered.wait(5)
    assert sample(metrics, "bdchub_connector_in_flight", connector="tax", operation="check") == 1
    with pytest.raises(TimeoutError_, match="slot"):
        conn.call("check", {})
    release.set()
    worker.join(5)
    assert sample(metrics, "bdchub_connector_in_flight", connector="tax", operation="check") == 0


def test_concurrency_limit_slot_is_returned_after_errors():
    limit = ConcurrencyLimit(1)
    with pytest.raises(ValueError), limit.slot(1):
        raise ValueError
    with limit.slot(0.01):
        pass


# ------------------------------------------------------------------- metrics

def test_latency_histogram_and_calls_are_recorded_per_operation(metrics):
    conn = make(metrics, scripted("ok"))
    conn.call("check", {})
    conn.call("submit", {})
    assert sample(metrics, "bdchub_connector_latency_seconds_count", connector="tax",
                  operation="check") == 1
    assert sample(metrics, "bdchub_connector_calls_total", connector="tax",
                  operation="submit") == 1


def test_module_level_registry_can_be_swapped_for_tests():
    registry = CollectorRegistry()
    try:
        use_registry(registry)
        conn = connectors.build("t", {"type": "fake", "responses": {"x": 1}})
        assert conn.call("x", {}) == 1
        assert registry.get_sample_value("bdchub_connector_calls_total",
                                         {"connector": "t", "operation": "x"}) == 1
    finally:
        use_registry(None)


def test_build_gives_every_type_the_same_wrapper():
    conn = connectors.build("f", {"type": "fake", "responses": {"x": 1},
                                  "breaker": {"failures": 7}, "limits": {"concurrency": 2}})
    assert conn.type_name == "fake"
    assert conn.breaker.failures == 7
    assert conn.concurrency.limit == 2
    conn.open()
    conn.close()
    conn.close()  # idempotent
