"""Fault isolation: a healthy route's throughput while another route's endpoint times out.

Target (BRIEF section 6): with one endpoint timing out, healthy routes keep at
least 0.9x their throughput; nothing lost.

    python bench/fault_isolation.py             # 1000 healthy + 100 faulty messages, 7 rounds
    python bench/fault_isolation.py --quick     # 400 + 40, 3 rounds
    python bench/fault_isolation.py --broker memory     # the in-process broker instead
    python bench/fault_isolation.py --broker rabbitmq   # HUB_TEST_AMQP_URL or a throwaway node

One hub (the embedded default broker, kombu's SQL transport on SQLite, and a
SQLite store, in a temp dir; ``--broker memory``, ``rabbitmq`` or an
``amqp://`` URL instead) with two routes of the same shape, ``validate:
progress`` then ``to`` a REST connector with app-key signing:

- ``healthy`` consumes ``bench.healthy`` and calls connector ``county``,
  the sandbox's ``window_county`` department (``POST /progress``), which
  answers at once;
- ``faulty`` consumes ``bench.faulty`` and calls connector ``province``,
  the sandbox's ``window_province``. Its connector allows one attempt of
  ``--fault-timeout`` seconds (0.2); its route parks a failed message
  (``on_error: {retry: {attempts: 1}, then: park, park_for: 3600}``).

Both routes have the hub's defaults otherwise: concurrency 4, prefetch 8.
``faulty`` is declared first, so a broker that serves queues in declaration
order (the in-memory one) favours it: the worse case for the healthy route.
The sandbox (``hub sandbox``) runs in its own process on loopback; its fault
knobs are set over its control path between phases. Each phase is a fresh
hub, store and pair of broker queues (one broker database for the run); the
queues are filled before timing (healthy and faulty messages interleaved, one
faulty per ten healthy), and the phase times how long the hub takes to
complete every healthy message. The phases of a round, in rotating order:

- ``baseline``: ``window_province`` healthy; both routes complete everything;
- ``timeout``: ``window_province`` holds every request without answering
  (sandbox ``timeout`` knob) and the breaker never opens (``failures`` out of
  reach): every faulty message costs a worker of the faulty route the whole
  connector timeout, then is parked;
- ``breaker``: the same fault with the connector's default circuit breaker
  (opens after 5 consecutive failures, for 30 s): after five timeouts the
  faulty route fails fast and parks its messages as fast as it can take them,
  the busiest the faulty route gets;
- ``alone`` (reference, no target): only the healthy messages.

The figures are, for ``timeout`` and for ``breaker``, the median over rounds
of healthy msg/s in that scenario over healthy msg/s in the same round's
``baseline`` (a round's phases run within seconds of each other, so other
work drifting in beside the benchmark cancels out); both must be at least
0.9. The ratio of the medians is reported too.

Nothing lost, in every phase, counted in the hub's store, its broker and the
sandbox's received logs: every healthy message has a processed record with
outcome ``completed`` and reached ``window_county``; every faulty message
completed (baseline) or was parked (a parked row and a processed record with
outcome ``parked``); no dead letters; the route queues are empty. The run also
says whether the faulty route was still busy when the last healthy message
completed (otherwise the fault did not last the whole measurement).

On the SQL broker ``timeout`` comes out faster than ``baseline``: a channel at
its prefetch limit is skipped without a query, while an idle queue is polled
(a write transaction) once per delivery of the busy one, so a stuck route
costs the others less than an idle or a quick one. Results: a table on stdout
and bench/results/fault_isolation.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from prometheus_client import CollectorRegistry  # noqa: E402

from bdchub.core.envelope import Envelope  # noqa: E402
from bdchub.core.errors import HubError  # noqa: E402
from bdchub.routes.middleware import MetricsMiddleware, Middleware  # noqa: E402
from bdchub.routes.runtime import Hub  # noqa: E402
from bench.common import machine, median, table, target, write_results  # noqa: E402

TARGET = 0.9
TENANT = "320684"
HEALTHY, FAULTY = "healthy", "faulty"
SCENARIOS = ("baseline", "timeout", "breaker", "alone")
FAULTED = ("timeout", "breaker")
NO_BREAKER = {"failures": 1_000_000, "reset_after": 3600}


# -- the backend: the sandbox in its own process ------------------------------

class Sandbox:
    """``hub sandbox`` in a child process (its own session), known by the
    credentials file it writes once every endpoint listens."""

    def __init__(self, workdir: Path, timeout: float = 60.0):
        self.creds_file = workdir / "sandbox.json"
        self.log = workdir / "sandbox.log"
        argv = [sys.executable, str(ROOT / "hub.py"), "sandbox", "--auto-advance", "0",
                "--credentials-out", str(self.creds_file)]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=ROOT,
                                         env={**os.environ, "COLUMNS": "200"},
                                         start_new_session=True)
        try:
            self.doc = self._wait(timeout)
        except BaseException:
            self.stop()
            raise

    def _wait(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the sandbox exited with code {self.proc.returncode}:\n"
                                   f"{self.log.read_text(errors='replace')[-2000:]}")
            with contextlib.suppress(OSError, ValueError):
                doc = json.loads(self.creds_file.read_text(encoding="utf-8"))
                if doc.get("urls"):
                    return doc
            time.sleep(0.1)
        raise RuntimeError(f"the sandbox did not start within {timeout:.0f} s")

    def url(self, name: str) -> str:
        return self.doc["urls"][name]

    def credentials(self, name: str) -> dict[str, str]:
        return self.doc["credentials"][name]

    def _control(self, name: str, path: str, method: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.url(name)}/_sandbox/{path}", data=data,
                                     method=method, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as reply:  # noqa: S310 - loopback
            return json.loads(reply.read() or b"null")

    def faults(self, name: str, **knobs: Any) -> None:
        """Set fault knobs of one endpoint; none: clear them."""
        if knobs:
            self._control(name, "faults", "POST", knobs)
        else:
            self._control(name, "faults", "DELETE")

    def clear_received(self) -> None:
        for name in ("window_county", "window_province"):
            self._control(name, "received", "DELETE")

    def received(self, name: str) -> list[dict[str, Any]]:
        return self._control(name, "received", "GET")

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


# -- the hub ------------------------------------------------------------------

class Acks(Middleware):
    """Counts acknowledged messages per route; notes when the healthy ones are all done."""

    def __init__(self, healthy: int):
        self.healthy = healthy
        self.count = {HEALTHY: 0, FAULTY: 0}
        self.outcomes: dict[tuple[str, str], int] = {}
        self.lock = threading.Lock()
        self.healthy_done = threading.Event()
        self.faulty_at_healthy_done = 0
        self.changed = threading.Condition(self.lock)

    def on_ack(self, route: str, envelope: Any, outcome: str) -> None:
        with self.lock:
            self.count[route] = self.count.get(route, 0) + 1
            self.outcomes[route, outcome] = self.outcomes.get((route, outcome), 0) + 1
            if route == HEALTHY and self.count[HEALTHY] == self.healthy:
                self.faulty_at_healthy_done = self.count[FAULTY]
                self.healthy_done.set()
            self.changed.notify_all()

    def wait_for(self, route: str, n: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.lock:
            while self.count.get(route, 0) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.changed.wait(min(left, 0.5))
        return True


def rest_block(sandbox: Sandbox, name: str, *, timeout: float, retry: dict[str, Any],
               breaker: dict[str, Any] | None = None) -> dict[str, Any]:
    creds = sandbox.credentials(name)
    block = {"type": "rest", "base_url": sandbox.url(name), "timeout": timeout, "retry": retry,
             "auth": {"scheme": "appkey", "app_key": creds["app_key"],
                      "app_secret": creds["app_secret"]},
             "success": {"path": "code", "ok": ["0"], "message_path": "message"},
             "operations": {"report_progress": {"method": "POST", "path": "/progress",
                                                "response": "data"}}}
    if breaker is not None:
        block["breaker"] = breaker
    return block


def hub_config(sandbox: Sandbox, broker: str, store: str, scenario: str,
               fault_timeout: float) -> dict[str, Any]:
    def route(type_: str, connector: str) -> dict[str, Any]:
        return {"from": type_, "on_error": {"retry": {"attempts": 1}, "then": "park",
                                            "park_for": 3600},
                "steps": [{"validate": "progress"},
                          {"to": {"connector": connector, "operation": "report_progress"}}]}

    return {"tenant": TENANT, "broker": {"url": broker}, "store": {"url": store},
            "connectors": {
                "county": rest_block(sandbox, "window_county", timeout=10.0,
                                     retry={"attempts": 3, "backoff": 0.5}),
                "province": rest_block(sandbox, "window_province", timeout=fault_timeout,
                                       retry={"attempts": 1},
                                       breaker=None if scenario == "breaker" else NO_BREAKER)},
            # faulty first: the in-memory broker serves queues in this order.
            "routes": {FAULTY: route("bench.faulty", "province"),
                       HEALTHY: route("bench.healthy", "county")}}


def body(i: int) -> dict[str, Any]:
    return {"business_no": f"320684-2026-{i:07d}", "stage": "review", "status": "in_progress",
            "time": "2026-03-01T09:30:00+08:00",
            "organisation": {"name": "海门区不动产登记中心", "division_code": TENANT}}


def interleaved(n: int, m: int) -> list[str]:
    """``n`` healthy and ``m`` faulty message kinds, the faulty ones spread evenly."""
    kinds: list[str] = []
    placed = 0
    for i in range(n):
        while placed < m and placed * n <= i * m:
            kinds.append(FAULTY)
            placed += 1
        kinds.append(HEALTHY)
    kinds.extend([FAULTY] * (m - placed))
    return kinds


def broker_url(kind: str, workdir: Path) -> str:
    if kind == "sqlite":
        return f"sqla+sqlite:///{workdir / 'broker.db'}"
    if kind == "memory":
        return "memory://"
    return kind


def delete_queues(url: str, names: list[str]) -> None:
    """RabbitMQ keeps durable queues: remove a phase's own (empty) ones."""
    if not url.startswith(("amqp://", "amqps://", "pyamqp://")):
        return
    import kombu

    with contextlib.suppress(Exception), kombu.Connection(url) as conn, \
            conn.channel() as channel:
        for name in names:
            kombu.Queue(name)(channel).delete()


