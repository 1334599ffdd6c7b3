"""The inputs of a running hub, under one lifecycle.

An input is anything that brings messages in while the hub runs: the inbound
web server, the pollers, the reconciler, the diode inbox watch, the ferry
inbox watch. Each follows one protocol (after nameko's extensions)::

    start()          begin taking work; raises when it cannot
    stop(timeout)    graceful: take nothing new, let what is under way finish
    kill()           abrupt: take nothing new, wait for nothing; NEVER raises

``HubService`` starts the route workers, then the inputs in list order, and
stops them in reverse: nothing is accepted before a worker can take it, and
nothing new comes in while the workers drain. The adapters here give the
parts of the lower floors (``web.loopserver``, ``app.pollers``,
``bridge.publish.InboxWatch``, ``bridge.ferry_inbox.FerryWatch``) that
protocol and a name for the logs.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from bdchub.core.datadir import data_dir
from bdchub.core.errors import ConfigError
from bdchub.core.i18n import _

log = logging.getLogger("bdchub.service")


@runtime_checkable
class Input(Protocol):
    """One input of a running hub (see the module docstring)."""

    name: str

    def start(self) -> None: ...

    def stop(self, timeout: float = 10.0) -> None: ...

    def kill(self) -> None: ...


class InboundServer:
    """The inbound HTTP/SOAP endpoints, served by ``web.loopserver`` on its own
    event loop in a background thread."""

    name = "inbound"

    def __init__(self, hub: Any, config: Mapping[str, Any], host: str, port: int,
                 threads: int, readiness: Any = None):
        self.hub = hub
        #: what ``/readyz`` asks (``HubService.readiness``)
        self.readiness = readiness
        self.config = config
        self.host = host
        self.port = port
        self.threads = threads
        self.app: Any = None
        self.server: Any = None

    @property
    def url(self) -> str:
        if self.server is not None:
            return self.server.url
        return f"http://{self.host}:{self.port}"

    def endpoints(self) -> list[tuple[str, str, str]]:
        """(method, path, route) of the configured and route-declared endpoints."""
        if self.app is None:
            return []
        return [(e["method"], e["path"], e["route"]) for e in self.app.endpoints]

    def start(self) -> None:
        from bdchub.web import loopserver
        from bdchub.web.app import create_app

        self.app = create_app(self.hub, dict(self.config), readiness=self.readiness)
        try:
            self.server = loopserver.start(self.app, self.host, self.port, threads=self.threads)
        except OSError as exc:
            raise ConfigError(_("cannot listen on {host}:{port}: {error}", host=self.host,
                                port=self.port, error=exc.strerror or exc)) from exc

    def stop(self, timeout: float = 10.0) -> None:
        # LoopServer.close gives requests in flight its own grace period.
        server, self.server = self.server, None
        if server is not None:
            server.close()

    def kill(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            with contextlib.suppress(Exception):
                server.kill()


class Background:
    """An input that works in threads of its own and has ``start()`` and
    ``stop(timeout)``: the pollers and the bridge watches. Killing it asks it
    to stop and waits for nothing: its threads are daemons, and each of them
    leaves its work where the next start takes it up (cursors saved after
    publishing, objects acknowledged after publishing, imports staged)."""

    def __init__(self, name: str, target: Any, path: Path | None = None):
        self.name = name
        self.target = target
        self.path = path  # the folder a watch looks at, for the operator

    def start(self) -> None:
        self.target.start()

    def stop(self, timeout: float = 10.0) -> None:
        self.target.stop(timeout)

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self.target.stop(timeout=0)


def singleton_inputs(config: Mapping[str, Any], hub: Any) -> list[Background]:
    """The inputs one process of a deployment runs, not every worker: the pollers
    (a department is polled once), the reconciler (a stuck case is asked about
    once), the diode inbox and the ferry inbox (a disc is imported once)."""
    from .pollers import Pollers
    from .reconciler import Reconciler

    found = []
    pollers = Pollers(config, connectors=hub.connectors, publish=hub.publish,
                      store_engine=hub.store.engine)
    if pollers.items:
        found.append(Background("pollers", pollers))
    reconciler = Reconciler.from_config(config, hub)
    if reconciler is not None:
        found.append(Background("reconciler", reconciler))
    bridge = config.get("bridge") or {}
    if bridge.get("diode_inbox"):
        from bdchub.bridge.publish import InboxWatch

        watch = InboxWatch.from_config(config, hub)
        if watch is not None:
            found.append(Background("bridge.diode_inbox", watch, watch.publisher.inbox))
    if bridge.get("ferry_inbox"):
        from bdchub.bridge.ferry_inbox import FerryWatch

        ferry = FerryWatch.from_config(config, hub, data_dir(config))
        if ferry is not None:
            found.append(Background("bridge.ferry_inbox", ferry, ferry.folder))
    return found
