"""Province dispatch: messages per second through the province hub's dispatch route
with 1, 2 and 4 ``hub run`` workers on RabbitMQ + PostgreSQL, as a ratio to 1 worker.

    python bench/province_dispatch.py              # 1, 2, 4 workers, 2 rounds, 15 s windows
    python bench/province_dispatch.py --quick      # 1, 2 workers, 1 round, 4 s windows
    python bench/province_dispatch.py --workers 1,2,3,4 --window 20

The route is config.province.yaml's ``tax_cleared_down`` as shipped: a
``tax.cleared`` message dispatched by the division code of its business number
to the county hub's connector (a signed envelope POSTed to the county's
``/api/v1/hub/envelopes``), the county's acknowledgement kept as a verification
record (``county_ack``), with what the hub does per message (duplicate check,
processed record and hops in the store). The three counties' hubs are one
loopback sink (bench/county_sink.py: answers as a county hub does, does no work),
so the province's side is what is measured.

Each configuration runs on the same private RabbitMQ (quorum route queues, as a
multi-worker deployment has them: docs/deployment.md) and PostgreSQL (a fresh
database each time), under a fresh queue prefix: the route queue is filled
with ``tax.cleared`` messages for the three counties, then N ``hub run
--no-pollers`` workers start; once all listen and a warm-up has passed, the
sink's count over a fixed window gives the rate (the queue must still hold
messages at the window's end: the workers were never starved). Every message
must reach the sink; duplicates (at-least-once) are counted. Rounds interleave
the worker counts; medians are reported, with the ratio to 1 worker of the
same run. CPU seconds of the workers, the sink, RabbitMQ and PostgreSQL over
the window (from /proc) and the machine's idle share say where it stops.

RabbitMQ and PostgreSQL: ``HUB_TEST_AMQP_URL`` / ``HUB_TEST_POSTGRES_URL``, or
throwaway servers on loopback (tools/services.py). Results: a table on stdout
and bench/results/province_dispatch.json. No target: the figures are the result.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import Child, free_port, get_json, machine, post_json, table, write_results  # noqa: E402

PROVINCE_CONFIG = ROOT / "config.province.yaml"
ROUTE = "tax_cleared_down"
COUNTIES = ("320684", "320682", "320681")
TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


# -- servers ----------------------------------------------------------------

@dataclass
class Servers:
    amqp_url: str
    pg_url: str
    #: process roots whose CPU is counted (absent for servers started elsewhere)
    roots: dict[str, int] = field(default_factory=dict)


@contextlib.contextmanager
def servers() -> Iterator[Servers]:
    """RabbitMQ and PostgreSQL: the ones the environment names, else private ones."""
    from tools.services import PostgresServer, RabbitNode

    started: list[Any] = []
    try:
        amqp = os.environ.get("HUB_TEST_AMQP_URL")
        roots: dict[str, int] = {}
        if not amqp:
            node = RabbitNode()
            node.start()
            started.append(node)
            amqp = node.url
            roots["rabbitmq"] = node.proc.pid
        pg = os.environ.get("HUB_TEST_POSTGRES_URL")
        if not pg:
            server = PostgresServer()
            server.start()
            started.append(server)
            pg = server.url
            pid_file = server.data / "postmaster.pid"
            roots["postgresql"] = int(pid_file.read_text().split()[0])
        yield Servers(amqp, pg, roots)
    finally:
        for server in reversed(started):
            server.cleanup()


def fresh_database(pg_url: str) -> str:
    """A new, empty database on the server at ``pg_url``: each configuration its own
    (as the tests make theirs)."""
    from tools import services

    return services.fresh_database(pg_url)


# -- CPU accounting -----------------------------------------------------------

def _proc_table() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds so far) of every process."""
    out: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                raw = f.read().decode(errors="replace")
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2:].split()
        out[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / TICKS)
    return out


def cpu_seconds(roots: dict[str, int]) -> dict[str, float]:
    """CPU seconds so far of each named process and its descendants (live ones)."""
    procs = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _cpu) in procs.items():
        children.setdefault(ppid, []).append(pid)
    out = {}
    for name, root in roots.items():
        total, todo = 0.0, [root]
        while todo:
            pid = todo.pop()
            if pid in procs:
                total += procs[pid][1]
                todo.extend(children.get(pid, ()))
        out[name] = total
    return out


