"""Broker relay: the hub's route execution against a bare kombu relay, same RabbitMQ, same run.

Target (issue #15, target 4): the hub relays at least 0.8x the messages per
second of a bare kombu relay on the same RabbitMQ.

    python bench/broker_relay.py            # 5000 messages, 5 rounds of each
    python bench/broker_relay.py --quick    # 1500 messages, 3 rounds

Both relays move persistent messages between durable queues, publish with
publisher confirms and acknowledge a message only after its output is
confirmed:

- ``kombu``: the baseline, the target's denominator. A consumer with prefetch
  64 whose callback publishes the body to the output queue on a second
  connection, waits for that message's confirm (kombu's ``confirm_publish``;
  on the consuming connection the confirm wait would dispatch deliveries
  inside the callback), then acks: one message at a time, as a plain kombu
  relay is written. It does NOT batch confirms.
- ``kombu_batched`` (reference only, no target): the same relay batching as the
  hub does: the deliveries that have arrived are published together, their
  confirms awaited together, then acked. What the broker allows a relay.
- ``hub``: a route ``from: bench.in`` with ``validate: progress`` (the real
  canonical schema and domain checkers), ``map`` (merge two fields) and
  ``publish: bench.out``, through the topic exchange to a durable queue bound
  to ``bench.out``, with everything the hub does per message: envelope
  parsing and sealing, the duplicate check and the outcome (processed record
  and hops) in the store, metrics middleware, ack after confirm. Its steps all
  stay in the process, so the hub runs it in batches (``routes.batch``): one
  duplicate check, one wait for the confirms and one store transaction per
  batch. Store: SQLite (the embedded default) unless ``--store URL``.
- ``hub_embedded`` (reference only, no target): the same route on the
  embedded broker (kombu's SQL transport on SQLite).

Input queues are filled before timing; each round times draining N messages
through the relay. Rounds are interleaved; the median is reported. RabbitMQ:
``HUB_TEST_AMQP_URL``, or a throwaway node (tools/services.RabbitNode).
Results: a table on stdout and bench/results/broker_relay.json (with
``targets`` for make bench's table and the machine's load before and after).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import kombu  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402

from bdchub.core.envelope import Envelope  # noqa: E402
from bdchub.routes.middleware import MetricsMiddleware, Middleware  # noqa: E402
from bdchub.routes.runtime import Hub  # noqa: E402
from bench.common import machine, table, target, write_results  # noqa: E402

TARGET = 0.8
TENANT = "320684"


def body(i: int) -> dict[str, Any]:
    return {"business_no": f"320684-2026-{i:06d}", "stage": "acceptance",
            "status": "in_progress", "time": "2026-03-01T09:30:00+08:00",
            "organisation": {"name": "海门区不动产登记中心", "division_code": TENANT}}


# -- baseline ---------------------------------------------------------------

def _bare_queues(tag: str) -> tuple[kombu.Queue, kombu.Queue]:
    return (kombu.Queue(f"bench.bare.in.{tag}", durable=True, auto_delete=False),
            kombu.Queue(f"bench.bare.out.{tag}", durable=True, auto_delete=False))


def _fill(producer: kombu.Producer, queue: kombu.Queue, n: int) -> None:
    for i in range(n):
        payload = Envelope(type="bench.in", tenant=TENANT, body=body(i),
                           business_no=body(i)["business_no"]).to_json()
        producer.publish(payload, routing_key=queue.name, delivery_mode=2,
                         content_type="application/json", content_encoding="utf-8")


def kombu_round(url: str, n: int, prefetch: int = 64) -> float:
    qin, qout = _bare_queues(uuid.uuid4().hex[:8])
    # Two connections: waiting for a confirm on the consuming connection would
    # dispatch further deliveries from inside the callback.
    with kombu.Connection(url, transport_options={"confirm_publish": True}) as conn, \
            kombu.Connection(url, transport_options={"confirm_publish": True}) as pub:
        channel = pub.channel()
        qin(channel).declare()
        qout(channel).declare()
        _fill(kombu.Producer(channel), qin, n)
        out = kombu.Producer(pub.channel())
        done = [0]

        def relay(message: Any) -> None:
            out.publish(message.body, routing_key=qout.name, delivery_mode=2,
                        content_type="application/json", content_encoding="utf-8")
            message.ack()
            done[0] += 1

        consumer = kombu.Consumer(conn.channel(), queues=[qin], on_message=relay,
                                  prefetch_count=prefetch, no_ack=False)
        consumer.consume()
        t0 = time.perf_counter()
        deadline = time.monotonic() + 600
        while done[0] < n and time.monotonic() < deadline:
            conn.drain_events(timeout=5)
        elapsed = time.perf_counter() - t0
        consumer.cancel()
        qin(channel).delete()
        qout(channel).delete()
    assert done[0] == n, f"bare relay moved {done[0]} of {n}"
    return n / elapsed


def kombu_batched_round(url: str, n: int, prefetch: int = 64) -> float:
    """The bare relay batching its confirms: whatever has arrived is published,
    its confirms awaited together (RabbitMQ acks several with one ``multiple``),
    then acked with one ``multiple`` ack."""
    qin, qout = _bare_queues(uuid.uuid4().hex[:8])
    with kombu.Connection(url) as conn, kombu.Connection(url) as pub:
        channel = pub.channel()
        qin(channel).declare()
        qout(channel).declare()
        _fill(kombu.Producer(channel), qin, n)
        out = pub.channel()
        out.confirm_select()
        waiting: set[int] = set()
        sent = [0]

        def confirmed(tag: int, multiple: bool) -> None:
            if multiple:
                waiting.difference_update([t for t in waiting if t <= tag])
            else:
                waiting.discard(tag)

        out.events["basic_ack"].add(confirmed)
        arrived: list[Any] = []
        consumer = kombu.Consumer(conn.channel(), queues=[qin], on_message=arrived.append,
                                  prefetch_count=prefetch, no_ack=False)
        consumer.consume()
        done = 0
        t0 = time.perf_counter()
        deadline = time.monotonic() + 600
        while done < n and time.monotonic() < deadline:
            conn.drain_events(timeout=5)
            with contextlib.suppress(TimeoutError):
                while len(arrived) < prefetch:  # what else has arrived already
                    conn.drain_events(timeout=0)
            batch, arrived[:] = list(arrived), []
            for message in batch:
                out._basic_publish(out.prepare_message(
                    message.body, None, "application/json", "utf-8", None, {"delivery_mode": 2}),
                    exchange="", routing_key=qout.name)
                sent[0] += 1
                waiting.add(sent[0])
            while waiting:
                pub.drain_events(timeout=30)
            if batch:
                batch[-1].channel.basic_ack(batch[-1].delivery_tag, multiple=True)
            done += len(batch)
        elapsed = time.perf_counter() - t0
        consumer.cancel()
        qin(channel).delete()
        qout(channel).delete()
    assert done == n, f"batched bare relay moved {done} of {n}"
    return n / elapsed


# -- the hub ----------------------------------------------------------------

class Acked(Middleware):
    def __init__(self, n: int):
        self.n = n
        self.count = 0
        self.lock = threading.Lock()
        self.done = threading.Event()

    def on_ack(self, route: str, envelope: Any, outcome: str) -> None:
        with self.lock:
            self.count += 1
            if self.count >= self.n:
                self.done.set()


def hub_config(broker: str, store: str, concurrency: int) -> dict[str, Any]:
    return {"tenant": TENANT, "broker": {"url": broker}, "store": {"url": store},
            "connectors": {},
            "routes": {"relay": {"from": "bench.in", "concurrency": concurrency, "steps": [
                {"validate": "progress"},
                {"map": {"fields": {"relayed_by": "'bdc-hub'", "ywh": "business_no"},
                         "merge": True}},
                {"publish": "bench.out"}]}}}


def hub_round(broker: str, store: str, n: int, concurrency: int, workdir: Path) -> float:
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    acked = Acked(n)
    config = hub_config(broker, store, concurrency)
    config["__dir__"] = str(workdir)  # the hub's own files (data key) stay in the run's folder
    hub = Hub.from_config(config, prefix=prefix, middleware=[acked],
                          metrics=MetricsMiddleware(CollectorRegistry()))
    hub.declare()
    sink = f"{prefix}.sink"
    hub.broker.declare_queue(sink, ["bench.out"])
    for i in range(n):
        b = body(i)
        hub.publish(Envelope(type="bench.in", tenant=TENANT, body=b, business_no=b["business_no"]))
    t0 = time.perf_counter()
    hub.start()
    finished = acked.done.wait(600)
    elapsed = time.perf_counter() - t0
    out = hub.broker.queue_size(sink)
    hub.stop(timeout=10)
    assert finished, f"hub relay acked {acked.count} of {n}"
    if out is not None:
        assert out == n, f"hub relay published {out} of {n}"
    if not broker.startswith("sqla"):
        with kombu.Connection(broker) as conn, conn.channel() as channel:
            for q in (sink, f"{prefix}.route.relay"):
                kombu.Queue(q)(channel).delete()
    return n / elapsed


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("-n", type=int, default=None, help="messages per round")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--concurrency", type=int, default=8,
                        help="the route's concurrency (its steps stay in the process: the hub "
                             "runs it in batches on min(concurrency, 2) threads)")
    parser.add_argument("--store", default=None, help="store URL (default: SQLite in a temp dir)")
    parser.add_argument("--no-embedded", action="store_true")
    args = parser.parse_args(argv)
    n = args.n or (1500 if args.quick else 5000)
    rounds = args.rounds or (3 if args.quick else 5)

    node = None
    url = os.environ.get("HUB_TEST_AMQP_URL")
    if not url:
        from tools.services import RabbitNode

        node = RabbitNode()
        node.start()
        url = node.url
    workdir = Path(tempfile.mkdtemp(prefix="bdchub-bench-"))
    results: dict[str, list[float]] = {"kombu": [], "kombu_batched": [], "hub": [],
                                       "hub_embedded": []}
    before = machine()
    try:
        # Warm up the broker and both code paths (schema and division tables load
        # on first use).
        kombu_round(url, min(n, 500))
        hub_round(url, f"sqlite:///{workdir / 'warm.db'}", min(n, 500), args.concurrency, workdir)
        for r in range(rounds):
            results["kombu"].append(kombu_round(url, n))
            store = args.store or f"sqlite:///{workdir / f'store{r}.db'}"
            results["hub"].append(hub_round(url, store, n, args.concurrency, workdir))
            results["kombu_batched"].append(kombu_batched_round(url, n))
            print(f"round {r + 1}: kombu {results['kombu'][-1]:.0f} msg/s, "
                  f"hub {results['hub'][-1]:.0f} msg/s, "
                  f"kombu batched {results['kombu_batched'][-1]:.0f} msg/s", flush=True)
        if not args.no_embedded:
            m = min(n, 1000)
            results["hub_embedded"].append(hub_round(
                f"sqla+sqlite:///{workdir / 'broker.db'}", f"sqlite:///{workdir / 'store_e.db'}",
                m, args.concurrency, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if node is not None:
            node.cleanup()

    med = {k: statistics.median(v) for k, v in results.items() if v}
    ratio = med["hub"] / med["kombu"]
    rows = [("kombu relay (baseline, one confirm at a time)", med["kombu"], 1.0),
            ("hub relay (RabbitMQ)", med["hub"], ratio),
            ("kombu relay, batched confirms (reference)", med["kombu_batched"],
             med["kombu_batched"] / med["kombu"])]
    if "hub_embedded" in med:
        rows.append(("hub relay (embedded SQLite broker)", med["hub_embedded"],
                     med["hub_embedded"] / med["kombu"]))
    print()
    print(table(["relay", "msg/s", "x kombu"], rows))
    # The batched bare relay is a reference, not a goal: it is in the JSON only.
    targets = [target("relay / bare kombu", round(ratio, 3), TARGET, unit="x",
                      note="bare relay waits for one confirm at a time")]
    verdict = "met" if targets[0]["met"] else "NOT MET"
    print(f"\nhub / kombu = {ratio:.2f} (target >= {TARGET}): {verdict}")
    write_results("broker_relay", {
        "benchmark": "broker_relay", "messages_per_round": n, "rounds": rounds,
        "concurrency": args.concurrency, "store": args.store or "sqlite (temp file)",
        "msgs_per_s": {k: [round(x, 1) for x in v] for k, v in results.items()},
        "median_msgs_per_s": {k: round(v, 1) for k, v in med.items()},
        "ratio_hub_over_kombu": round(ratio, 3),
        "ratio_hub_over_kombu_batched": round(med["hub"] / med["kombu_batched"], 3),
        "targets": targets, "machine": before,
        "load_avg_after": machine()["load_avg"],
        "quick": args.quick, "when": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    return 0 if targets[0]["met"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
