"""Serving the inbound application in the foreground: ``hub run``'s processes
and the benchmarks.

``serve`` runs the hub's own server, ``web.loopserver``: an event loop that
answers request/reply routes in greenlets and hands blocking work to
``threads`` worker threads (see that module for why; ``loopserver.start``
serves in a background thread instead)::

    app = create_app(hub, config)
    serve(app, "127.0.0.1", 8080, threads=8)       # blocks until SIGTERM or ^C

One process serves as fast as one interpreter lock lets it: on a machine with
cores to spare, ``serve(..., processes=N)`` binds the listening socket once
and forks N server processes that all accept on it (the kernel hands each new
connection to whichever process is free to take it). Each process needs its
own hub, because threads, database connections and locks do not survive a
fork; ``app`` is then a ``PerProcess`` that builds the application in every
process after the fork::

    def build():
        hub = Hub.from_config(config)
        hub.start()
        return create_app(hub, config)

    serve(PerProcess(build, close=lambda app: app.hub.stop(timeout=5)),
          "0.0.0.0", 8080, threads=8, processes=2)

The processes build their applications one after the other (a store or a
broker started for the first time must not be created twice at once), then
share everything through the broker and the store, as separate workers do.
If one server process dies, ``serve`` stops the others and raises: the
service manager restarts the whole.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable
from typing import Any

from .loopserver import LoopServer, listen

log = logging.getLogger("bdchub.web")


class PerProcess:
    """An application built in each server process: ``build()`` makes it after the
    fork, ``close(app)`` (optional) tears it down when that process stops.
    ``index`` tells ``build`` which process it runs in (0 for the first), for work
    only one of them should do."""

    def __init__(self, build: Callable[[], Any], close: Callable[[Any], None] | None = None):
        self.build = build
        self.close = close
        self.index = 0


def serve(app: Any, host: str = "127.0.0.1", port: int = 8080, threads: int = 8,
          processes: int = 1, **options: Any) -> None:
    """Serve ``app`` (a WSGI application or a ``PerProcess``) until interrupted.
    ``processes`` > 1 forks that many servers on one socket (``app`` must then be
    a ``PerProcess``); ``threads`` is per process. ``options`` go to
    ``web.loopserver.LoopServer`` as they are."""
    if processes <= 1:
        _serve_one(app, threads, options, host=host, port=port)
        return
    if not isinstance(app, PerProcess):
        raise TypeError("serve(processes>1) needs a PerProcess: an application (and its "
                        "hub) cannot be shared across a fork")
    if threading.active_count() > 1:
        log.warning("forking %d server processes while %d threads run: build the hub in "
                    "PerProcess, not before serve", processes, threading.active_count())
    listener = listen(host, port, int(options.pop("backlog", 1024)))
    children: list[int] = []
    stopping = False

    def stop(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signals = {signal.SIGTERM, signal.SIGINT}
    previous = {sig: signal.signal(sig, stop) for sig in signals}
    failed: tuple[int, int] | None = None
    try:
        for n in range(processes):
            if stopping:
                break
            app.index = n  # read by build() in the child
            pid, ready = _fork(app, threads, options, listener, signals)
            children.append(pid)
            # One build at a time: first starts of a store or a broker must not race.
            with os.fdopen(ready, "rb") as pipe:
                built = pipe.read(1)
            if not built:  # it died building; wait() below tells how
                break
        while children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            if pid in children:
                children.remove(pid)
            if not stopping:
                failed = failed or (pid, os.waitstatus_to_exitcode(status))
                stop(signal.SIGTERM, None)  # one gone: stop the rest, the manager restarts us
    finally:
        if children:  # left early (a fork failed): no server process outlives serve
            stop(signal.SIGTERM, None)
            for pid in children:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        listener.close()
    if failed is not None:
        raise RuntimeError(f"web server process {failed[0]} exited with {failed[1]}")


def _fork(app: PerProcess, threads: int, options: dict[str, Any], listener: socket.socket,
          signals: set[signal.Signals]) -> tuple[int, int]:
    """A server process; returns its pid and a pipe it writes one byte to once its
    application is built (closed without a byte if it could not build it)."""
    ready, told = os.pipe()
    # Held across the fork: the child must never run the parent's handler.
    signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child, which never returns
            os.close(ready)
            _child(app, threads, options, listener, signals, told)
    except BaseException:
        os.close(ready)
        os.close(told)
        raise
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, signals)
    os.close(told)
    return pid, ready


def _child(app: PerProcess, threads: int, options: dict[str, Any], listener: socket.socket,
           signals: set[signal.Signals], told: int) -> None:  # pragma: no cover - forked
    code = 0
    try:
        # SIGTERM ends the server's wait like ^C does, so the application is torn down.
        for sig in signals:
            signal.signal(sig, _exit_on_signal)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, signals)

        def built() -> None:
            os.write(told, b"1")
            os.close(told)

        _serve_one(app, threads, options, built=built, sockets=[listener])
    except SystemExit:
        pass  # stopped by a signal before or after serving: a clean stop
    except BaseException:  # noqa: BLE001 - a child reports and exits, never returns
        log.exception("web server process %d failed", os.getpid())
        code = 1
    finally:
        logging.shutdown()
        os._exit(code)


def _exit_on_signal(signum: int, _frame: Any) -> None:
    # Once: a second ^C must not cut the teardown the first one started.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise SystemExit(0)


def _serve_one(app: Any, threads: int, options: dict[str, Any],
               built: Callable[[], None] | None = None, *, host: str = "127.0.0.1",
               port: int = 0, sockets: list[socket.socket] | None = None) -> None:
    """One process's server (``web.loopserver``), in the foreground until a signal."""
    application = app.build() if isinstance(app, PerProcess) else app
    previous = None
    if sockets is None and threading.current_thread() is threading.main_thread():
        # SIGTERM (the service manager's stop) ends the wait below as ^C does.
        previous = signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        server = LoopServer(application, host, port, threads=threads,
                            sock=sockets[0] if sockets else None, **options).start()
        try:
            if built is not None:
                built()
            while not server.wait(1.0):  # in steps: signals are handled between them
                pass
        finally:
            server.close()
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if isinstance(app, PerProcess) and app.close is not None:
            app.close(application)
