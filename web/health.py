"""``/healthz`` and ``/readyz``: is the process alive, and is the hub ready for work.

``/healthz`` answers 200 while the process answers requests at all: what a
service manager restarts the hub on. ``/api/v1/health`` is the same answer
under the API's prefix (its older name, kept for clients and monitors that
call it).

``/readyz`` asks each part of the running hub (``core.health``: the store,
the broker, the route workers and, where this process runs them, the pollers)
and answers 200 when every one answers, else 503 with the failing parts named,
in the caller's language (Chinese by default) like every other answer::

    {"status": "not_ready", "message": "未就绪：消息代理（broker）无应答",
     "failing": ["broker"],
     "parts": [{"name": "store", "ok": true},
               {"name": "broker", "ok": false, "error": "OperationalError: …"}, …]}

A department being down does not make the hub unready: its messages park and
its breaker opens (``/metrics``, the log), while the hub keeps taking work.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from bdchub.core.health import Part
from bdchub.core.i18n import _

from .http import Answer, Request, json_answer

Readiness = Callable[[], Iterable[Part]]


def part_label(name: str) -> str:
    """A part's name as a sentence names it."""
    labels = {"store": _("the store (store)"), "broker": _("the message broker (broker)"),
              "workers": _("the route workers (workers)"), "pollers": _("the pollers (pollers)")}
    return labels.get(name, name)


class Health:
    """The two answers; ``readiness`` is the running hub's (None: nothing to ask,
    as for an application over a test's fake hub)."""

    def __init__(self, tenant: str, readiness: Readiness | None = None):
        self.tenant = tenant
        self.readiness = readiness

    def alive(self, req: Request) -> Answer:
        return json_answer(200, {"status": "ok", "tenant": self.tenant})

    def ready(self, req: Request) -> Answer:
        parts = list(self.readiness()) if self.readiness is not None else []
        failing = [p for p in parts if not p.ok]
        body: dict[str, object] = {
            "status": "not_ready" if failing else "ready", "tenant": self.tenant,
            "parts": [{"name": p.name, "ok": p.ok, **({"error": p.error[:300]} if not p.ok else {})}
                      for p in parts]}
        if not failing:
            return json_answer(200, body)
        body["failing"] = [p.name for p in failing]
        body["message"] = _("not ready: {parts} not answering",
                            parts=_(", ").join(part_label(p.name) for p in failing))
        return json_answer(503, body)