def phase(sandbox: Sandbox, scenario: str, *, n: int, m: int, broker: str, workdir: Path,
          fault_timeout: float, drain_timeout: float = 300.0) -> dict[str, Any]:
    """One hub over a fresh broker and store: fill the queues, time the healthy route
    to its last message, wait for the faulty one, then count what became of each message."""
    m = 0 if scenario == "alone" else m
    folder = workdir / f"{scenario}-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True)
    sandbox.clear_received()
    if scenario in FAULTED:
        sandbox.faults("window_province", timeout=True)
    else:
        sandbox.faults("window_province")
    acks = Acks(n)
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    url = broker_url(broker, workdir)
    config = hub_config(sandbox, url, f"sqlite:///{folder / 'store.db'}", scenario,
                        fault_timeout)
    config["__dir__"] = str(folder)  # the hub's own files (data key, audit) stay in the run's folder
    hub = Hub.from_config(config,
                          prefix=prefix, middleware=[acks], inline=False,
                          metrics=MetricsMiddleware(CollectorRegistry()))
    started = False
    try:
        hub.declare()
        for i, kind in enumerate(interleaved(n, m)):
            b = body(i)
            hub.publish(Envelope(type=f"bench.{kind}", tenant=TENANT, body=b,
                                 business_no=b["business_no"]))
        t0 = time.perf_counter()
        hub.start()
        started = True
        healthy_ok = acks.healthy_done.wait(drain_timeout)
        elapsed = time.perf_counter() - t0
        faulty_busy = acks.faulty_at_healthy_done < m
        faulty_ok = acks.wait_for(FAULTY, m, drain_timeout)
        faulty_elapsed = time.perf_counter() - t0
        counts = account(hub, sandbox, acks)
    finally:
        queues = [r.queue for r in hub.routes.values()]
        if started:
            hub.stop(timeout=10)
        else:
            hub.close()
        delete_queues(url, queues)
        shutil.rmtree(folder, ignore_errors=True)
    expected = expectations(scenario, n, m)
    lost = {k: (counts.get(k), v) for k, v in expected.items() if counts.get(k) != v}
    return {"scenario": scenario, "healthy": n, "faulty": m,
            "healthy_msgs_per_s": n / elapsed if healthy_ok else 0.0,
            "healthy_seconds": round(elapsed, 3), "faulty_seconds": round(faulty_elapsed, 3),
            "faulty_busy_throughout": faulty_busy if m else None,
            "faulty_done_when_healthy_done": acks.faulty_at_healthy_done,
            "drained": healthy_ok and faulty_ok, "counts": counts,
            "mismatches": {k: {"got": g, "expected": e} for k, (g, e) in lost.items()},
            "nothing_lost": healthy_ok and faulty_ok and not lost}


