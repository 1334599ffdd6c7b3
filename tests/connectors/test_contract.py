"""The connector contract, once, for every connector type over real sockets.

Each test is parameterised over ``targets`` (REST, SOAP 1.1, SOAP 1.2 and
AMQP behind a switchable proxy): whatever the protocol, a success returns the
mapped result, silence is a recoverable timeout, transient failures are
retried until they pass, refusals are permanent and not retried, the breaker
opens and recovers through half-open, the rate limit spaces calls, health
tells up from down, and close is idempotent.
"""

from __future__ import annotations

import time

import pytest

from bdchub.core.errors import CircuitOpenError, PermanentError, RecoverableError, TimeoutError_

from .helpers import FakeClock

FAST_RETRY = {"backoff": 0.01, "max_backoff": 0.05, "jitter": 0}


def retries(metrics, name, operation):
    return metrics.registry.get_sample_value(
        "bdchub_connector_retries_total", {"connector": name, "operation": operation}) or 0


def test_call_returns_the_mapped_result(target, metrics):
    conn = target.connector("dept", metrics, timeout=5)
    operation, payload = target.ok_call()
    with conn:
        target.check_ok(conn.call(operation, payload), payload)
    assert retries(metrics, "dept", operation) == 0


def test_silence_is_a_recoverable_timeout_within_the_deadline(target, metrics):
    conn = target.connector("dept", metrics, timeout=0.5, retry={"attempts": 1})
    operation, payload = target.ok_call()
    target.hang()
    started = time.monotonic()
    with conn, pytest.raises(TimeoutError_) as info:
        conn.call(operation, payload)
    assert info.value.recoverable
    # Bounded by the attempt timeout (with slack for a slow machine), not by the server.
    assert time.monotonic() - started < 4


def test_transient_failures_are_retried_then_succeed(target, metrics):
    conn = target.connector("dept", metrics, timeout=5, retry={"attempts": 4, **FAST_RETRY})
    operation, payload = target.ok_call()
    with conn:
        conn.call(*target.ok_call())  # connected before the faults start
        target.fail_next(2)
        target.check_ok(conn.call(operation, payload), payload)
    assert retries(metrics, "dept", operation) == 2


def test_refusals_are_permanent_and_not_retried(target, metrics):
    operation, payload, overrides = target.permanent_call()
    conn = target.connector("dept", metrics, timeout=5, retry={"attempts": 4, **FAST_RETRY},
                            **overrides)
    with conn, pytest.raises(PermanentError):
        conn.call(operation, payload)
    assert retries(metrics, "dept", operation) == 0


def test_breaker_opens_on_failures_and_recovers_through_half_open(target, metrics):
    clock = FakeClock()
    conn = target.connector("dept", metrics, clock=clock, timeout=5, retry={"attempts": 1},
                            breaker={"failures": 2, "reset_after": 30})
    operation, payload = target.ok_call()
    with conn:
        target.fail_always()
        for _ in range(2):
            with pytest.raises(RecoverableError):
                conn.call(operation, payload)
        seen = target.requests_seen()
        with pytest.raises(CircuitOpenError):
            conn.call(operation, payload)
        assert target.requests_seen() == seen  # failed fast, the endpoint was spared
        assert conn.health().circuit == "open"
        target.clear()
        clock.advance(30)
        assert conn.breaker.state == "half-open"
        target.check_ok(conn.call(operation, payload), payload)
        assert conn.breaker.state == "closed"


def test_failed_trial_call_opens_the_circuit_again(target, metrics):
    clock = FakeClock()
    conn = target.connector("dept", metrics, clock=clock, timeout=5, retry={"attempts": 1},
                            breaker={"failures": 1, "reset_after": 10})
    operation, payload = target.ok_call()
    with conn:
        target.fail_always()
        with pytest.raises(RecoverableError):
            conn.call(operation, payload)
        clock.advance(10)
        with pytest.raises(RecoverableError) as info:
            conn.call(operation, payload)
        assert not isinstance(info.value, CircuitOpenError)  # the trial reached the endpoint
        assert conn.breaker.state == "open"
    assert metrics.registry.get_sample_value("bdchub_connector_circuit_state",
                                             {"connector": "dept"}) == 2


def test_rate_limit_spaces_calls_beyond_the_burst(target, metrics):
    clock = FakeClock()
    waits: list[float] = []
    conn = target.connector("dept", metrics, clock=clock, sleep=waits.append, timeout=5,
                            limits={"rate": 4, "burst": 2})
    with conn:
        for _ in range(4):
            operation, payload = target.ok_call()
            target.check_ok(conn.call(operation, payload), payload)
    # Two from the burst, then a quarter second apart (recorded, not slept).
    assert waits == pytest.approx([0.25, 0.5])


def test_health_tells_up_from_down(target, metrics):
    conn = target.connector("dept", metrics, timeout=1)
    with conn:
        up = conn.health()
        assert up.up, up.detail
        assert up.latency_ms >= 0
        target.take_down()
        down = conn.health()
        assert not down.up
        assert down.detail


def test_close_is_idempotent_and_a_closed_connector_reopens(target, metrics):
    conn = target.connector("dept", metrics, timeout=5)
    conn.open()
    conn.close()
    conn.close()
    operation, payload = target.ok_call()
    target.check_ok(conn.call(operation, payload), payload)
    conn.close()