def machine_times() -> tuple[float, float]:
    """(busy, idle) seconds of all CPUs so far (/proc/stat)."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / TICKS, idle / TICKS


# -- one configuration ----------------------------------------------------------

def province_config(folder: Path, prefix: str) -> Path:
    """config.province.yaml under its own queue prefix, the route queues quorum queues."""
    folder.mkdir(parents=True, exist_ok=True)
    text = PROVINCE_CONFIG.read_text(encoding="utf-8")
    assert "\nbroker:\n" in text
    text = text.replace("\nbroker:\n", f"\nbroker:\n  prefix: {prefix}\n  queue_type: quorum\n", 1)
    path = folder / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def environ(config: Path, *, amqp: str, store: str, sink: str, data: Path) -> dict[str, str]:
    """The workers' variables: servers, the sink as every county's hub, fresh secrets
    for every one left at its published default (``hub run`` refuses those)."""
    from bdchub.core.config import load
    from bdchub.core.secrets import DEMO_SECRETS_KEY

    env = {**os.environ, "HUB_BROKER_URL": amqp, "HUB_STORE_URL": store,
           "HUB_DATA_DIR": str(data), "HUB_LOG_LEVEL": "WARNING"}
    for code in COUNTIES:
        env[f"HUB_COUNTY_{code}_URL"] = sink
    found = load(config, environ=env)[DEMO_SECRETS_KEY]
    return {**env, **{s.variables[0]: secrets.token_hex(24) for s in found}}


def clearance(i: int) -> tuple[str, dict[str, Any]]:
    """The i-th message's business number (a county's code first) and body."""
    business_no = f"{COUNTIES[i % len(COUNTIES)]}2026{i:08d}"
    return business_no, {"business_no": business_no, "status": "paid",
                         "declaration_no": f"SB320000{i:08d}", "voucher_no": f"PZ{i:010d}",
                         "tax_amount": "1250.00", "cleared_at": "2026-03-01T10:00:00+08:00"}


def fill(config: Path, env: dict[str, str], n: int) -> tuple[float, Any]:
    """Publish n tax.cleared messages to the route's queue (declared as the workers
    will); (seconds taken, the publishing hub for the queue's size and clean-up)."""
    from bdchub.core.config import load
    from bdchub.core.envelope import Envelope
    from bdchub.routes.runtime import Hub

    hub = Hub.from_config(load(config, environ=env), build_connectors=False)
    hub.declare()
    t0 = time.perf_counter()
    for i in range(n):
        business_no, body = clearance(i)
        hub.publish(Envelope(type="tax.cleared", tenant="320000", body=body,
                             business_no=business_no))
    return time.perf_counter() - t0, hub


def worker_argv(config: Path, port: int) -> list[str]:
    return [sys.executable, str(ROOT / "hub.py"), "--lang", "en", "run", "-c", str(config),
            "--no-pollers", "--port", str(port), "--log-level", "warning"]


def measure(workers: int, n: int, *, srv: Servers, sink: Child, workdir: Path,
            window: float, warmup: float) -> dict[str, Any]:
    """One configuration: fill, start ``workers`` hub runs, time the window, drain."""
    prefix = f"pd{uuid.uuid4().hex[:10]}"
    folder = workdir / prefix
    config = province_config(folder, prefix)
    data = folder / "data"
    data.mkdir()
    env = environ(config, amqp=srv.amqp_url, store=fresh_database(srv.pg_url), sink=sink.url,
                  data=data)
    post_json(sink.url + "/reset", b"{}")
    fill_s, hub = fill(config, env, n)  # also makes the data key the workers share
    queue = hub.routes[ROUTE].queue
    running: list[Child] = []
    try:
        for w in range(workers):
            port = free_port()
            running.append(Child(f"{prefix}-w{w}", worker_argv(config, port), port=port,
                                 logdir=folder, env=env, cwd=folder, timeout=90))
        # The window opens once the workers deliver (a worker answers HTTP before its
        # consumers have taken their first messages; on a slow machine a fixed pause
        # measured a window before any had) and then ``warmup`` more.
        first_deadline = time.monotonic() + 60.0
        while get_json(sink.url + "/count")["unique"] == 0:
            if time.monotonic() > first_deadline:
                raise RuntimeError(f"no message reached the sink 60 s after {workers} "
                                   f"worker(s) started:\n" + "\n".join(
                                       c.log.read_text(errors="replace")[-2000:]
                                       for c in running))
            time.sleep(0.1)
        first_at = time.perf_counter()
        time.sleep(warmup)
        roots = {**srv.roots, "sink": sink.proc.pid,
                 **{f"worker{w}": c.proc.pid for w, c in enumerate(running)}}
        cpu0, mach0 = cpu_seconds(roots), machine_times()
        c0, t0 = get_json(sink.url + "/count")["unique"], time.perf_counter()
        deadline = t0 + window
        while time.perf_counter() < deadline:
            time.sleep(0.25)
        c1, t1 = get_json(sink.url + "/count")["unique"], time.perf_counter()
        cpu1, mach1 = cpu_seconds(roots), machine_times()
        backlog = hub.broker.queue_size(queue)
        # Then every message to the sink (bounded): a rate without loss.
        drain_deadline = time.monotonic() + max(60.0, 3 * n / max(1.0, (c1 - c0) / (t1 - t0)))
        counted = get_json(sink.url + "/count")
        while counted["unique"] < n and time.monotonic() < drain_deadline:
            time.sleep(0.1)
            counted = get_json(sink.url + "/count")
        all_at = time.perf_counter()
        for child in running:
            if child.proc.poll() is not None:
                raise RuntimeError(f"worker {child.name} exited ({child.proc.returncode}):\n"
                                   f"{child.log.read_text(errors='replace')[-3000:]}")
    finally:
        for child in running:
            child.stop(timeout=20)
        _delete_queues(hub)
        hub.close()
    seconds = t1 - t0
    busy, idle = mach1[0] - mach0[0], mach1[1] - mach0[1]
    cpu = {name: round((cpu1[name] - cpu0.get(name, 0.0)) / seconds, 3) for name in cpu1}
    return {"workers": workers, "messages": n, "fill_s": round(fill_s, 2),
            "window_s": round(seconds, 2), "in_window": c1 - c0,
            "msgs_per_s": round((c1 - c0) / seconds, 1), "backlog_at_end": backlog,
            # first arrival to the last (a fill the workers emptied before the window
            # closed still gives the rate that sizes the next fills)
            "overall_msgs_per_s": round(counted["unique"] / max(all_at - first_at, 0.1), 1),
            "starved": backlog == 0, "reached_sink": counted["unique"],
            "duplicates": counted["total"] - counted["unique"],
            # CPUs in use (1.0 = one core busy the whole window), per process tree
            "cpu_cores": {**cpu, "workers": round(sum(v for k, v in cpu.items()
                                                      if k.startswith("worker")), 3)},
            "machine_busy": round(busy / (busy + idle), 3) if busy + idle else None,
            # CPUs busy with something else than the processes above (other work on
            # the machine, or servers started elsewhere): a disturbed window
            "other_cores": round(busy / seconds - sum(v for k, v in cpu.items()), 3)}


def _delete_queues(hub: Any) -> None:
    """Leave RabbitMQ as it was: this configuration's queues go (quorum queues stay
    until deleted)."""
    import kombu

    names = [r.queue for r in hub.routes.values() if not r.sync]
    names += [f"{hub.broker.prefix}.dead", hub.engine.await_queue] if hasattr(
        hub.broker, "prefix") else []
    with contextlib.suppress(Exception), kombu.Connection(hub.broker.url) as conn, \
            conn.channel() as channel:
        for name in names:
            with contextlib.suppress(Exception):
                kombu.Queue(name)(channel).delete()


# -- the run -------------------------------------------------------------------

def run(worker_counts: Sequence[int], *, rounds: int, window: float, warmup: float,
        n_first: int, max_fill: int, quick: bool) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="bdchub-bench-province-"))
    results: dict[int, list[dict[str, Any]]] = {k: [] for k in worker_counts}
    try:
        with servers() as srv:
            port = free_port()
            sink = Child("sink", [sys.executable, str(ROOT / "bench" / "county_sink.py"),
                                  str(port)], port=port, logdir=workdir)
            try:
                # Warm-up (not counted): RabbitMQ's and PostgreSQL's first queues and
                # tables, and a first rate to size the fills so no window runs dry.
                warm = measure(1, n_first, srv=srv, sink=sink, workdir=workdir,
                               window=max(2.0, window / 3), warmup=warmup)
                per_worker = max(warm["msgs_per_s"], warm["overall_msgs_per_s"], 10.0)
                print(f"warm-up: 1 worker {warm['msgs_per_s']:.0f} msg/s in its window, "
                      f"{warm['overall_msgs_per_s']:.0f} msg/s first to last", flush=True)
                for r in range(rounds):
                    for k in worker_counts:
                        # Enough for the workers' start, the warm-up and the window at
                        # k times the rate of one (no more than the machine's cores
                        # can run), with room to spare; what is left drains after it.
                        start_s = 3.0 + 1.5 * k
                        scale = min(k, os.cpu_count() or 1)
                        n = int(per_worker * scale * (start_s + warmup + window) * 1.4)
                        n = max(200, min(max_fill, n))
                        found = measure(k, n, srv=srv, sink=sink, workdir=workdir,
                                        window=window, warmup=warmup)
                        results[k].append(found)
                        print(f"round {r + 1}: {k} worker(s) {found['msgs_per_s']:.0f} msg/s "
                              f"(workers {found['cpu_cores']['workers']:.2f} cores, machine "
                              f"busy {found['machine_busy']:.0%}, other work "
                              f"{found['other_cores']:.2f} cores, backlog "
                              f"{found['backlog_at_end']})", flush=True)
            finally:
                sink.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return summarise(results, rounds=rounds, window=window, warmup=warmup, quick=quick)


