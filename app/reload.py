"""Reloading a running hub's configuration: ``hub run`` on SIGHUP, and ``hub reload``.

The new file is checked in full first (``core.config.load``); a file that does
not pass, or that changes what the hub reads only when it starts, is refused
and the running hub goes on untouched. Otherwise only what changed is swapped:

- a connector whose block changed (or that was added) is built and opened
  before anything else; if one cannot open, nothing is applied;
- a route whose block changed, or that calls a changed connector, or reads a
  changed checklist: its queue's consumer stops, the messages in flight finish
  on the old route (``DRAIN_TIMEOUT``; if they do not, nothing is applied and
  the route takes its messages again), then the new route, with new workers,
  consumes the same queue. Unchanged routes and their workers are not touched;
- an added route starts; a removed one stops once drained, and its queue and
  bindings stay: its messages wait there (logged with their number);
- the inbound application (clients, endpoints, limits of bodies, the routes'
  endpoints) is rebuilt and swapped behind the server in one step; the server
  itself (``inbound.listen``, ``inbound.limits``, ``inbound.enabled``), the
  broker, the store, the tenant and any section this module does not know are
  read only at start: a change there refuses the reload, naming each;
- the pollers and the reconciler are restarted when their section or any
  connector changed, the bridge watches when ``bridge`` changed.

The old connectors are closed once nothing can call them any more. Each reload
is acknowledged: a log line, the ``bdchub_config_*`` metrics (the sha256 of the
applied file, when, whether the last reload was applied) and an answer in this
process's entry under ``<data folder>/run/`` that ``hub reload`` reads.

How ``hub reload`` reaches the hub: every ``hub run`` process writes
``<data folder>/run/<pid>.json`` (its config file, its role, its last answer).
``hub reload`` sends SIGHUP to each main process running that config file and
waits until every process that reloads has answered. With
``inbound.listen.processes`` > 1 the main process forks the servers and runs no
hub itself: it passes the SIGHUP to each of its children (listed there with it
as their parent), and each child reloads and answers on its own. A signal
rather than an admin endpoint: nothing listens, and only the hub's own user
(or root) may send it.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Info

from bdchub.core.datadir import data_dir
from bdchub.core.errors import ConfigError, HubError
from bdchub.core.i18n import _
from bdchub.core.secrets import DEMO_SECRETS_KEY

log = logging.getLogger("bdchub.reload")

#: Seconds the messages in flight of a route being swapped may take to finish.
DRAIN_TIMEOUT = 60.0
#: Sections read only when the hub starts.
RESTART_SECTIONS = frozenset({"tenant", "broker", "store", "metrics"})
#: Sections a reload applies (anything else changed is refused: restart).
APPLIED_SECTIONS = frozenset({"name", "level", "lang", "masking", "checklists", "connectors",
                              "routes", "inbound", "pollers", "reconcile", "bridge"})
#: Keys of ``inbound`` the server reads when it starts.
SERVER_KEYS = ("enabled", "listen", "limits")
#: The folder of the running processes' entries, in the data folder.
RUN_FOLDER = "run"

# -- what changed ------------------------------------------------------------------------


@dataclass
class Plan:
    """What a new config changes against the running one."""

    restart: list[str] = field(default_factory=list)  # problems: read only at start
    connectors: dict[str, str] = field(default_factory=dict)  # name -> added|changed|removed
    routes: dict[str, str] = field(default_factory=dict)
    sections: set[str] = field(default_factory=set)
    inbound: bool = False  # rebuild the inbound application
    inputs: set[str] = field(default_factory=set)  # pollers, reconcile, bridge

    @property
    def empty(self) -> bool:
        return not (self.connectors or self.routes or self.sections)


def refs(spec: Any, key: str) -> set[str]:
    """Every text value under a mapping key ``key``, at any depth of ``spec``."""
    found: set[str] = set()
    if isinstance(spec, Mapping):
        for k, v in spec.items():
            if k == key and isinstance(v, str):
                found.add(v)
            else:
                found |= refs(v, key)
    elif isinstance(spec, list):
        for item in spec:
            found |= refs(item, key)
    return found


def diff(old: Mapping[str, Any], new: Mapping[str, Any], running: set[str],
         where: Callable[[tuple[str, ...]], str] = lambda path: "") -> Plan:
    """What ``new`` changes against ``old``, whose enabled routes ``running`` run.
    ``where(path)`` gives the ``file:line:col: `` of a key in the new file."""
    from bdchub.web.config_schema import with_defaults

    plan = Plan()
    plan.sections = {key for key in {*old, *new} if not str(key).startswith("__")
                     and old.get(key) != new.get(key)}
    for name in sorted(plan.sections):
        if name in RESTART_SECTIONS or name not in APPLIED_SECTIONS:
            plan.restart.append(where((name,)) + _(
                "{key}: changed, and it is read only when the hub starts: restart the hub to "
                "apply it", key=name))
    if "inbound" in plan.sections:
        before, after = with_defaults(old.get("inbound")), with_defaults(new.get("inbound"))
        for key in SERVER_KEYS:
            if before.get(key, True) != after.get(key, True):
                plan.restart.append(where(("inbound", key)) + _(
                    "inbound.{key}: changed, and the inbound server reads it only when it "
                    "starts: restart the hub to apply it", key=key))
    was, now = old.get("connectors") or {}, new.get("connectors") or {}
    for name in sorted({*was, *now}):
        if name not in now:
            plan.connectors[name] = "removed"
        elif name not in was:
            plan.connectors[name] = "added"
        elif was[name] != now[name]:
            plan.connectors[name] = "changed"
    touched = {n for n, c in plan.connectors.items() if c != "added"}
    was, now = old.get("routes") or {}, new.get("routes") or {}
    enabled = {name for name, spec in now.items()
               if not isinstance(spec, Mapping) or spec.get("enabled", True)}
    for name in sorted(running | enabled):
        if name not in enabled:
            plan.routes[name] = "removed"
        elif name not in running:
            plan.routes[name] = "added"
        elif (was.get(name) != now[name] or refs(now[name], "connector") & touched
              or ("checklists" in plan.sections and refs(now[name], "checklist"))):
            plan.routes[name] = "changed"
    plan.inbound = bool(plan.sections & {"inbound", "routes", "masking"} or plan.routes)
    if "pollers" in plan.sections or plan.connectors:
        plan.inputs.add("pollers")
    if "reconcile" in plan.sections or plan.connectors:
        plan.inputs.add("reconcile")
    if "bridge" in plan.sections:
        plan.inputs.add("bridge")
    return plan


# -- the answer ----------------------------------------------------------------------------


@dataclass
class Answer:
    """One reload's outcome, as logged, counted and written for ``hub reload``.

    ``status``: applied or refused; ``reason`` (refused): ``invalid`` (the file does
    not pass ``hub check``), ``restart`` (it changes what is read only at start) or
    ``failed`` (a connector did not open, a route did not drain). ``changes``:
    ``{"part", "name", "change"[, "waiting"]}``. ``problems``: of a refusal, or what
    went wrong after an applied reload passed the point of no return."""

    status: str
    file: str
    sha256: str = ""
    reason: str | None = None
    changes: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    at: float = 0.0
    pid: int = 0
    seq: int = 0

    @property
    def applied(self) -> bool:
        return self.status == "applied"


def describe(change: Mapping[str, Any]) -> str:
    """One change of an applied reload, for people."""
    part, name, what = change["part"], change.get("name", ""), change["change"]
    if part == "route":
        if what == "removed":
            waiting = change.get("waiting")
            return _("route {name}: removed; {n} messages wait in its queue", name=name,
                     n="?" if waiting is None else waiting)
        if what == "added":
            return _("route {name}: added", name=name)
        return _("route {name}: swapped after its messages in flight", name=name)
    if part == "connector":
        if what == "added":
            return _("connector {name}: added", name=name)
        if what == "removed":
            return _("connector {name}: removed", name=name)
        return _("connector {name}: replaced", name=name)
    if part == "inbound":
        return _("inbound application: rebuilt and swapped behind the server")
    if part == "input":
        return _("{name}: restarted", name=name)
    return _("{name}: applied", name=name)


def summary(answer: Answer) -> str:
    if not answer.changes:
        return _("nothing changed")
    return "; ".join(describe(c) for c in answer.changes)


def file_sha256(path: str | os.PathLike[str]) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# -- metrics -------------------------------------------------------------------------------


class ReloadMetrics:
    """``bdchub_config_info{sha256,file}`` (the configuration applied),
    ``bdchub_config_applied_timestamp_seconds`` (when: start or reload),
    ``bdchub_config_last_reload_successful`` (1, or 0 after a refusal) and
    ``bdchub_config_reloads_total{result}``."""

    def __init__(self, registry: CollectorRegistry = REGISTRY):
        self.config = Info("bdchub_config", "The configuration the hub runs: its file and the "
                           "file's sha256", registry=registry)
        # With several processes (core.metrics), each reloads on its own: the latest
        # application, and 0 while any live process refused.
        self.applied_at = Gauge("bdchub_config_applied_timestamp_seconds",
                                "When the running configuration was applied (start or reload)",
                                registry=registry, multiprocess_mode="livemax")
        self.last_ok = Gauge("bdchub_config_last_reload_successful",
                             "1 if the last reload was applied (or none was asked), 0 if it was "
                             "refused", registry=registry, multiprocess_mode="livemin")
        self.reloads = Counter("bdchub_config_reloads", "Reloads asked for, by result",
                               ["result"], registry=registry)
        self.last_ok.set(1)

    def running(self, sha256: str, file: str, at: float) -> None:
        self.config.info({"sha256": sha256, "file": file})
        self.applied_at.set(at)

    def answered(self, answer: Answer) -> None:
        self.reloads.labels(answer.status).inc()
        self.last_ok.set(1 if answer.applied else 0)
        if answer.applied:
            self.running(answer.sha256, answer.file, answer.at)


@functools.cache
def default_metrics() -> ReloadMetrics:
    """The metrics on the process-wide registry (served at ``/metrics``), made once
    (a process has one reloader, made by the thread that starts the hub)."""
    return ReloadMetrics(REGISTRY)


# -- reloading one process --------------------------------------------------------------


class _Preview:
    """The hub as it will be once a reload is applied, for what is built before it
    is (the inbound application, the pollers): the new routes and connectors,
    everything else the hub's own. ``settle()`` once applied: from then on the
    tables are the hub's current ones too."""

    def __init__(self, hub: Any, routes: dict[str, Any], connectors: dict[str, Any]):
        self._hub = hub
        self.routes = routes
        self.connectors = connectors

    def __getattr__(self, name: str) -> Any:
        if name == "_hub":
            raise AttributeError(name)
        return getattr(self._hub, name)

    def endpoints(self) -> list[dict[str, Any]]:
        from bdchub.routes.runtime import Hub

        return Hub.endpoints(self)  # type: ignore[arg-type]

    def settle(self) -> None:
        vars(self).pop("routes", None)
        vars(self).pop("connectors", None)


