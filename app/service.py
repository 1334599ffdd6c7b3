"""A whole hub process: the route workers and the inputs (``app.inputs``).

``hub run`` and ``hub demo`` both assemble it from a loaded config::

    service = HubService.from_config(core.config.load("config.yaml"))
    service.start()        # workers, then the inputs: inbound server, pollers,
    ...                    # diode inbox, ferry inbox
    service.reload("config.yaml")   # swap what changed (app.reload), or refuse
    service.stop()         # the reverse: nothing new comes in while work drains
    service.kill()         # or at once; never raises

Every input runs in background threads (the web server on its own event loop,
``web.loopserver``); the caller's thread stays free to wait for signals or
drive a demo.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from bdchub.core.errors import HubError
from bdchub.core.health import Part, probe
from bdchub.core.i18n import _

from .inputs import InboundServer, Input, singleton_inputs
from .reload import INPUT_GROUPS, Answer, Reloader, RunFile
from .status import StatusReporter

log = logging.getLogger("bdchub.service")


def prepare_paths(config: Mapping[str, Any]) -> None:
    """Create the folders of embedded SQLite broker and store files (``var/`` …)."""
    for block in ("broker", "store"):
        url = str((config.get(block) or {}).get("url") or "")
        for scheme in ("sqla+sqlite:///", "sqlite:///"):
            if url.startswith(scheme):
                path = url[len(scheme):].split("?", 1)[0]
                if path and path != ":memory:":
                    Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
                break


class HubService:
    """The route workers and the inputs of one hub. See the module docstring.

    ``inputs`` replaces the inputs the config describes (tests pass their own);
    ``web=False`` leaves out the inbound server (``hub run`` with several
    processes serves it itself); ``pollers=False`` leaves out the singleton
    inputs (the pollers, the reconciler and the bridge watches), which the processes
    of a deployment contend for: each runs in the one process that holds its lease
    (``app.singletons``). ``metrics_listener`` (default: ``pollers``): whether this
    process serves ``metrics.listen``, a port only one process can have."""

    def __init__(self, config: Mapping[str, Any], hub: Any, *, host: str | None = None,
                 port: int | None = None, web: bool | None = None, pollers: bool = True,
                 inputs: list[Input] | None = None, metrics_listener: bool | None = None):
        from bdchub.web.config_schema import with_defaults

        self.config = config
        self.hub = hub
        #: Whether the hub was let start on published demo secrets (``hub demo``).
        self.demo_secrets = False
        self.runs_singletons = pollers and inputs is None
        #: The inbound application of a server this service does not run (``hub run``
        #: with several processes): a ``web.loopserver.AppSlot`` a reload swaps into.
        self.app_slot: Any = None
        self._reloader: Reloader | None = None
        # A stop waits for a reload under way, and a reload never starts on a stopped hub.
        self._lock = threading.RLock()
        inbound = with_defaults(config.get("inbound"))
        listen = inbound["listen"]
        self.host = host or str(listen["host"])
        self.port = int(listen["port"] if port is None else port)
        self.web: InboundServer | None = None
        if inputs is None:
            from .metrics import StateMetrics, listen_address

            # First: the state is in the scrapes before the inbound server answers one.
            # The pollers' successes are the metrics of the process that runs them.
            scraped = pollers if metrics_listener is None else metrics_listener
            inputs = [StateMetrics(hub, listen_address(config) if scraped else None,
                                   pollers=self._running_pollers)]
            if bool(inbound.get("enabled", True)) if web is None else web:
                self.web = InboundServer(hub, config, self.host, self.port,
                                         int(listen["threads"]), readiness=self.readiness)
                inputs.append(self.web)
            if pollers:
                inputs += singleton_inputs(config, hub)
        self.inputs: list[Input] = list(inputs)
        self._started: list[Input] = []
        #: Reports this process to ``hub status`` (``app.status``) while it runs.
        self.status = StatusReporter(hub)

    @property
    def pollers(self) -> Any:
        """The pollers of this process's config (``app.pollers.Pollers``), run here
        while this process holds their lease; None without pollers."""
        found = [i for i in self.inputs if i.name == "pollers"]
        return getattr(found[0], "target", None) if found else None

    def _running_pollers(self) -> Any:
        found = [i for i in self.inputs if i.name == "pollers" and getattr(i, "holding", True)]
        return getattr(found[0], "target", None) if found else None

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, host: str | None = None,
                    port: int | None = None, web: bool | None = None, pollers: bool = True,
                    metrics_listener: bool | None = None, demo_secrets: bool = False,
                    **hub_options: Any) -> HubService:
        """The service of a loaded config. It refuses (``ConfigError``) a config whose
        secrets still hold the published defaults written in the file (``core.secrets``)
        unless ``demo_secrets``: only ``hub demo`` and the tests that run the shipped
        config against the sandbox say so."""
        from bdchub.core.secrets import refuse
        from bdchub.routes.runtime import Hub

        if not demo_secrets:
            refuse(config)
        prepare_paths(config)
        hub = Hub.from_config(config, **hub_options)
        try:
            service = cls(config, hub, host=host, port=port, web=web, pollers=pollers,
                          metrics_listener=metrics_listener)
        except BaseException:
            hub.close()
            raise
        # A reload must not bring back what the start refused (``app.reload``).
        service.demo_secrets = demo_secrets
        return service

    @property
    def server(self) -> Any:
        """The running inbound server (``web.loopserver.LoopServer``), or None."""
        return self.web.server if self.web is not None else None

    @property
    def url(self) -> str:
        if self.web is not None:
            return self.web.url
        return f"http://{self.host}:{self.port}"

    def endpoints(self) -> list[tuple[str, str, str]]:
        """(method, path, route) of the configured and route-declared inbound endpoints."""
        return self.web.endpoints() if self.web is not None else []

    def readiness(self) -> list[Part]:
        """What ``/readyz`` reports: the store, the broker and the route workers
        (``routes.runtime.Hub.readiness``), and the pollers where this process runs them."""
        parts = list(self.hub.readiness())
        if self.pollers is not None and self.pollers.items:
            parts.append(probe("pollers", self._pollers_answer))
        return parts

    def _pollers_answer(self) -> str | None:
        running = self._running_pollers()
        stopped = running.stopped() if running is not None else []
        if stopped:
            return _("pollers stopped: {names}", names=", ".join(stopped))
        return None

    def watches(self) -> list[Any]:
        """The inputs that watch a folder (bridge inboxes), each with ``name`` and ``path``."""
        return [i for i in self.inputs if getattr(i, "path", None) is not None]

    def start(self) -> None:
        """Workers first (so nothing accepted waits for them), then each input in
        order. When one cannot start, those already started are stopped, in
        reverse, then the workers, and its error is raised."""
        self.hub.start()
        try:
            self.status.start()
            for item in self.inputs:
                item.start()
                self._started.append(item)
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = 30.0) -> None:
        """Stop taking work (the inputs, last started first), then let the workers
        finish. Never raises: a part that fails to stop is logged and the others
        still stop."""
        with self._lock:
            self._stop(timeout)

    def _stop(self, timeout: float) -> None:
        while self._started:
            item = self._started.pop()
            try:
                item.stop(timeout)
            except Exception:  # noqa: BLE001 - the rest must still stop
                log.exception("input %s did not stop cleanly", item.name)
        self.status.stop()  # before the store closes with the workers
        try:
            self.hub.stop(timeout)
        except Exception:  # noqa: BLE001
            log.exception("the route workers did not stop cleanly")

    def kill(self) -> None:
        """Stop at once (what was in flight is redelivered next time). Never raises."""
        while self._started:
            item = self._started.pop()
            with contextlib.suppress(Exception):
                item.kill()
        self.status.kill()
        with contextlib.suppress(Exception):
            self.hub.kill()

    # -- reloading (app.reload)
    def reloader(self, path: str | os.PathLike[str] | None = None, *,
                 run: RunFile | None = None, **options: Any) -> Reloader:
        """The reloader of this service, made on first use for ``path`` (default: the
        file the config was loaded from); ``run``: the process's entry for its answers."""
        if self._reloader is None:
            path = path or self.config.get("__file__")
            if not path:
                raise HubError(_("this hub was not started from a config file: nothing to "
                                 "reload from"))
            self._reloader = Reloader(self, path, run=run, **options)
        return self._reloader

    def reload(self, path: str | os.PathLike[str] | None = None) -> Answer:
        """Check the config file again and swap in what changed, or refuse (see
        ``app.reload``); the answer says which."""
        with self._lock:
            return self.reloader(path).reload()

    def build_app(self, hub: Any, config: Mapping[str, Any]) -> Any:
        """A new inbound application over ``hub`` for ``config``, keeping the nonces
        seen so far; None when this service serves none."""
        current = self.inbound_app
        if current is None:
            return None
        from bdchub.web.app import create_app

        return create_app(hub, dict(config), nonce_store=current.nonces,
                          readiness=self.readiness)

    @property
    def inbound_app(self) -> Any:
        if self.web is not None and self.web.server is not None:
            return self.web.app
        return self.app_slot.app if self.app_slot is not None else None

    def serve_app(self, app: Any) -> None:
        """Answer from the next request on with ``app``, in one step."""
        if self.web is not None and self.web.server is not None:
            self.web.server.swap(app)
            self.web.app = app
        elif self.app_slot is not None:
            self.app_slot.app = app

    def stop_inputs(self, groups: Iterable[str]) -> None:
        """Stop the singleton inputs of ``groups`` (``app.reload.INPUT_GROUPS``) and
        forget them; a reload starts their successors (``start_input``)."""
        names = {name for group in groups for name in INPUT_GROUPS.get(group, ())}
        if not self.runs_singletons or not names:
            return
        for item in [i for i in self._started if i.name in names]:
            try:
                item.stop()
            except Exception:  # noqa: BLE001 - the successor starts anyway
                log.exception("input %s did not stop cleanly", item.name)
            self._started.remove(item)
        self.inputs = [i for i in self.inputs if i.name not in names]

    def start_input(self, item: Input) -> None:
        """Start one more input (a reload's successor of one ``stop_inputs`` stopped)."""
        item.start()
        self.inputs.append(item)
        self._started.append(item)
