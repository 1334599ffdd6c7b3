"""core.greenloop: synchronous code on an event loop, suspended only where it waits."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from bdchub.core import greenloop

LANG: contextvars.ContextVar[str] = contextvars.ContextVar("lang", default="zh_CN")


def on_loop(fn, *args, executor=None):
    async def main():
        return await greenloop.run(fn, *args, executor=executor)

    return asyncio.run(main())


def test_a_plain_call_returns_its_value_and_knows_it_is_on_the_loop():
    assert on_loop(lambda a, b: (a + b, greenloop.on_loop()), 2, 3) == (5, True)
    assert greenloop.on_loop() is False


def test_await_returns_the_awaitables_result_and_raises_its_error():
    async def answer():
        await asyncio.sleep(0)
        return 42

    async def fail():
        raise ValueError("department said no")

    def body():
        got = greenloop.await_(answer())
        with pytest.raises(ValueError, match="said no"):
            greenloop.await_(fail())
        return got

    assert on_loop(body) == 42


def test_an_error_in_the_synchronous_code_reaches_the_awaiting_coroutine():
    def body():
        raise KeyError("missing")

    with pytest.raises(KeyError, match="missing"):
        on_loop(body)


def test_await_outside_the_loop_is_refused():
    async def never():
        return 1

    with pytest.raises(RuntimeError, match="outside"):
        greenloop.await_(never())


def test_waiting_requests_overlap_on_one_thread():
    """Ten requests that each sleep: they wait together, not one after another."""
    arrived: list[int] = []
    all_in = asyncio.Event

    async def main():
        gate = all_in()

        def request(n):
            arrived.append(n)
            if len(arrived) == 10:
                gate.set()
            greenloop.await_(asyncio.wait_for(gate.wait(), 5))  # times out if serialised
            return threading.get_ident()

        return await asyncio.gather(*(greenloop.run(request, n) for n in range(10)))

    threads = asyncio.run(main())
    assert len(set(threads)) == 1 and len(arrived) == 10


def test_sleep_yields_on_the_loop_and_blocks_elsewhere():
    order: list[str] = []

    async def main():
        def slow():
            greenloop.sleep(0.05)
            order.append("slow")

        def fast():
            order.append("fast")

        await asyncio.gather(greenloop.run(slow), greenloop.run(fast))

    asyncio.run(main())
    assert order == ["fast", "slow"]
    started = time.monotonic()
    greenloop.sleep(0.01)
    assert time.monotonic() - started >= 0.01


def test_blocking_runs_in_the_executor_with_the_callers_context():
    loop_thread: list[int] = []

    def body():
        loop_thread.append(threading.get_ident())
        LANG.set("en")
        return greenloop.blocking(lambda: (threading.get_ident(), LANG.get()))

    with ThreadPoolExecutor(2) as pool:
        ident, lang = on_loop(body, executor=pool)
    assert ident != loop_thread[0] and lang == "en"
    # Off the loop it is a plain call in the caller's thread.
    assert greenloop.blocking(threading.get_ident) == threading.get_ident()


def test_context_variables_follow_each_request_and_stay_apart():
    async def main():
        def request(lang):
            LANG.set(lang)
            greenloop.sleep(0.01)
            return LANG.get()

        return await asyncio.gather(*(greenloop.run(request, x) for x in ["en", "zh_CN"] * 5))

    assert asyncio.run(main()) == ["en", "zh_CN"] * 5
    assert LANG.get() == "zh_CN"


def test_acquire_waits_for_a_slot_held_by_another_request_without_blocking_the_loop():
    sem = threading.BoundedSemaphore(1)
    log: list[str] = []

    async def main():
        def holder():
            assert greenloop.acquire(sem, 1.0)
            log.append("held")
            greenloop.sleep(0.05)
            sem.release()

        def waiter():
            ok = greenloop.acquire(sem, 2.0)  # a blocking acquire here would deadlock
            log.append("got" if ok else "gave up")
            sem.release()

        def impatient():
            greenloop.sleep(0.005)
            log.append("impatient " + ("got" if greenloop.acquire(sem, 0.001) else "gave up"))

        await asyncio.gather(greenloop.run(holder), greenloop.run(waiter),
                             greenloop.run(impatient))

    asyncio.run(main())
    assert log == ["held", "impatient gave up", "got"]


def test_gather_runs_calls_at_once_and_returns_errors_in_place():
    async def main():
        def fanout():
            def ok(n):
                return lambda: (greenloop.sleep(0.01), n)[1]

            def bad():
                raise LookupError("court endpoint down")

            return greenloop.gather([ok(1), bad, ok(3)])

        return await greenloop.run(fanout)

    first, error, third = asyncio.run(main())
    assert (first, third) == (1, 3)
    assert isinstance(error, LookupError)
    with pytest.raises(RuntimeError, match="outside"):
        greenloop.gather([lambda: 1])