@dataclass
class _Prepared:
    """Everything a reload builds before it touches the running hub."""

    config: dict[str, Any]
    plan: Plan
    connectors: dict[str, Any]  # built and opened: added and changed
    table: dict[str, Any]  # the new routes, by name
    preview: _Preview
    app: Any = None
    inputs: list[Any] = field(default_factory=list)


class Reloader:
    """Reloads ``service`` (an ``app.service.HubService``) from ``path``; one reload
    at a time. ``run``: this process's ``RunFile``, given each answer."""

    def __init__(self, service: Any, path: str | os.PathLike[str], *,
                 metrics: ReloadMetrics | None = None, run: RunFile | None = None,
                 sha256: str | None = None, drain_timeout: float = DRAIN_TIMEOUT,
                 clock: Callable[[], float] = time.time):
        self.service = service
        self.path = Path(path)
        self.metrics = metrics or default_metrics()
        self.run = run
        self.drain_timeout = drain_timeout
        self.clock = clock
        self.seq = 0
        self._lock = threading.Lock()
        with contextlib.suppress(OSError):
            self.metrics.running(sha256 or file_sha256(self.path), str(self.path), clock())

    def reload(self) -> Answer:
        """Check the file, apply what changed (or nothing), acknowledge, answer."""
        with self._lock:
            try:
                answer = self._reload()
            except Exception as exc:  # noqa: BLE001 - a reload never takes the hub down
                log.exception("reload of %s failed", self.path)
                answer = self._refused("failed", [str(exc) or type(exc).__name__])
            self.seq += 1
            answer.seq, answer.pid, answer.at = self.seq, os.getpid(), self.clock()
            self._acknowledge(answer)
            return answer

    # -- steps
    def _refused(self, reason: str, problems: list[str], sha256: str = "") -> Answer:
        return Answer("refused", str(self.path), sha256, reason, problems=list(problems))

    def _reload(self) -> Answer:
        from bdchub.core.config import load
        from bdchub.core.yamlsource import load_yaml

        try:
            sha256 = file_sha256(self.path)
        except OSError as exc:
            return self._refused("invalid", [_("cannot read config file {file}: {error}",
                                               file=str(self.path),
                                               error=exc.strerror or exc)])
        try:
            config = load(self.path)
        except ConfigError as exc:
            return self._refused("invalid", exc.problems, sha256)
        service = self.service
        published = config.get(DEMO_SECRETS_KEY) or []
        if published and not getattr(service, "demo_secrets", False):
            # As at start (core.secrets.refuse): a reload must not slip them in.
            return self._refused("demo_secrets", [str(s) for s in published], sha256)
        source = load_yaml(self.path)
        plan = diff(service.config, config, set(service.hub.routes),
                    where=lambda path: f"{source.where(path, key=True)}: ")
        if plan.restart:
            return self._refused("restart", plan.restart, sha256)
        if plan.empty:
            return Answer("applied", str(self.path), sha256)
        ready = self._prepare(config, plan)
        if isinstance(ready, list):
            return self._refused("failed", ready, sha256)
        stuck = self._pause(plan)
        if stuck:
            _close(ready.connectors.values())
            return self._refused("failed", stuck, sha256)
        try:
            changes, problems = self._apply(ready)
        except Exception as exc:  # noqa: BLE001 - past the point of no return: say so
            log.exception("reload of %s", self.path)
            return Answer("applied", str(self.path), sha256, problems=[_(
                "the reload stopped half-way ({error}); restart the hub to run the file as "
                "it is", error=exc)])
        return Answer("applied", str(self.path), sha256, changes=changes, problems=problems)

    def _prepare(self, config: dict[str, Any], plan: Plan) -> _Prepared | list[str]:
        """Build and open what is new; the problems instead, with nothing left open."""
        from bdchub import connectors as connector_types
        from bdchub.routes.compiler import compile_routes

        hub = self.service.hub
        built: dict[str, Any] = {}
        try:
            problems = []
            for name, change in plan.connectors.items():
                if change == "removed":
                    continue
                block = dict(config["connectors"][name])
                try:
                    built[name] = connector = connector_types.build(
                        name, block, base_dir=config.get("__dir__"))
                    connector.open()
                except Exception as exc:  # noqa: BLE001 - every type fails its own way
                    problems.append(_("connector {name} cannot be opened: {error}; the running "
                                      "hub keeps the one it has", name=name, error=exc))
            if problems:
                _close(built.values())
                return problems
            merged = {name: c for name, c in hub.connectors.items()
                      if plan.connectors.get(name) != "removed"}
            merged.update(built)
            compiled = compile_routes(config, connectors=merged, prefix=hub.engine.prefix,
                                      sleep=hub.engine.sleep)
            table = {name: hub.routes[name] for name in hub.routes
                     if plan.routes.get(name) is None}
            table.update({name: compiled[name] for name, change in plan.routes.items()
                          if change != "removed"})
            preview = _Preview(hub, table, merged)
            ready = _Prepared(config, plan, built, table, preview)
            if plan.inbound:
                ready.app = self.service.build_app(preview, config)
            if plan.inputs and self.service.runs_singletons:
                ready.inputs = _singletons(config, preview, plan.inputs)
            return ready
        except (ConfigError, HubError) as exc:
            _close(built.values())
            return exc.problems if isinstance(exc, ConfigError) else [str(exc)]
        except BaseException:
            _close(built.values())
            raise

    def _pause(self, plan: Plan) -> list[str]:
        """Pause the queued routes to swap or remove and let their messages in flight
        finish; if some do not in time, take them up again and say which."""
        hub = self.service.hub
        names = [name for name, change in plan.routes.items()
                 if change != "added" and not hub.routes[name].sync]
        try:
            for name in names:
                hub.pause_route(name)
            deadline = time.monotonic() + self.drain_timeout
            stuck = [name for name in names
                     if not hub.drained(name, max(0.0, deadline - time.monotonic()))]
        except BaseException:
            for name in names:
                hub.resume_route(name)
            raise
        if not stuck:
            return []
        for name in names:
            hub.resume_route(name)
        return [_("route {name} still had messages in flight after {seconds} s; nothing was "
                  "changed, try again later", name=name, seconds=round(self.drain_timeout))
                for name in stuck]

    def _apply(self, ready: _Prepared) -> tuple[list[dict[str, Any]], list[str]]:
        """The point of no return: the paused routes are drained, the new parts built."""
        from bdchub.core.masking import Masker

        service, hub, plan = self.service, self.service.hub, ready.plan
        changes: list[dict[str, Any]] = []
        problems: list[str] = []
        old_routes = dict(hub.routes)
        service.stop_inputs(plan.inputs)
        old_connectors = hub.reconfigure(
            ready.config,
            routes={name: ready.table.get(name) for name in plan.routes},
            connectors={name: ready.connectors.get(name) for name in plan.connectors})
        if "masking" in plan.sections:
            hub.masking = hub.engine.masking = Masker.from_config(ready.config.get("masking"))
        if "name" in plan.sections:
            hub.engine.organisation = str(ready.config.get("name") or "") or hub.tenant
        if ready.app is not None:
            service.serve_app(ready.app)
        ready.preview.settle()
        service.config = ready.config
        # Request/reply runs of the replaced routes end on the connectors they began with.
        replaced = [old_routes[name] for name in plan.routes
                    if name in old_routes and old_routes[name].sync]
        if old_connectors:
            if hub.sync_drained(replaced, self.drain_timeout):
                _close(old_connectors.values())
            else:
                threading.Thread(target=_close_when_drained, daemon=True,
                                 args=(hub, replaced, list(old_connectors.values())),
                                 name="reload-close").start()
        for name, change in plan.connectors.items():
            changes.append({"part": "connector", "name": name, "change": change})
        for name, change in plan.routes.items():
            entry: dict[str, Any] = {"part": "route", "name": name, "change": change}
            try:
                if change == "removed":
                    route = old_routes[name]
                    if not route.sync:
                        hub.retire_route(route.queue)
                        entry["waiting"] = hub.broker.queue_size(route.queue)
                        log.warning("%s", _("route {name} was removed: its queue {queue} stays, "
                                            "with {n} messages waiting", name=name,
                                            queue=route.queue, n=entry["waiting"]))
                else:
                    hub.start_route(name)
            except Exception as exc:  # noqa: BLE001 - the others still go on
                log.exception("route %s after the reload", name)
                problems.append(_("route {name} did not start: {error}", name=name, error=exc))
            changes.append(entry)
        try:
            hub.refresh_await()
        except Exception as exc:  # noqa: BLE001
            problems.append(_("the await queue was not updated: {error}", error=exc))
        if ready.app is not None:
            changes.append({"part": "inbound", "name": "inbound", "change": "rebuilt"})
        for item in ready.inputs:
            try:
                service.start_input(item)
                changes.append({"part": "input", "name": item.name, "change": "restarted"})
            except Exception as exc:  # noqa: BLE001
                log.exception("input %s after the reload", item.name)
                problems.append(_("{name} did not start: {error}", name=item.name, error=exc))
        # The other sections changed: applied as they are (e.g. masking), or read by
        # nothing this process runs (the pollers of another process).
        listed = {"connectors", "routes", *(["inbound"] if ready.app is not None else []),
                  *(group for group, names in INPUT_GROUPS.items()
                    if any(item.name in names for item in ready.inputs))}
        for name in sorted(plan.sections - listed):
            changes.append({"part": "section", "name": name, "change": "applied"})
        return changes, problems

    def _acknowledge(self, answer: Answer) -> None:
        if answer.applied:
            log.info("%s", _("configuration reloaded from {file} (sha256 {sha256}): {summary}",
                             file=answer.file, sha256=answer.sha256[:12], summary=summary(answer)))
            for problem in answer.problems:
                log.error("%s", problem)
        else:
            log.error("%s", _("configuration {file} not reloaded ({reason}); the hub goes on "
                              "with the one it runs:", file=answer.file,
                              reason=reason_text(answer.reason)))
            for problem in answer.problems:
                log.error("  %s", problem)
        try:
            self.metrics.answered(answer)
        except Exception:  # noqa: BLE001 - an acknowledgement must not undo a reload
            log.exception("reload metrics")
        if self.run is not None:
            try:
                self.run.write(answer)
            except OSError as exc:
                log.error("%s", _("the reload's answer cannot be written to {file}: {error}",
                                  file=self.run.path, error=exc.strerror or exc))


