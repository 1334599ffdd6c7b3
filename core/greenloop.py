"""Synchronous hub code running on an asyncio event loop, one greenlet per request.

Why: a request/reply route spends most of its wall time waiting for a
department's answer. Served from a thread pool, every wait and wake-up is a
hand-over of the interpreter lock between threads, and on a small machine those
hand-overs cost more than the route itself. Here the inbound server runs each
such request in a greenlet on its event loop: the route engine, the connectors
and the policies stay ordinary synchronous code, and only the points that wait
(the outbound HTTP call, a back-off sleep) suspend the greenlet on an awaitable
while the loop serves other requests. Thousands of requests can wait on a slow
department at once without a thread each.

    result = await greenloop.run(handle, request, executor=pool)   # on the loop

    # anywhere below handle(), in plain synchronous code:
    greenloop.on_loop()                 # True: waiting here would stall the loop
    greenloop.await_(coroutine)         # suspend this request until it completes
    greenloop.sleep(0.5)                # asyncio.sleep on the loop, time.sleep elsewhere
    greenloop.blocking(fn, *args)       # fn in the executor on the loop, inline elsewhere

Code that blocks and has no awaitable form (SQLite, a SOAP call through zeep,
an AMQP publish with confirms) goes through ``blocking``: on the loop it runs
in the server's thread pool, off the loop it is a plain call, so the same code
serves the workers, the CLI and the loop. ``acquire`` waits for a
``threading`` semaphore or lock without blocking the loop. The pattern is the
one SQLAlchemy's asyncio extension uses to drive its synchronous core.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor, Future
from typing import Any, TypeVar

import greenlet

T = TypeVar("T")

#: How often a greenlet polls a busy semaphore: first wait, then doubled up to the cap.
_POLL_FIRST = 0.0005
_POLL_CAP = 0.02


class _Request(greenlet.greenlet):
    """A greenlet that runs one call for ``run`` and hands awaitables back to it."""

    __slots__ = ("driver", "executor")

    def __init__(self, fn: Callable[..., Any], driver: greenlet.greenlet,
                 executor: Executor | None):
        super().__init__(fn, driver)
        self.driver = driver
        self.executor = executor


async def run(fn: Callable[..., T], *args: Any, executor: Executor | None = None,
              **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` on this loop, in a greenlet; every awaitable it passes
    to ``await_`` is awaited here, and what ``fn`` raises is raised here.
    ``executor`` serves the ``blocking`` calls below it (default: the loop's)."""
    task = _Request(fn, greenlet.getcurrent(), executor)
    # Context variables (the answer language, …) follow the request into its greenlet.
    task.gr_context = contextvars.copy_context()
    pending = task.switch(*args, **kwargs)
    while not task.dead:
        try:
            value = await pending
        except BaseException:  # noqa: BLE001 - handed to the greenlet, which decides
            pending = task.throw(*sys.exc_info())
        else:
            pending = task.switch(value)
    return pending


def on_loop() -> bool:
    """True inside ``run``: blocking here would stall every request on the loop."""
    return isinstance(greenlet.getcurrent(), _Request)


def await_(awaitable: Awaitable[T]) -> T:
    """Suspend the calling greenlet until ``awaitable`` completes; its result or
    exception. Only inside ``run`` (see ``on_loop``)."""
    current = greenlet.getcurrent()
    if not isinstance(current, _Request):
        if asyncio.iscoroutine(awaitable):
            awaitable.close()  # never awaited: say so once, not as a warning later
        raise RuntimeError("greenloop.await_ called outside greenloop.run")
    return current.driver.switch(awaitable)


def sleep(seconds: float) -> None:
    """``time.sleep``, but on the loop it lets the other requests run meanwhile."""
    if isinstance(greenlet.getcurrent(), _Request):
        await_(asyncio.sleep(max(0.0, seconds)))
    else:
        time.sleep(max(0.0, seconds))


def result(future: Future[T]) -> T:
    """``future.result()``; on the loop only the caller's greenlet waits for it, not
    the loop (a writer thread's answer, a group publisher's)."""
    if on_loop():
        return await_(asyncio.wrap_future(future))
    return future.result()


def blocking(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)``; on the loop it runs in the executor given to ``run``
    (with the caller's context variables) while the loop goes on."""
    current = greenlet.getcurrent()
    if not isinstance(current, _Request):
        return fn(*args, **kwargs)
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    return await_(asyncio.get_running_loop().run_in_executor(current.executor, call))


def acquire(lock: threading.Semaphore | threading.Lock, timeout: float) -> bool:
    """``lock.acquire(timeout=timeout)`` that does not block the loop: on the loop
    it polls, because the holders may be other greenlets of the same thread."""
    if not isinstance(greenlet.getcurrent(), _Request):
        return lock.acquire(timeout=max(0.0, timeout))
    deadline = time.monotonic() + max(0.0, timeout)
    pause = _POLL_FIRST
    while not lock.acquire(blocking=False):
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        await_(asyncio.sleep(min(pause, left)))
        pause = min(pause * 2, _POLL_CAP)
    return True


def gather(calls: list[Callable[[], T]]) -> list[T | BaseException]:
    """Every call at once, each in its own greenlet on the loop: their results (or
    what they raised), in order. Only inside ``run`` (see ``on_loop``)."""
    current = greenlet.getcurrent()
    if not isinstance(current, _Request):
        raise RuntimeError("greenloop.gather called outside greenloop.run")
    return await_(asyncio.gather(*(run(call, executor=current.executor) for call in calls),
                                 return_exceptions=True))
