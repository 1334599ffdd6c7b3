"""A whole hub process: the route workers, the inbound web endpoints, the pollers.

``hub run`` and ``hub demo`` both assemble it from a loaded config::

    service = HubService.from_config(core.config.load("config.yaml"))
    service.start()        # workers, then the inbound server, then the pollers
    ...
    service.stop()         # the reverse: nothing new comes in while work drains

The web server runs on its own event loop in a background thread
(``web.loopserver``); the caller's thread stays free to wait for signals or
drive a demo.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bdchub.core.errors import ConfigError
from bdchub.core.i18n import _

from .pollers import Pollers

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


def _diode_inbox(config: Mapping[str, Any], hub: Any) -> Any:
    """The ``bridge.diode_inbox`` watcher, if configured (imported only then)."""
    if not (config.get("bridge") or {}).get("diode_inbox"):
        return None
    from bdchub.bridge.publish import InboxWatch

    return InboxWatch.from_config(config, hub)


class HubService:
    """Workers + inbound server + pollers of one hub. See the module docstring."""

    def __init__(self, config: Mapping[str, Any], hub: Any, *, host: str | None = None,
                 port: int | None = None, web: bool | None = None, pollers: bool = True):
        from bdchub.web.config_schema import with_defaults

        self.config = config
        self.hub = hub
        inbound = with_defaults(config.get("inbound"))
        listen = inbound["listen"]
        self.web_enabled = bool(inbound.get("enabled", True)) if web is None else web
        self.host = host or str(listen["host"])
        self.port = int(listen["port"] if port is None else port)
        self.threads = int(listen["threads"])
        self.pollers = Pollers(config, connectors=hub.connectors, publish=hub.publish,
                               store_engine=hub.store.engine) if pollers else None
        self.diode_inbox = _diode_inbox(config, hub) if pollers else None
        self.server: Any = None
        self.app: Any = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, host: str | None = None,
                    port: int | None = None, web: bool | None = None, pollers: bool = True,
                    **hub_options: Any) -> HubService:
        from bdchub.routes.runtime import Hub

        prepare_paths(config)
        hub = Hub.from_config(config, **hub_options)
        try:
            return cls(config, hub, host=host, port=port, web=web, pollers=pollers)
        except BaseException:
            hub.close()
            raise

    @property
    def url(self) -> str:
        if self.server is not None:
            return self.server.url
        return f"http://{self.host}:{self.port}"

    def endpoints(self) -> list[tuple[str, str, str]]:
        """(method, path, route) of the configured and route-declared inbound endpoints."""
        if self.app is None:
            return []
        return [(e["method"], e["path"], e["route"]) for e in self.app.endpoints]

    def start(self) -> None:
        """Workers first (so nothing accepted waits for them), then the inbound
        server, then the pollers."""
        from bdchub.web import loopserver
        from bdchub.web.app import create_app

        self.hub.start()
        try:
            if self.web_enabled:
                self.app = create_app(self.hub, dict(self.config))
                try:
                    self.server = loopserver.start(self.app, self.host, self.port,
                                                   threads=self.threads)
                except OSError as exc:
                    raise ConfigError(_("cannot listen on {host}:{port}: {error}",
                                        host=self.host, port=self.port,
                                        error=exc.strerror or exc)) from exc
            if self.pollers is not None:
                self.pollers.start()
            if self.diode_inbox is not None:
                self.diode_inbox.start()
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = 30.0) -> None:
        """Stop taking work (pollers, inbound), then let the workers finish. Never raises."""
        if self.diode_inbox is not None:
            with contextlib.suppress(Exception):
                self.diode_inbox.stop()
        if self.pollers is not None:
            with contextlib.suppress(Exception):
                self.pollers.stop()
        if self.server is not None:
            with contextlib.suppress(Exception):
                self.server.close()
            self.server = None
        with contextlib.suppress(Exception):
            self.hub.stop(timeout)

    def kill(self) -> None:
        """Stop at once (what was in flight is redelivered next time). Never raises."""
        if self.diode_inbox is not None:
            with contextlib.suppress(Exception):
                self.diode_inbox.stop(timeout=1.0)
        if self.pollers is not None:
            with contextlib.suppress(Exception):
                self.pollers.stop(timeout=1.0)
        if self.server is not None:
            with contextlib.suppress(Exception):
                self.server.kill()
            self.server = None
        with contextlib.suppress(Exception):
            self.hub.kill()
