"""``hub run``: the running hub, wired into ``hub`` by hub.py's LAZY_COMMANDS.

    hub run [-c config.yaml] [--host H] [--port P]   serve the inbound endpoints,
            [--no-pollers] [--log-level L]           run the route workers and the
                                                     inputs (pollers, bridge watches)

One process (``inbound.listen.processes: 1``, the default) is one
``HubService``; with more, ``web.server.serve`` forks that many whole hubs
taking connections on one socket, and the singleton inputs run in the first.
The Docker image's entry point is ``hub run``.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

import click

from bdchub.core.cliopts import CONFIG_OPTION, LANG_OPTION, LOG_LEVEL_OPTION, setup_logging
from bdchub.core.errors import HubError
from bdchub.core.i18n import _


@click.command("run")
@CONFIG_OPTION
@click.option("--host", default=None, help="listen address (default: inbound.listen.host)")
@click.option("--port", type=int, default=None, help="listen port (default: inbound.listen.port)")
@click.option("--no-pollers", is_flag=True,
              help="do not poll departments or watch the bridge inboxes (another process does)")
@LOG_LEVEL_OPTION
@LANG_OPTION
def run_command(config_path: str, host: str | None, port: int | None, no_pollers: bool,
                log_level: str) -> None:
    """Serve the inbound endpoints and run the route workers until SIGTERM or Ctrl-C."""
    from bdchub.core.config import load

    from .service import HubService

    setup_logging(log_level)
    config = load(config_path)
    listen = _served_by_processes(config)
    if listen is not None:
        _run_processes(config, listen, host, port, not no_pollers)
        return
    service = HubService.from_config(config, host=host, port=port, pollers=not no_pollers)
    done = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_a: done.set())
                for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        service.start()
        click.echo(_("bdc-hub {name} (tenant {tenant}) is running: {routes} routes, {pollers} "
                     "pollers", name=config.get("name") or "", tenant=config["tenant"],
                     routes=len(service.hub.routes),
                     pollers=len(service.pollers.items) if service.pollers else 0))
        if service.server is not None:
            click.echo(_("inbound endpoints on {url}", url=service.url))
            for method, path, route in service.endpoints():
                click.echo(f"  {method:6} {path}  -> {route}")
        else:
            click.echo(_("inbound endpoints are disabled (inbound.enabled: false)"))
        for watch in service.watches():
            click.echo(_("watching {what}: {path}", what=watch.name, path=watch.path))
        click.echo(_("stop with Ctrl-C or SIGTERM"))
        sys.stdout.flush()
        while not done.wait(0.5):
            pass
        click.echo(_("stopping: finishing the messages in flight"))
    finally:
        service.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    click.echo(_("stopped"))


def _served_by_processes(config: dict[str, Any]) -> dict[str, Any] | None:
    """``inbound.listen`` when it asks for more than one server process, else None."""
    from bdchub.web.config_schema import with_defaults

    inbound = with_defaults(config.get("inbound"))
    listen = inbound["listen"]
    if inbound.get("enabled", True) and int(listen.get("processes", 1)) > 1:
        return listen
    return None


def _run_processes(config: dict[str, Any], listen: dict[str, Any], host: str | None,
                   port: int | None, pollers: bool) -> None:
    """``hub run`` with ``inbound.listen.processes`` > 1: that many processes, each a
    whole hub (route workers and inbound server) taking connections on one socket;
    the singleton inputs (pollers, bridge watches) run in the first one only. They
    share the broker and the store, as separate workers do (signed-request nonces
    included)."""
    from bdchub.web.app import create_app
    from bdchub.web.server import PerProcess, serve

    from .service import HubService

    processes = int(listen["processes"])
    host = host or str(listen["host"])
    port = int(listen["port"] if port is None else port)

    def build() -> Any:
        service = HubService.from_config(config, web=False, pollers=pollers and per.index == 0)
        service.start()
        try:
            app = create_app(service.hub, dict(config))
        except BaseException:
            service.stop()
            raise
        app.service = service
        return app

    per = PerProcess(build, close=lambda app: app.service.stop())
    click.echo(_("bdc-hub {name} (tenant {tenant}): {processes} processes on http://{host}:{port}",
                 name=config.get("name") or "", tenant=config["tenant"], processes=processes,
                 host=host, port=port))
    click.echo(_("stop with Ctrl-C or SIGTERM"))
    sys.stdout.flush()
    try:
        serve(per, host, port, threads=int(listen["threads"]), processes=processes)
    except OSError as exc:
        raise HubError(_("cannot listen on {host}:{port}: {error}", host=host, port=port,
                         error=exc.strerror or exc)) from exc
    except RuntimeError as exc:  # a process died: the service manager restarts the whole
        raise HubError(str(exc)) from exc
    click.echo(_("stopped"))
