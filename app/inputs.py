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
from collections.abc import Callable, Mapping
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
    publishing, objects acknowledged after publishing, imports staged).

    ``build`` makes a new target like this one: a singleton that lost its lease
    and takes it again runs a new one (``renew``), not the stopped one, whose
    threads may still be ending."""

    def __init__(self, name: str, target: Any, path: Path | None = None,
                 build: Callable[[], Any] | None = None):
        self.name = name
        self.target = target
        self.path = path  # the folder a watch looks at, for the operator
        self.build = build

    def start(self) -> None:
        self.target.start()

    def renew(self) -> None:
        if self.build is not None:
            self.target = self.build() or self.target

    def stop(self, timeout: float = 10.0) -> None:
        self.target.stop(timeout)

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self.target.stop(timeout=0)


def singleton_inputs(config: Mapping[str, Any], hub: Any, *,
                     leased: bool = True) -> list[Input]:
    """The inputs one process of a deployment runs, not every worker: the pollers
    (a department is polled once), the reconciler (a stuck case is asked about
    once), the diode inbox and the ferry inbox (a disc is imported once). Each
    runs under its lease in the hub's store (``app.singletons``), so whichever
    process holds it runs it; ``leased=False``: bare, for a caller that knows it
    is alone."""
    found = []
    for name, build in _builders(config, hub).items():
        target = build()
        if target is not None:
            watched = _WATCHED.get(name)
            found.append(Background(name, target, watched(target) if watched else None, build))
    if not leased:
        return found
    from .singletons import leased as under_lease

    return list(under_lease(found, hub.store.engine))


#: The folder each bridge watch looks at, for the operator.
_WATCHED: dict[str, Callable[[Any], Path]] = {
    "bridge.diode_inbox": lambda watch: watch.publisher.inbox,
    "bridge.ferry_inbox": lambda watch: watch.folder,
}


def _builders(config: Mapping[str, Any], hub: Any) -> dict[str, Callable[[], Any]]:
    """By input name: what makes that singleton's target, or None when the config
    has none."""
    from .pollers import Pollers
    from .reconciler import Reconciler

    def pollers() -> Any:
        built = Pollers(config, connectors=hub.connectors, publish=hub.publish,
                        store_engine=hub.store.engine)
        return built if built.items else None

    def reconciler() -> Any:
        return Reconciler.from_config(config, hub)

    def diode_inbox() -> Any:
        from bdchub.bridge.publish import InboxWatch

        return InboxWatch.from_config(config, hub)

    def ferry_inbox() -> Any:
        from bdchub.bridge.ferry_inbox import FerryWatch

        return FerryWatch.from_config(config, hub, data_dir(config))

    found: dict[str, Callable[[], Any]] = {"pollers": pollers, "reconciler": reconciler}
    bridge = config.get("bridge") or {}
    if bridge.get("diode_inbox"):
        found["bridge.diode_inbox"] = diode_inbox
    if bridge.get("ferry_inbox"):
        found["bridge.ferry_inbox"] = ferry_inbox
    return found