def account(hub: Hub, sandbox: Sandbox, acks: Acks) -> dict[str, Any]:
    """What the store, the broker and the endpoints say became of the messages."""
    store = hub.store
    counts: dict[str, Any] = {}
    for route in (HEALTHY, FAULTY):
        counts[f"{route}.acked"] = acks.count.get(route, 0)
        for outcome in ("completed", "parked"):
            counts[f"{route}.processed.{outcome}"] = store.count("processed", route=route,
                                                                 outcome=outcome)
        counts[f"{route}.processed"] = store.count("processed", route=route)
        counts[f"{route}.parked_rows"] = store.count("parked", route=route)
        counts[f"{route}.dead_letters"] = store.count("dead_letters", route=route)
        size = hub.broker.queue_size(hub.routes[route].queue)
        counts[f"{route}.queue_left"] = size if size is not None else 0
    counts["window_county.received"] = len(sandbox.received("window_county"))
    counts["window_province.received"] = len(sandbox.received("window_province"))
    return counts


def expectations(scenario: str, n: int, m: int) -> dict[str, int]:
    """Counts that prove nothing was lost (or done twice) in one phase."""
    parked = m if scenario in FAULTED else 0
    want = {"healthy.acked": n, "healthy.processed": n, "healthy.processed.completed": n,
            "healthy.parked_rows": 0, "healthy.dead_letters": 0, "healthy.queue_left": 0,
            "window_county.received": n,
            "faulty.acked": m, "faulty.processed": m, "faulty.processed.completed": m - parked,
            "faulty.processed.parked": parked, "faulty.parked_rows": parked,
            "faulty.dead_letters": 0, "faulty.queue_left": 0}
    if scenario != "breaker":  # with the breaker open, calls never reach the endpoint
        want["window_province.received"] = m
    return want


