"""The console's overview (issue #13, item 1 "Overview")::

    GET {path}/overview                           connectors, breakers, routes, held
                                                  messages, throughput, recent warnings;
                                                  refreshed by static/overview.js
    GET {path}/api/overview                       the running hub's status (as
                                                  ``hub status --json``) with its recent
                                                  warnings, as JSON
    GET {path}/api/overview/throughput?window=hour|day&route=
                                                  messages handled and failed per minute
                                                  (hour) or quarter hour (day)

The status comes through ``STATUS_SOURCES`` (the assembly floor registers
``app.status.status`` there), since the console sits below that floor; the
warnings ride in the processes' status reports (``app.status.RecentWarnings``);
the throughput is read from the store (``console.throughput``), so it is the same
across processes and restarts. All three need ``overview.read``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from bdchub.core.i18n import _
from bdchub.core.leases import Leases
from bdchub.core.registry import Registry
from bdchub.web.http import Answer, ApiError, json_answer

from . import throughput
from .api import ConsoleApp, ConsoleRequest, require
from .frame import e, layout, page

#: ``status(hub, reports, now, depth) -> document`` of the running hub (``app.status``).
STATUS_SOURCES: Registry[Callable[..., dict[str, Any]]] = Registry("console status source")
MAX_ROUTE = 200


def install(app: ConsoleApp) -> None:
    """Add the overview's page and its JSON endpoints to ``app``."""
    app.add("GET", "/overview", page("overview.read")(_overview_page))
    app.add("GET", "/api/overview", require("overview.read")(_overview_api))
    app.add("GET", "/api/overview/throughput", require("overview.read")(_throughput_api))


def _routes(hub: Any) -> list[str]:
    """The routes the throughput counts: those that take messages from a queue."""
    return sorted(name for name, route in (getattr(hub, "routes", None) or {}).items()
                  if not getattr(route, "sync", False))


def _overview_page(req: ConsoleRequest) -> str:
    labels = {"up": _("up"), "degraded": _("degraded"), "down": _("down"),
              "closed": _("circuit closed"), "open": _("circuit open"),
              "half-open": _("circuit half-open"),
              "unknown": _("no report"), "parked": _("parked"), "waiting": _("waiting"),
              "dead_letters": _("dead letters"), "stale": _("the hub is not reporting"),
              "failed": _("could not refresh"), "succeeded": _("messages that went through"),
              "failures": _("messages that failed"), "error_rate": _("error rate (%)"),
              "no_warnings": _("no warnings"),
              "no_singletons": _("no singleton holds a lease (none configured, or its holder "
                                 "died and none has taken it yet)"),
              "expired": _("expired")}
    options = "".join(f'<option value="{e(name)}">{e(name)}</option>'
                      for name in _routes(req.console.hub))
    return layout(req, _("Overview"), f"""
<h1>{e(_("Overview"))}</h1>
<p class="updated">{e(_("Updated"))}: <span id="updated">-</span>
<span id="refresh-error" class="message"></span></p>
<section id="overview" data-labels="{e(json.dumps(labels, ensure_ascii=False))}">
<h2>{e(_("Connectors"))}</h2>
<table id="connectors"><thead><tr><th>{e(_("connector"))}</th><th>{e(_("type"))}</th>
<th>{e(_("health"))}</th><th>{e(_("breaker"))}</th><th>{e(_("latency (ms)"))}</th>
<th>{e(_("calls / errors (1 min)"))}</th></tr></thead><tbody></tbody></table>
<h2>{e(_("Routes"))}</h2>
<table id="routes"><thead><tr><th>{e(_("route"))}</th><th>{e(_("queue depth"))}</th>
<th>{e(_("in flight"))}</th><th>{e(_("parked"))}</th><th>{e(_("waiting"))}</th>
<th>{e(_("dead letters"))}</th></tr></thead><tbody></tbody></table>
<h2>{e(_("Held messages per route"))}</h2>
<div id="held-chart" class="chart"></div>
<h2>{e(_("Throughput and error rate"))}</h2>
<form class="search" id="throughput-form">
<label>{e(_("Period"))} <select id="throughput-window">
<option value="hour">{e(_("last hour, per minute"))}</option>
<option value="day">{e(_("last day, per quarter hour"))}</option></select></label>
<label>{e(_("Route"))} <select id="throughput-route">
<option value="">{e(_("the whole hub"))}</option>{options}</select></label></form>
<p>{e(_("Messages handled"))}: <span id="throughput-handled">-</span>,
{e(_("of them failed"))}: <span id="throughput-failed">-</span>
<span id="throughput-error" class="message"></span></p>
<div id="throughput-chart" class="chart"></div>
<h2>{e(_("Singletons"))}</h2>
<table id="singletons"><thead><tr><th>{e(_("singleton"))}</th><th>{e(_("process"))}</th>
<th>{e(_("since"))}</th><th>{e(_("lease left (s)"))}</th></tr></thead><tbody></tbody></table>
<h2>{e(_("Recent warnings"))}</h2>
<table id="warnings"><thead><tr><th>{e(_("time"))}</th><th>{e(_("process"))}</th>
<th>{e(_("level"))}</th><th>{e(_("warning"))}</th></tr></thead><tbody></tbody></table>
</section>""", script=f'<script src="{e(req.console.prefix)}/static/vendor/echarts/'
                       'echarts.min.js" defer></script>\n'
                       f'<script src="{e(req.console.prefix)}/static/overview.js" defer>'
                       '</script>\n')


def _overview_api(req: ConsoleRequest) -> Answer:
    hub = req.console.hub
    if "hub" not in STATUS_SOURCES:
        raise ApiError(503, "status_unavailable",
                       _("this hub does not report its status"), reason="no_status_source")
    document = STATUS_SOURCES.get("hub")(hub, hub.store.process_reports(), time.time(),
                                         hub.broker.queue_size,
                                         leases=Leases(hub.store.engine).held())
    operator = req.operator
    assert operator is not None
    # A warning about a case of a tenant the operator may not see is not theirs to read.
    document["warnings"] = [w for w in document.get("warnings") or []
                            if not w.get("tenant") or operator.sees(str(w["tenant"]))]
    return json_answer(200, document)


def _throughput_api(req: ConsoleRequest) -> Answer:
    window = req.arg("window") or "hour"
    if window not in throughput.WINDOWS:
        raise ApiError(400, "bad_window", _("the period is hour or day"), reason="form")
    route = req.arg("route").strip()[:MAX_ROUTE] or None
    known = _routes(req.console.hub)
    if route is not None and known and route not in known:
        raise ApiError(400, "bad_route", _("no route named '{name}'", name=route),
                       reason="form")
    found = throughput.throughput(req.console.hub.store, window, time.time(), route)
    return json_answer(200, {**found, "routes": known})