def reason_text(reason: str | None) -> str:
    return {"invalid": _("the file does not pass the check"),
            "restart": _("it changes what is read only when the hub starts"),
            "failed": _("it could not be applied"),
            "demo_secrets": _("secrets in it still hold the published demo values written "
                              "in the file")}.get(reason or "", reason or "")


def _close(connectors: Any) -> None:
    for connector in connectors:
        with contextlib.suppress(Exception):
            connector.close()


def _close_when_drained(hub: Any, routes: list[Any], connectors: list[Any]) -> None:
    hub.sync_drained(routes, 3600.0)
    _close(connectors)


def _singletons(config: Mapping[str, Any], hub: Any, groups: set[str]) -> list[Any]:
    """The singleton inputs of ``groups`` (pollers, reconcile, bridge) for ``config``;
    the others are left out, so nothing is built that would not be started."""
    from .inputs import singleton_inputs

    partial = dict(config)
    if "pollers" not in groups:
        partial["pollers"] = {}
    if "reconcile" not in groups:
        partial.pop("reconcile", None)
    if "bridge" not in groups:
        partial.pop("bridge", None)
    return singleton_inputs(partial, hub)


#: The singleton inputs each group restarts, by ``Input.name``.
INPUT_GROUPS = {"pollers": ("pollers",), "reconcile": ("reconciler",),
                "bridge": ("bridge.diode_inbox", "bridge.ferry_inbox")}