# -- the run ------------------------------------------------------------------

def run(*, n: int, m: int, rounds: int, broker: str, fault_timeout: float,
        scenarios: tuple[str, ...] = SCENARIOS, warmup: bool = True,
        drain_timeout: float = 300.0, log: Any = print) -> dict[str, Any]:
    """Every round runs each scenario once (rotating order); medians and verdict.
    ``broker``: sqlite, memory, rabbitmq (HUB_TEST_AMQP_URL or a throwaway node) or a URL."""
    workdir = Path(tempfile.mkdtemp(prefix="bdchub-fault-"))
    phases: list[dict[str, Any]] = []
    sandbox = node = None
    try:
        if broker == "rabbitmq":
            broker = os.environ.get("HUB_TEST_AMQP_URL") or ""
            if not broker:
                from tools.services import RabbitNode

                node = RabbitNode()
                node.start()
                broker = node.url
        sandbox = Sandbox(workdir)
        if warmup:  # schema tables, the sandbox's and the hub's first connections
            phase(sandbox, "baseline", n=min(n, 200), m=min(m, 20), broker=broker,
                  workdir=workdir, fault_timeout=fault_timeout, drain_timeout=drain_timeout)
        for r in range(rounds):
            order = scenarios[r % len(scenarios):] + scenarios[:r % len(scenarios)]
            line = []
            for scenario in order:
                result = phase(sandbox, scenario, n=n, m=m, broker=broker, workdir=workdir,
                               fault_timeout=fault_timeout, drain_timeout=drain_timeout)
                result["round"] = r + 1
                phases.append(result)
                line.append(f"{scenario} {result['healthy_msgs_per_s']:.0f}"
                            + ("" if result["nothing_lost"] else " (LOST)"))
            log(f"round {r + 1}: healthy msg/s " + ", ".join(line), flush=True)
    finally:
        if sandbox is not None:
            sandbox.stop()
        if node is not None:
            node.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
    rates = {s: [p["healthy_msgs_per_s"] for p in phases if p["scenario"] == s]
             for s in scenarios}
    med = {s: median(v) for s, v in rates.items() if v}
    base = med.get("baseline") or float("nan")
    # Each phase against the baseline of its own round: other work on the machine
    # drifts over minutes, and a round's phases run within seconds of each other.
    per_round = {s: [p["healthy_msgs_per_s"] / b["healthy_msgs_per_s"]
                     for p in phases if p["scenario"] == s
                     for b in phases if b["scenario"] == "baseline" and b["round"] == p["round"]
                     and b["healthy_msgs_per_s"]]
                 for s in scenarios if s != "baseline"}
    ratios = {s: median(v) for s, v in per_round.items() if v}
    of_medians = {s: med[s] / base for s in med if s != "baseline"}
    nothing_lost = all(p["nothing_lost"] for p in phases)
    busy = all(p["faulty_busy_throughout"] for p in phases if p["scenario"] == "timeout")
    met = all(ratios.get(s, 0.0) >= TARGET for s in FAULTED if s in scenarios)
    return {"benchmark": "fault_isolation",
            "broker": "rabbitmq" if broker.startswith("amqp") else broker, "healthy_per_phase": n,
            "faulty_per_phase": m, "rounds": rounds, "fault_timeout_s": fault_timeout,
            "route_concurrency": 4, "healthy_msgs_per_s": {s: [round(x, 1) for x in v]
                                                            for s, v in rates.items()},
            "median_healthy_msgs_per_s": {s: round(v, 1) for s, v in med.items()},
            "ratio_over_baseline": {s: round(v, 3) for s, v in ratios.items()},
            "ratio_per_round": {s: [round(x, 3) for x in v] for s, v in per_round.items()},
            "ratio_of_medians": {s: round(v, 3) for s, v in of_medians.items()},
            "target": TARGET, "target_met": met, "nothing_lost": nothing_lost,
            "faulty_busy_throughout": busy, "pass": met and nothing_lost,
            "phases": phases, "machine": machine(),
            "targets": [*(target(f"healthy route while another's department hangs ({s}) / "
                                 "baseline", round(ratios[s], 3), TARGET, unit="x")
                          for s in FAULTED if s in ratios),
                        target("phases that lost nothing", sum(p["nothing_lost"] for p in phases),
                               len(phases))],
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def report(out: dict[str, Any]) -> str:
    med = out["median_healthy_msgs_per_s"]
    ratios = out["ratio_over_baseline"]
    notes = {"baseline": "window_province healthy", "timeout": "province hangs, no breaker",
             "breaker": "province hangs, default breaker", "alone": "no faulty messages (ref.)"}
    rows = []
    for s in SCENARIOS:
        if s not in med:
            continue
        ph = [p for p in out["phases"] if p["scenario"] == s]
        each = out["ratio_per_round"].get(s) or [1.0]
        rows.append((s, notes[s], med[s], 1.0 if s == "baseline" else ratios.get(s),
                     f"{min(each):.2f}-{max(each):.2f}", out["ratio_of_medians"].get(s, 1.0),
                     "yes" if all(p["nothing_lost"] for p in ph) else "NO"))
    text = table(["scenario", "", "median msg/s", "x baseline", "rounds",
                  "x (medians)", "nothing lost"], rows)
    verdicts = ", ".join(f"{s} {ratios[s]:.2f}" for s in FAULTED if s in ratios)
    text += (f"\n\nhealthy route's throughput with the fault / baseline, median of "
             f"{out['rounds']} rounds: {verdicts} (target >= {TARGET}); "
             f"nothing lost: {'yes' if out['nothing_lost'] else 'NO'}")
    if not out["faulty_busy_throughout"]:
        text += ("\nwarning: the faulty route drained before the healthy one finished in some "
                 "timeout phase; raise --faulty or --fault-timeout")
    for p in out["phases"]:
        if p["mismatches"] or not p["drained"]:
            state = "drained" if p["drained"] else "NOT DRAINED"
            text += (f"\nround {p['round']} {p['scenario']}: {state}; "
                     f"mismatches (got, expected): {p['mismatches']}")
    return text


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("-n", type=int, default=None,
                        help="healthy messages per phase (default 1000, --quick 400)")
    parser.add_argument("--faulty", type=int, default=None,
                        help="faulty messages per phase (default n / 10)")
    parser.add_argument("--rounds", type=int, default=None, help="default 7, --quick 3")
    parser.add_argument("--broker", default="sqlite",
                        help="sqlite (embedded default), memory, rabbitmq, or a broker URL")
    parser.add_argument("--fault-timeout", type=float, default=0.2,
                        help="seconds the faulty connector waits for an answer")
    args = parser.parse_args(argv)
    n = args.n or (400 if args.quick else 1000)
    m = args.faulty if args.faulty is not None else max(1, n // 10)
    rounds = args.rounds or (3 if args.quick else 7)
    try:
        out = run(n=n, m=m, rounds=rounds, broker=args.broker, fault_timeout=args.fault_timeout)
    except (RuntimeError, OSError, HubError) as exc:
        print(f"fault_isolation: setup failed: {exc}", file=sys.stderr)
        return 2
    out["quick"] = args.quick
    print()
    print(report(out))
    path = write_results("fault_isolation", out)
    print(f"\nresults: {path.relative_to(ROOT)}")
    return 0 if out["pass"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
