"""Memory over 100,000 routed messages: resident set size must stay flat.

Target (BRIEF section 6): memory flat over 100,000 routed messages.

    python bench/memory.py            # 100,000 messages, RSS at 10k, 50k, 100k
    python bench/memory.py --quick    # 20,000 messages, RSS at 2k, 10k, 20k
    python bench/memory.py --broker sqlite   # the embedded SQL broker instead

Each message goes through two routes: ``intake`` (validate against the real
``progress`` schema, map, enrich through a connector, publish) and
``deliver`` (a connector call), with everything the hub keeps per message in
the store (SQLite file: processed records, hops, progress). The default broker
is the in-memory one, driven in batches of 1,000 so that the queue itself
never holds more than a batch; ``--broker sqlite`` uses kombu's SQL transport
on SQLite with worker threads.

"Flat" means the RSS after all messages is within 10% (and 16 MiB) of the RSS
at the first checkpoint, taken after warm-up. Results: a table on stdout and
bench/results/memory.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from prometheus_client import CollectorRegistry  # noqa: E402

from bdchub.connectors.base import CallContext, Connector  # noqa: E402
from bdchub.core.envelope import Envelope  # noqa: E402
from bdchub.routes.middleware import MetricsMiddleware, Middleware  # noqa: E402
from bdchub.routes.runtime import Hub  # noqa: E402
from bench.common import target  # noqa: E402

TENANT = "320684"
BATCH = 1000


def rss_kib(field: str = "VmRSS") -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class Echo(Connector):
    """An endpoint that answers and remembers nothing (FakeConnector keeps every call)."""

    type_name = "echo"

    def call(self, operation: str, payload: Any, context: CallContext | None = None) -> Any:
        return {"ok": True, "operation": operation}


class Count(Middleware):
    def __init__(self) -> None:
        self.acked = 0
        self.lock = threading.Lock()

    def on_ack(self, route: str, envelope: Any, outcome: str) -> None:
        if route == "deliver":
            with self.lock:
                self.acked += 1


def config(broker: str, store: str) -> dict[str, Any]:
    return {"tenant": TENANT, "broker": {"url": broker}, "store": {"url": store},
            "connectors": {"registry": {"type": "fake"}, "window": {"type": "fake"}},
            "routes": {
                "intake": {"from": "progress.reported", "steps": [
                    {"validate": "progress"},
                    {"map": {"fields": {"ywh": "business_no", "hjmc": "stage"}, "merge": True}},
                    {"enrich": {"connector": "registry", "operation": "lookup", "into": "legacy"}},
                    {"publish": "progress.forwarded"}]},
                "deliver": {"from": "progress.forwarded", "steps": [
                    {"to": {"connector": "window", "operation": "push"}}]}}}


def body(i: int) -> dict[str, Any]:
    return {"business_no": f"320684-2026-{i:07d}", "stage": "review", "status": "in_progress",
            "time": "2026-03-01T09:30:00+08:00",
            "organisation": {"name": "海门区不动产登记中心", "division_code": TENANT},
            "note": "x" * 200}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--broker", choices=["memory", "sqlite"], default="memory")
    args = parser.parse_args(argv)
    total = 20_000 if args.quick else 100_000
    checkpoints = [total // 10, total // 2, total]
    workdir = Path(tempfile.mkdtemp(prefix="bdchub-mem-"))
    broker = "memory://" if args.broker == "memory" else f"sqla+sqlite:///{workdir / 'broker.db'}"
    count = Count()
    hub = Hub.from_config({**config(broker, f"sqlite:///{workdir / 'store.db'}"),
                           "__dir__": str(workdir)},  # the hub's files stay in the run's folder
                          connectors={"registry": Echo("registry", {}),
                                      "window": Echo("window", {})},
                          metrics=MetricsMiddleware(CollectorRegistry()), middleware=[count])
    hub.start()
    rows = []
    t0 = time.perf_counter()
    sent = 0
    try:
        for checkpoint in checkpoints:
            while sent < checkpoint:
                for i in range(sent, min(sent + BATCH, checkpoint)):
                    b = body(i)
                    hub.publish(Envelope(type="progress.reported", tenant=TENANT, body=b,
                                         business_no=b["business_no"]))
                sent = min(sent + BATCH, checkpoint)
                if args.broker == "memory":
                    hub.run_until_idle()
                else:
                    deadline = time.monotonic() + 600
                    while count.acked < sent and time.monotonic() < deadline:
                        time.sleep(0.05)
            gc.collect()
            rows.append({"messages": checkpoint, "rss_mib": round(rss_kib() / 1024, 1),
                         "elapsed_s": round(time.perf_counter() - t0, 1)})
            print(f"{checkpoint:>8} messages  RSS {rows[-1]['rss_mib']:7.1f} MiB  "
                  f"{rows[-1]['elapsed_s']:7.1f} s", flush=True)
        processed = hub.store.count("processed", route="deliver")
    finally:
        hub.stop(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)
    peak = round(rss_kib("VmHWM") / 1024, 1)
    first, last = rows[0]["rss_mib"], rows[-1]["rss_mib"]
    growth = last - first
    flat = growth <= max(0.10 * first, 0) and growth <= 16
    print()
    print(f"{'messages':>10}{'RSS MiB':>10}")
    for r in rows:
        print(f"{r['messages']:>10}{r['rss_mib']:>10.1f}")
    print(f"\npeak RSS {peak:.1f} MiB; growth {first:.1f} -> {last:.1f} MiB ({growth:+.1f}); "
          f"{processed} delivered: {'FLAT' if flat else 'NOT FLAT'}")
    out = {"benchmark": "memory", "broker": args.broker, "messages": total,
           "checkpoints": rows, "peak_rss_mib": peak, "growth_mib": round(growth, 1),
           "delivered": processed, "flat": flat,
           "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                       "platform": platform.platform()},
           "quick": args.quick, "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
           "targets": [target(f"RSS growth over {total:,} messages", round(growth, 1),
                              round(min(0.10 * first, 16), 1), unit=" MiB", at_least=False),
                       target("messages delivered", processed, total)]}
    results_dir = ROOT / "bench" / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    name = "memory.json" if args.broker == "memory" else "memory_sqlite.json"
    (results_dir / name).write_text(json.dumps(out, indent=2) + "\n")
    return 0 if flat and processed == total else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