# -- the running processes: <data folder>/run/<pid>.json --------------------------------


def _started(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot), or None where unknown:
    told apart from a later process given the same pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def _alive(entry: Mapping[str, Any]) -> bool:
    pid = int(entry.get("pid") or 0)
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's: alive
    started = _started(pid)
    return started is None or entry.get("started") in (None, started)


def run_folder(config_path: str | os.PathLike[str]) -> Path:
    """Where the processes running ``config_path`` register (its data folder's ``run/``)."""
    return data_dir({"__dir__": str(Path(config_path).resolve().parent)}) / RUN_FOLDER


class RunFile:
    """This process's entry in ``run_folder``: its pid, its config file, its role
    (``main``: started by ``hub run``; ``child``: a server process it forked),
    whether it reloads, and its last answer (``seq`` counts them)."""

    def __init__(self, folder: Path, config_path: str | os.PathLike[str], role: str, *,
                 reloads: bool = True, parent: int | None = None):
        self.folder = Path(folder)
        self.pid = os.getpid()
        self.path = self.folder / f"{self.pid}.json"
        self.entry: dict[str, Any] = {
            "pid": self.pid, "started": _started(self.pid), "role": role, "parent": parent,
            "config": str(Path(config_path).resolve()), "reloads": reloads, "seq": 0,
            "answer": None}
        self.folder.mkdir(parents=True, exist_ok=True)
        # The entries of processes gone without a word (kill -9) go now.
        list(entries(self.folder, prune=True))
        self._save()

    def write(self, answer: Answer) -> None:
        self.entry.update(seq=answer.seq, answer=asdict(answer))
        self._save()

    def _save(self) -> None:
        part = self.path.with_name(f".{self.path.name}.part")
        part.write_text(json.dumps(self.entry, ensure_ascii=False), encoding="utf-8")
        os.replace(part, self.path)

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()


