"""Production server for the inbound application: waitress (ZPL 2.1, pure Python).

waitress was chosen because it is pure Python, threaded, mature, and keeps
slow or malicious clients off the worker threads: its asyncore loop reads a
whole request (headers and body, bounded by ``max_request_body_size``) before
a worker thread sees it, and it writes answers the same way. That makes the
worker count (``threads``) the only concurrency knob and stops slowloris-style
clients from pinning workers.

    app = create_app(hub, config)
    serve(app, "127.0.0.1", 8080, threads=8)       # blocks until stopped

``start(app, host, port)`` runs it in a background thread and returns a handle
with ``.port`` and ``.close()`` (tests, ``hub sandbox``).
"""

from __future__ import annotations

import threading
from typing import Any

from waitress import wasyncore
from waitress.server import create_server

#: Room above the application's own limit so the app (not waitress) answers an
#: oversized body with its JSON 413 and an audit record; waitress still cuts
#: anything far beyond it without buffering it.
BODY_HEADROOM = 1024 * 1024


def _options(app: Any, threads: int, options: dict[str, Any]) -> dict[str, Any]:
    limit = getattr(app, "max_body", None)
    merged: dict[str, Any] = {
        "threads": threads,
        "ident": "bdc-hub",
        "channel_timeout": 60,
        "connection_limit": 1000,
        "clear_untrusted_proxy_headers": True,
        "expose_tracebacks": False,
        "asyncore_use_poll": True,
    }
    if limit:
        merged["max_request_body_size"] = int(limit) + BODY_HEADROOM
    merged.update(options)
    return merged


def serve(app: Any, host: str = "127.0.0.1", port: int = 8080, threads: int = 8,
          **options: Any) -> None:
    """Serve ``app`` until interrupted. ``options`` go to waitress as they are."""
    server = create_server(app, host=host, port=port, **_options(app, threads, options))
    try:
        server.run()
    finally:
        server.close()


class RunningServer:
    """A server running in a daemon thread; ``close()`` stops it and its connections."""

    def __init__(self, server: Any):
        self._server = server
        self.host, self.port = server.socket.getsockname()[:2]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"web-{self.port}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        server = self._server
        try:
            while not self._stop.is_set():
                wasyncore.loop(timeout=1.0, map=server._map, use_poll=True, count=1)
        finally:
            # In the loop's own thread: asyncore channels are not thread-safe.
            for channel in list(server._map.values()):
                if channel is not server and channel is not server.trigger:
                    channel.close()
            server.task_dispatcher.shutdown(timeout=5)
            server.close()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def close(self) -> None:
        if not self._stop.is_set():
            self._stop.set()
            self._server.pull_trigger()  # wake the loop now rather than at its timeout
        self._thread.join(timeout=10)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def start(app: Any, host: str = "127.0.0.1", port: int = 0, threads: int = 4,
          **options: Any) -> RunningServer:
    """Serve ``app`` in the background; ``port=0`` takes a free one."""
    return RunningServer(create_server(app, host=host, port=port,
                                       **_options(app, threads, options)))
