"""``hub run``: the running hub, wired into ``hub`` by hub.py's LAZY_COMMANDS.

    hub run [-c config.yaml] [--host H] [--port P]   serve the inbound endpoints,
            [--no-pollers] [--log-level L]           run the route workers and the
                                                     inputs (pollers, bridge watches)
                                                     (--log-level wins over logging.level)
    hub reload [-c config.yaml] [--timeout S]        ask the hub running that file to
                                                     reload it (SIGHUP does the same)

One process (``inbound.listen.processes: 1``, the default) is one
``HubService``; with more, ``web.server.serve`` forks that many whole hubs
taking connections on one socket. The singleton inputs (pollers, reconciler,
bridge watches) run in whichever process holds each one's lease in the store
(``app.singletons``), among these processes and other ``hub run`` s on the store.
The Docker image's entry point is ``hub run``. SIGHUP reloads the config file
(``app.reload``); with several processes the first passes it to the others.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from typing import Any

import click
from click.core import ParameterSource

from bdchub.core.cliopts import CONFIG_OPTION, LANG_OPTION, LOG_LEVEL_OPTION
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
    from bdchub.core.datadir import data_dir
    from bdchub.core.logs import configure as configure_logging
    from bdchub.core.secrets import refuse as refuse_demo_secrets

    from .reload import RUN_FOLDER, ReloadListener, RunFile, install_sighup
    from .service import HubService

    sha256 = _sha256(config_path)  # of the file as loaded, not as it may be by the end of start
    config = load(config_path)
    # The command line's --log-level wins over the config's logging.level.
    given = click.get_current_context().get_parameter_source("log_level")
    configure_logging(config.get("logging"),
                      level=None if given == ParameterSource.DEFAULT else log_level)
    # Before anything starts or forks: published demo secrets are refused (core.secrets).
    refuse_demo_secrets(config)
    listen = _served_by_processes(config)
    if listen is not None:
        _run_processes(config, listen, host, port, not no_pollers, config_path, sha256)
        return
    service = HubService.from_config(config, host=host, port=port, pollers=not no_pollers)
    done = threading.Event()
    listener = ReloadListener()
    previous = {sig: signal.signal(sig, lambda *_a: done.set())
                for sig in (signal.SIGTERM, signal.SIGINT)}
    # Before start: a SIGHUP that comes while the hub starts waits for it, and no
    # longer ends the process as the default action does.
    previous[signal.SIGHUP] = install_sighup(listener)
    run = None
    try:
        service.start()
        run = RunFile(data_dir(config) / RUN_FOLDER, config_path, "main")
        service.reloader(config_path, run=run, sha256=sha256)
        listener.start(service.reload)
        click.echo(_("bdc-hub {name} (tenant {tenant}) is running: {routes} routes, {pollers} "
                     "pollers", name=config.get("name") or "", tenant=config["tenant"],
                     routes=len(service.hub.routes),
                     pollers=len(service.pollers.items) if service.pollers else 0))
        if service.server is not None:
            click.echo(_("inbound endpoints on {url}", url=service.url))
            _echo_builtin_endpoints(config)
            for method, path, route in service.endpoints():
                click.echo(f"  {method:6} {path}  -> {route}")
        else:
            click.echo(_("inbound endpoints are disabled (inbound.enabled: false)"))
        for watch in service.watches():
            click.echo(_("watching {what}: {path}", what=watch.name, path=watch.path))
        click.echo(_("reload the configuration with SIGHUP or hub reload -c {file}",
                     file=config_path))
        click.echo(_("stop with Ctrl-C or SIGTERM"))
        sys.stdout.flush()
        while not done.wait(0.5):
            pass
        click.echo(_("stopping: finishing the messages in flight"))
    finally:
        listener.stop()
        if run is not None:
            run.remove()
        service.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    click.echo(_("stopped"))


def _sha256(config_path: str) -> str | None:
    from .reload import file_sha256

    try:
        return file_sha256(config_path)
    except OSError:
        return None  # load() says why, in its words


def _echo_builtin_endpoints(config: dict[str, Any]) -> None:
    """What every hub serves besides its routes' endpoints, so the operator sees the
    whole surface (the API, the SOAP endpoint, /openapi.json, /metrics) at start."""
    from bdchub.web.app import builtin_endpoints
    from bdchub.web.config_schema import with_defaults

    metrics = bool(with_defaults(config.get("inbound")).get("metrics", True))
    for method, path, _handler, what in builtin_endpoints(metrics=metrics):
        click.echo(f"  {method:6} {path}  {what}")


def _served_by_processes(config: dict[str, Any]) -> dict[str, Any] | None:
    """``inbound.listen`` when it asks for more than one server process, else None."""
    from bdchub.web.config_schema import with_defaults

    inbound = with_defaults(config.get("inbound"))
    listen = inbound["listen"]
    if inbound.get("enabled", True) and int(listen.get("processes", 1)) > 1:
        return listen
    return None


def _run_processes(config: dict[str, Any], listen: dict[str, Any], host: str | None,
                   port: int | None, pollers: bool, config_path: str,
                   sha256: str | None) -> None:
    """``hub run`` with ``inbound.listen.processes`` > 1: that many processes, each a
    whole hub (route workers and inbound server) taking connections on one socket;
    each singleton input (pollers, bridge watches) runs in the one holding its lease. They
    share the broker and the store, as separate workers do (signed-request nonces
    included). This process only forks them and passes them SIGHUP; each reloads
    on its own and answers ``hub reload`` in its own entry."""
    from bdchub.core.datadir import data_dir
    from bdchub.web.app import create_app
    from bdchub.web.loopserver import AppSlot
    from bdchub.web.server import PerProcess, serve

    from .reload import RUN_FOLDER, ReloadListener, RunFile, forward_to_children, install_sighup
    from .service import HubService

    processes = int(listen["processes"])
    host = host or str(listen["host"])
    port = int(listen["port"] if port is None else port)
    folder = data_dir(config) / RUN_FOLDER

    def build() -> Any:  # in the forked process
        listener = ReloadListener()
        install_sighup(listener)
        # Every process contends for the singletons' leases (app.singletons); the
        # metrics listener is a port: the first process serves it.
        service = HubService.from_config(config, web=False, pollers=pollers,
                                         metrics_listener=pollers and per.index == 0)
        service.start()
        try:
            slot = service.app_slot = AppSlot(create_app(service.hub, dict(config),
                                                         readiness=service.readiness))
            run = RunFile(folder, config_path, "child", parent=os.getppid())
        except BaseException:
            service.stop()
            raise
        service.reloader(config_path, run=run, sha256=sha256)
        listener.start(service.reload)
        slot.service, slot.listener, slot.run = service, listener, run
        return slot

    def close(slot: Any) -> None:
        slot.listener.stop()
        slot.run.remove()
        slot.service.stop()

    # Every process's counts in every scrape, whichever answers (core.metrics): set
    # before the first fork, so each process's metrics are made in that mode.
    from bdchub.core.metrics import enable_multiprocess

    enable_multiprocess(data_dir(config) / "metrics")
    per = PerProcess(build, close=close)
    click.echo(_("bdc-hub {name} (tenant {tenant}): {processes} processes on http://{host}:{port}",
                 name=config.get("name") or "", tenant=config["tenant"], processes=processes,
                 host=host, port=port))
    _echo_builtin_endpoints(config)
    click.echo(_("reload the configuration with SIGHUP or hub reload -c {file}",
                 file=config_path))
    click.echo(_("stop with Ctrl-C or SIGTERM"))
    sys.stdout.flush()
    main = RunFile(folder, config_path, "main", reloads=False)
    previous = signal.signal(signal.SIGHUP, forward_to_children(folder))
    try:
        serve(per, host, port, threads=int(listen["threads"]), processes=processes)
    except OSError as exc:
        raise HubError(_("cannot listen on {host}:{port}: {error}", host=host, port=port,
                         error=exc.strerror or exc)) from exc
    except RuntimeError as exc:  # a process died: the service manager restarts the whole
        raise HubError(str(exc)) from exc
    finally:
        signal.signal(signal.SIGHUP, previous)
        main.remove()
    click.echo(_("stopped"))


@click.command("reload")
@CONFIG_OPTION
@click.option("--timeout", type=float, default=120.0, show_default=True,
              help="seconds to wait for the answer of every process of the hub")
@LANG_OPTION
def reload_command(config_path: str, timeout: float) -> None:
    """Ask the hub running this config file to reload it (as SIGHUP does) and print
    its answer: exit 0 when applied, 2 when refused for the file's sake (every
    problem listed, with file:line), 1 when it could not be applied or no answer came."""
    from .reload import ask_reload, describe, reason_text

    answers = ask_reload(config_path, timeout)
    alike: dict[str, list[dict[str, Any]]] = {}
    for answer in answers:  # the processes of one hub mostly answer the same
        key = json.dumps({k: v for k, v in answer.items() if k not in ("pid", "seq", "at")},
                         sort_keys=True)
        alike.setdefault(key, []).append(answer)
    code = 0
    for group in alike.values():
        answer, pids = group[0], ", ".join(str(a["pid"]) for a in group)
        if answer["status"] == "applied":
            click.echo(_("{file}: reloaded by process {pids} (sha256 {sha256})",
                         file=answer["file"], pids=pids, sha256=answer["sha256"]))
            for change in answer["changes"]:
                click.echo(f"  {describe(change)}")
            if not answer["changes"]:
                click.echo("  " + _("nothing changed"))
            for problem in answer["problems"]:
                click.echo(f"  {problem}", err=True)
                code = max(code, 1)
            continue
        click.echo(_("{file}: not reloaded by process {pids}: {reason}; the hub goes on with "
                     "the configuration it runs:", file=answer["file"], pids=pids,
                     reason=reason_text(answer["reason"])), err=True)
        for problem in answer["problems"]:
            click.echo(f"  {problem}", err=True)
        code = max(code, 2 if answer["reason"] in ("invalid", "restart") else 1)
    sys.exit(code)