def summarise(results: dict[int, list[dict[str, Any]]], **settings: Any) -> dict[str, Any]:
    med = {k: statistics.median(r["msgs_per_s"] for r in runs) for k, runs in results.items()}
    base = med[min(med)]
    configs = []
    for k, runs in results.items():
        names = sorted({name for r in runs for name in r["cpu_cores"]})
        cpu = {name: round(statistics.median(r["cpu_cores"].get(name, 0.0) for r in runs), 3)
               for name in names if not name.startswith("worker") or name == "workers"}
        configs.append({"workers": k, "median_msgs_per_s": round(med[k], 1),
                        "ratio_to_1_worker": round(med[k] / base, 3) if base else None,
                        "cpu_cores": cpu,
                        "machine_busy": statistics.median(r["machine_busy"] for r in runs),
                        "other_cores": statistics.median(r.get("other_cores", 0.0)
                                                         for r in runs),
                        "all_reached_sink": all(r["reached_sink"] >= r["messages"]
                                                for r in runs),
                        "duplicates": sum(r["duplicates"] for r in runs),
                        "starved": any(r["starved"] for r in runs),
                        "runs": runs})
    return {"benchmark": "province_dispatch", "route": ROUTE,
            "deployment": "hub run workers on RabbitMQ (quorum queues) + PostgreSQL, "
                          "county hubs a loopback sink",
            "configs": configs, **settings, "machine": machine(),
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workers", default=None, help="worker counts, e.g. 1,2,4")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--window", type=float, default=None, help="seconds measured")
    parser.add_argument("--warmup", type=float, default=None,
                        help="seconds after every worker listens before the window")
    parser.add_argument("--max-fill", type=int, default=30000,
                        help="most messages put in the queue for one configuration")
    parser.add_argument("--no-write", action="store_true", help="do not write the results file")
    args = parser.parse_args(argv)
    counts = [int(x) for x in (args.workers or ("1,2" if args.quick else "1,2,4")).split(",")]
    if 1 not in counts:
        counts.insert(0, 1)  # the baseline of the ratios
    out = run(counts, rounds=args.rounds or (1 if args.quick else 2),
              window=args.window or (4.0 if args.quick else 15.0),
              warmup=args.warmup if args.warmup is not None else (1.0 if args.quick else 3.0),
              n_first=400 if args.quick else 1500, max_fill=args.max_fill, quick=args.quick)
    print()
    print(table(["workers", "msg/s", "x 1 worker", "workers' cores", "rabbitmq", "postgresql",
                 "sink", "other work", "machine busy"],
                [(c["workers"], c["median_msgs_per_s"], c["ratio_to_1_worker"],
                  c["cpu_cores"].get("workers"), c["cpu_cores"].get("rabbitmq"),
                  c["cpu_cores"].get("postgresql"), c["cpu_cores"].get("sink"),
                  c["other_cores"], f"{c['machine_busy']:.0%}") for c in out["configs"]]))
    print(f"\nmachine: {out['machine']['cpus']} CPUs, load average {out['machine']['load_avg']}")
    if not args.no_write:
        print(f"results: {write_results('province_dispatch', out)}")
    lost = [c["workers"] for c in out["configs"] if not c["all_reached_sink"]]
    if lost:
        print(f"messages missing at the sink with {lost} worker(s)", file=sys.stderr)
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