def entries(folder: Path, *, prune: bool = False) -> Iterator[dict[str, Any]]:
    """The entries of live processes in ``folder``; ``prune``: delete the others."""
    if not folder.is_dir():
        return
    for path in sorted(folder.glob("*.json")):
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # being replaced, or not ours
        if _alive(entry):
            yield entry
        elif prune:
            with contextlib.suppress(OSError):
                path.unlink()


def forward_to_children(folder: Path) -> Callable[..., None]:
    """A SIGHUP handler for a main process that forks server processes: the signal
    goes on to each child registered in ``folder`` with this process as parent."""
    def forward(*_args: Any) -> None:
        me = os.getpid()  # the forked children inherit this handler: theirs finds none
        for entry in entries(folder):
            if entry.get("parent") == me:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(entry["pid"]), signal.SIGHUP)
    return forward


class ReloadListener:
    """Reloads in a thread of its own when asked: ``request`` is safe in a signal
    handler (it only puts on a ``SimpleQueue``); requests that come while a reload
    runs are served by one more reload. Requests before ``start`` wait for it."""

    def __init__(self) -> None:
        self._requests: queue.SimpleQueue[bool] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._reload: Callable[[], Any] | None = None

    def request(self, *_args: Any) -> None:
        self._requests.put(True)

    def start(self, reload: Callable[[], Any]) -> ReloadListener:
        self._reload = reload
        self._thread = threading.Thread(target=self._run, name="hub-reload", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while self._requests.get():
            with contextlib.suppress(queue.Empty):
                while self._requests.get_nowait():
                    pass
            assert self._reload is not None
            try:
                self._reload()
            except Exception:  # noqa: BLE001 - the next SIGHUP tries again
                log.exception("reload")

    def stop(self, timeout: float = DRAIN_TIMEOUT + 10) -> None:
        """Let a reload under way finish, then end the thread."""
        self._requests.put(False)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None


def install_sighup(listener: ReloadListener) -> Any:
    """SIGHUP asks ``listener`` to reload; returns the previous handler."""
    return signal.signal(signal.SIGHUP, listener.request)


# -- hub reload ------------------------------------------------------------------------------


def ask_reload(config_path: str | os.PathLike[str], timeout: float = 120.0,
               poll: float = 0.1) -> list[dict[str, Any]]:
    """Ask the hub running ``config_path`` to reload and wait for the answers of
    its processes (``Answer`` as dicts, one per process that reloads). Raises
    ``HubError`` when no hub runs it or an answer does not come in ``timeout`` s."""
    folder = run_folder(config_path)
    wanted = str(Path(config_path).resolve())
    found = [e for e in entries(folder, prune=True) if e.get("config") == wanted]
    mains = {int(e["pid"]) for e in found if e.get("role") == "main"}
    if not mains:
        raise HubError(_("no hub is running {file} (no live process in {folder}); start it "
                         "with hub run", file=wanted, folder=folder))
    reloading = {int(e["pid"]): int(e.get("seq") or 0) for e in found if e.get("reloads")
                 and (int(e["pid"]) in mains or e.get("parent") in mains)}
    if not reloading:
        raise HubError(_("the hub's processes are still starting; try again in a moment"))
    for pid in sorted(mains):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGHUP)
    answers: dict[int, dict[str, Any]] = {}
    for _attempt in range(max(1, int(timeout / poll))):
        for entry in entries(folder):
            pid = int(entry["pid"])
            if pid in reloading and int(entry.get("seq") or 0) > reloading[pid]:
                answers[pid] = entry["answer"]
        if len(answers) == len(reloading):
            return [answers[pid] for pid in sorted(answers)]
        gone = [pid for pid in reloading if pid not in answers
                and not any(int(e["pid"]) == pid for e in entries(folder))]
        for pid in gone:
            reloading.pop(pid)
        time.sleep(poll)
    late = sorted(set(reloading) - set(answers))
    raise HubError(_("no answer from process(es) {pids} within {seconds} s; their logs say "
                     "what they did", pids=", ".join(map(str, late)), seconds=round(timeout)))
