"""Per-request CPU budget of a request/reply route whose body carries a business number.

Issue #15, targets 2 and 3. One ``hub run`` (the real command, on a small config
written here) serves three request/reply routes, each ``validate:
payment_notification`` -> ``map`` (legacy names) -> ``to`` a ``rest`` connector
that POSTs to a Python echo backend (``bench/http_route.py``'s ASGI echo on
uvicorn), over the canonical example ``valid-wechat``. They differ only in what
the request leaves in the store (``VARIANTS``): ``case`` (the body carries a
business number: trace hops), ``progress`` (the same, and the answer moves the
case's status: a progress row too) and ``plain`` (no business number: nothing).

    python bench/request_budget.py                 # 3 interleaved rounds of 6 s
    python bench/request_budget.py --quick         # 1 round of 4 s
    python bench/request_budget.py --label after   # name the run in the result
    python bench/request_budget.py --no-profile    # skip py-spy
    python bench/request_budget.py --store-only    # only the store's writes, 1 and 2 processes

What is measured (wrk, 8 keep-alive connections per hub process; the median of
the rounds):

- req/s and latency (p50/p99/max) of each variant, with one and with two hub
  processes (``inbound.listen.processes: 2``) on the same embedded SQLite store;
- CPU seconds per request of the hub: utime + stime from ``/proc/<pid>/stat`` of
  ``hub run`` and every process it forked, over the timed run, divided by the
  requests answered;
- the budget: py-spy samples the hub under the same load (``record
  --nonblocking --gil --subprocesses --format raw``: the thread holding the GIL,
  so idle threads are not counted); each sample goes to the part of the hub its
  innermost recognised frame belongs to (``PARTS``): a SQLAlchemy call made by the
  engine counts as store, a JSON Schema check made by a step as validation. The
  shares times the CPU per request give microseconds per request per part (work
  in C without the GIL, SQLite's own included, is spread over the parts by the
  same shares). py-spy slows what it samples, so the CPU per request comes from
  the unprofiled rounds;
- the store alone: 4 threads per process writing cases' progress through
  ``Store.finish`` for the run's seconds, with one process and with two on one
  file: each write's p50/p99/max (the wait for the other process's lock shows
  here without HTTP or the event loop in between).

Results: tables on stdout and bench/results/request_budget.json (with the
targets ``bench/run.py`` prints). py-spy needs ptrace (root, or
``kernel.yama.ptrace_scope=0``); without it the budget is left out. The machine
has few cores: record the 1-minute load (printed) with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    Child,
    Wrk,
    free_port,
    machine,
    median,
    post_json,
    table,
    target,
    write_results,
)
from bench.http_shapes import LEGACY_OPERATIONS, SHAPES  # noqa: E402

TENANT = "320684"
SCHEMA = "payment_notification"
EXAMPLE = ROOT / "schemas" / "messages" / "examples" / SCHEMA / "valid-wechat.json"
NESTED = "notification"
MAPPING = {"YWH": "business_no", "DDH": "order_no", "JE": "amount", "JYH": "trade_no",
           "ZFSJ": "paid_at"}

#: The shapes measured, each a route of its own at its own path: what the request
#: leaves in the store differs, the work of the route does not.
#: - ``case``: the body carries a business number: the run's trace hops go to the
#:   store (shape (b) of issue #15 without a progress change);
#: - ``progress``: shape (b) of ``bench/http_shapes.py``: an identity check of a
#:   case (validate, map, to), its trace and a progress row (status, registration
#:   type), as an application route writes them;
#: - ``plain``: the same fields one level down (``notification``), so the intake
#:   finds no business number and the store is not touched.
VARIANTS = ("case", "progress", "plain")
PATH = "/api/v1/bench/pay"
#: Shape (b) of ``bench/http_shapes.py`` (issue #15, target 1), measured beside them:
#: an identity check inside a case, its trace and progress row written.
SHAPE_B = SHAPES["b"]


def path(variant: str) -> str:
    if variant == "progress":
        return SHAPE_B.path
    return PATH if variant == "case" else f"{PATH}-{variant}"


def request_body(variant: str = "case") -> dict[str, Any]:
    if variant == "progress":
        return SHAPE_B.body()
    example = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    body = dict(example.get("message", example))
    return {NESTED: body} if variant == "plain" else body


def route_name(variant: str) -> str:
    return SHAPE_B.route if variant == "progress" else f"pay_{variant}"


def route(variant: str) -> dict[str, Any]:
    """validate -> map -> to, over the body (or its ``notification``)."""
    prefix = NESTED + "." if variant == "plain" else ""
    validate: Any = {"schema": SCHEMA, "path": NESTED} if prefix else SCHEMA
    mapping = {k: prefix + v for k, v in MAPPING.items()}
    if variant == "progress":
        return SHAPE_B.hub_route(SHAPE_B.path)
    return {"description": f"payment notification ({variant}): validate, rename, forward",
            "from": {"endpoint": {"method": "POST", "path": path(variant), "reply": True,
                                  "type": "payment.notified"}},
            "steps": [{"validate": validate}, {"map": mapping},
                      {"to": {"connector": "payment", "operation": "notify"}}]}


#: The parts of the budget, in the order a frame is tested against them: the
#: innermost frame of a sample that matches one names its part.
PARTS: list[tuple[str, tuple[str, ...]]] = [
    ("store", ("core/store.py", "sqlalchemy/", "sqlite3/", "core/health.py")),
    ("connector", ("connectors/", "aiohttp/", "yarl/", "multidict/", "aiohappyeyeballs/")),
    ("validation", ("jsonschema", "referencing/", "schemas/", "web/validation.py",
                    "web/hygiene.py", "routes/steps/validate.py", "rpds")),
    ("route engine", ("routes/", "jmespath/", "core/envelope.py", "core/ids.py")),
    ("server", ("uvicorn/", "web/", "httptools/", "uvloop/", "asyncio/", "h11/",
                "greenlet")),
]
OTHER = "other"
ORDER = [name for name, _ in PARTS] + [OTHER]


def hub_config(echo_url: str, workdir: Path, port: int, *, threads: int = 8,
               processes: int = 1) -> dict[str, Any]:
    """A small config ``hub run`` takes: the embedded broker and store in ``workdir``."""
    return {
        "tenant": TENANT,
        "name": "request-budget",
        "broker": {"url": f"sqla+sqlite:///{workdir / 'broker.db'}"},
        "store": {"url": f"sqlite:///{workdir / 'store.db'}"},
        "connectors": {
            "payment": {"type": "rest", "base_url": echo_url,
                        "pool": {"maxsize": max(threads * 2, 10)},
                        "operations": {"notify": {"method": "POST", "path": "/echo"}}},
            "legacy": {"type": "rest", "base_url": echo_url,
                       "pool": {"maxsize": max(threads * 2, 10)},
                       "operations": LEGACY_OPERATIONS}},
        "routes": {route_name(v): route(v) for v in VARIANTS},
        "inbound": {
            "listen": {"host": "127.0.0.1", "port": port, "threads": threads,
                       "processes": processes},
            "endpoints": [SHAPE_B.endpoint() if v == "progress" else
                          {"method": "POST", "path": path(v), "route": route_name(v),
                           "reply": True, "auth": "none", "type": "payment.notified"}
                          for v in VARIANTS]},
    }


# -- CPU of a process tree --------------------------------------------------------

def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, utime + stime in seconds) of ``pid``; None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks


def tree_cpu(root: int) -> float:
    """CPU seconds used so far by ``root`` and every live process below it."""
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            found = _stat(int(entry.name))
            if found:
                parents[int(entry.name)], cpu[int(entry.name)] = found
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += cpu.get(pid, 0.0)
        todo.extend(p for p, parent in parents.items() if parent == pid)
    return total


# -- the profile ------------------------------------------------------------------

def part_of(stack: str, parts: list[tuple[str, tuple[str, ...]]] | None = None,
            other: str = OTHER) -> str:
    """The budget part of one collapsed stack (frames outermost first, ``;``-joined):
    the first of ``parts`` (default ``PARTS``) that its innermost frame matching any
    of them names, else ``other``."""
    for frame in reversed(stack.split(";")):
        for name, marks in parts or PARTS:
            if any(mark in frame for mark in marks):
                return name
    return other


def budget(raw: str, *, part: Callable[[str], str] = part_of, order: list[str] | None = None,
           keep_empty: bool = False) -> dict[str, float]:
    """Each part's share of the samples in py-spy's raw output (``stack count``
    lines); ``part`` names a stack's part, ``order`` lists the parts (default
    ``ORDER``); ``keep_empty``: count the samples without a Python frame too."""
    counts: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, n = line.rpartition(" ")
        if (stack or keep_empty) and n.isdigit():
            counts[part(stack)] += int(n)
    total = sum(counts.values()) or 1
    return {name: counts[name] / total for name in order or ORDER}


def py_spy() -> str | None:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return found if Path(found).exists() else None


def profile(pid: int, wrk: Wrk, url: str, connections: int, seconds: float,
            out: Path) -> str | None:
    """py-spy's raw stacks of ``pid`` (and its children) while wrk loads ``url``."""
    spy = py_spy()
    if spy is None:
        return None
    proc = subprocess.Popen([spy, "record", "--nonblocking", "--gil", "--subprocesses", "--format",
                             "raw", "--rate", "200", "--duration", str(round(seconds)),
                             "--pid", str(pid), "--output", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)  # attached before the load starts
    wrk.run(url, connections=connections, duration=seconds)
    proc.wait(timeout=seconds + 60)
    return out.read_text() if out.exists() else None


# -- runs ---------------------------------------------------------------------------

class Setup:
    """The echo backend and one ``hub run`` (with ``processes`` server processes)."""

    def __init__(self, workdir: Path, *, processes: int, threads: int):
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        echo_port = free_port()
        self.echo = Child("echo", [sys.executable, str(ROOT / "bench" / "http_route.py"),
                                   "--serve-echo", str(echo_port)],
                          port=echo_port, logdir=workdir, cwd=ROOT)
        try:
            port = free_port()
            config = workdir / "config.yaml"
            config.write_text(json.dumps(hub_config(self.echo.url, workdir, port,
                                                    threads=threads, processes=processes),
                                         indent=2), encoding="utf-8")
            hub = str(Path(sys.executable).parent / "hub")
            self.hub = Child("hub", [hub, "run", "-c", str(config), "--log-level", "warning"],
                             port=port, logdir=workdir, cwd=workdir,
                             env={"HUB_LANG": "en"},
                             timeout=90)
        except BaseException:
            self.echo.stop()
            raise

    def url(self, variant: str = "case") -> str:
        return f"{self.hub.url}{path(variant)}"

    def close(self) -> None:
        self.hub.stop(timeout=20)
        self.echo.stop()


def timed(setup: Setup, wrk: Wrk, url: str, connections: int,
          seconds: float) -> dict[str, Any]:
    """One wrk run with the hub's CPU over it."""
    before = tree_cpu(setup.hub.proc.pid)
    result = wrk.run(url, connections=connections, duration=seconds)
    used = tree_cpu(setup.hub.proc.pid) - before
    answered = max(1, result["requests"] - result["errors"]["status"])
    return {**result, "cpu_s": round(used, 3), "cpu_ms_per_request": used / answered * 1000}


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of each figure over the rounds (a figure may come from another round
    than its neighbours); the rounds themselves under ``rounds``."""
    figures = ("rps", "p50_ms", "p90_ms", "p99_ms", "max_ms", "mean_ms", "cpu_ms_per_request")
    return {**{k: median([r[k] for r in runs]) for k in figures},
            "requests": sum(r["requests"] for r in runs),
            "failed": sum(r["failed"] for r in runs), "rounds": runs}


def check(setup: Setup) -> None:
    """Every route answers the mapped notification before anything is timed."""
    number = request_body()["business_no"]
    for variant in VARIANTS:
        body = request_body(variant)
        status, answer = post_json(setup.url(variant), json.dumps(
            body, ensure_ascii=False).encode())
        expected = SHAPE_B.expected(body) if variant == "progress" else {"YWH": number}
        if status != 200 or any(answer.get(k) != v for k, v in expected.items()):
            raise RuntimeError(f"the hub answered {variant} with {status}: {answer}")


def run_processes(processes: int, args: argparse.Namespace, base: Path) -> dict[str, Any]:
    """Every variant against one ``hub run`` of ``processes`` server processes; with one,
    each case variant profiled too."""
    connections = args.connections * processes
    setup = Setup(base / f"p{processes}", processes=processes, threads=args.threads)
    out: dict[str, Any] = {"processes": processes, "connections": connections}
    try:
        check(setup)
        wrks = {v: Wrk(json.dumps(request_body(v), ensure_ascii=False).encode(),
                       setup.workdir / f"wrk-{v}") for v in VARIANTS}
        for v, wrk in wrks.items():  # warm-up: connections, caches, SQLite pages
            wrk.run(setup.url(v), connections=connections, duration=2)
        rounds: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
        for r in range(args.rounds):  # interleaved: a burst of other work hits every variant
            for v in VARIANTS[r % len(VARIANTS):] + VARIANTS[:r % len(VARIANTS)]:
                rounds[v].append(timed(setup, wrks[v], setup.url(v), connections,
                                       args.duration))
        for v in VARIANTS:
            out[v] = median_run(rounds[v])
            print(f"{processes} process(es), {v}: {out[v]['rps']:.0f} req/s, "
                  f"p50 {out[v]['p50_ms']:.1f} ms, p99 {out[v]['p99_ms']:.1f} ms, "
                  f"{out[v]['cpu_ms_per_request']:.2f} ms CPU/request", flush=True)
        if processes == 1 and not args.no_profile:
            out["budget"] = {}
            for v in ("case", "progress"):
                raw = profile(setup.hub.proc.pid, wrks[v], setup.url(v), connections,
                              max(args.duration, 5.0), setup.workdir / f"profile-{v}.txt")
                if not raw:
                    print("profile: py-spy missing or could not attach (needs ptrace)",
                          file=sys.stderr)
                    out["budget"] = None
                    break
                cpu_us = out[v]["cpu_ms_per_request"] * 1000
                out["budget"][v] = {part: {"share": round(share, 4),
                                           "us_per_request": round(share * cpu_us, 1)}
                                    for part, share in budget(raw).items()}
                if args.profile_out:
                    Path(f"{args.profile_out}.{v}").write_text(raw)
    finally:
        setup.close()
    return out


# -- the store alone: how long a write waits with two processes on one file ----------

WRITER_THREADS = 4


def write_store(url: str, seconds: float, out: str) -> int:
    """Run in a child process: ``WRITER_THREADS`` threads each write a case's progress
    through ``Store.finish`` (as a request/reply route does before its answer) for
    ``seconds``; each write's time (ms) into ``out`` as JSON."""
    import threading
    import uuid

    from bdchub.core.store import Finish, Store

    store = Store(url)
    times: list[float] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def writer() -> None:
        mine = []
        while time.monotonic() < stop:
            number = f"{TENANT}-BENCH-{uuid.uuid4().hex[:12]}"
            started = time.perf_counter()
            store.finish(Finish(message_id=uuid.uuid4().hex, route="pay_progress",
                                outcome="completed", tenant=TENANT, business_no=number,
                                type="payment.notified", record_processed=False,
                                progress={"status": "paid", "last_type": "payment.notified"}))
            mine.append((time.perf_counter() - started) * 1000)
        with lock:
            times.extend(mine)

    threads = [threading.Thread(target=writer) for _ in range(WRITER_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store.close()
    Path(out).write_text(json.dumps(times))
    return 0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def store_writes(processes: int, seconds: float, base: Path) -> dict[str, Any]:
    """Writes per second and each write's p50/p99/max (ms) with ``processes`` processes
    writing to one SQLite store at once."""
    folder = base / f"store-{processes}"
    folder.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{folder / 'store.db'}"
    from bdchub.core.store import Store

    Store(url).close()  # the tables, before the writers race to make them
    outs = [folder / f"times-{n}.json" for n in range(processes)]
    children = [subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--write-store",
                                  url, str(seconds), str(out)]) for out in outs]
    for child in children:
        child.wait(timeout=seconds + 120)
    times = [t for out in outs if out.exists() for t in json.loads(out.read_text())]
    return {"processes": processes, "writes": len(times),
            "writes_per_s": round(len(times) / seconds, 1),
            "p50_ms": round(percentile(times, 0.5), 2), "p99_ms": round(percentile(times, 0.99), 2),
            "max_ms": round(max(times), 2) if times else None}


def ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def targets_of(one: dict[str, Any], two: dict[str, Any] | None,
               writes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    case, plain = one["case"], one["plain"]
    found = [
        target("request budget: req/s of a case / of no case", ratio(case["rps"], plain["rps"]),
               0.9, note="the trace of a case written after the answer"),
        target("request budget: CPU per request of a case / of no case",
               ratio(case["cpu_ms_per_request"], plain["cpu_ms_per_request"]), 1.15,
               at_least=False),
    ]
    if one.get("budget"):
        found.append(target("request budget: store share of a case's CPU",
                            one["budget"]["case"]["store"]["share"] * 100, 10.0, unit=" %",
                            at_least=False))
    for v in (("case", "progress") if two else ()):
        found.append(target(f"2 processes on SQLite ({v}): hub p99 / p50",
                            ratio(two[v]["p99_ms"], two[v]["p50_ms"]), 3.0, at_least=False,
                            note="no request waits on the other process's SQLite lock"))
    single, double = writes
    found.append(target("2 processes on SQLite: a progress write's p99", double["p99_ms"], 10.0,
                        unit=" ms", at_least=False,
                        note=f"1 process: {single['p99_ms']} ms (bench store writes)"))
    return found


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 s runs, 1 round")
    parser.add_argument("--rounds", type=int, default=None,
                        help="timed runs per variant, interleaved; the median is reported "
                             "(default 3, --quick 1)")
    parser.add_argument("--duration", type=float, default=None, help="seconds per run")
    parser.add_argument("--connections", type=int, default=8,
                        help="wrk connections per hub process (default 8)")
    parser.add_argument("--threads", type=int, default=8, help="inbound.listen.threads")
    parser.add_argument("--label", default="", help="what this run is (before, after …)")
    parser.add_argument("--no-profile", action="store_true", help="no py-spy budget")
    parser.add_argument("--no-two", action="store_true", help="skip the two-process run")
    parser.add_argument("--store-seconds", type=float, default=None,
                        help="seconds of the store-only runs (default: --duration)")
    parser.add_argument("--store-only", action="store_true",
                        help="only the store writes of one and two processes (no HTTP)")
    parser.add_argument("--write-store", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--profile-out", default=None,
                        help="keep py-spy's raw stacks in PREFIX.case and PREFIX.progress")
    args = parser.parse_args(argv)
    if args.write_store:
        url, seconds, out = args.write_store
        return write_store(url, float(seconds), out)
    args.duration = args.duration or (4.0 if args.quick else 6.0)
    args.rounds = args.rounds or (1 if args.quick else 3)

    started_load = os.getloadavg()[0]
    base = Path(tempfile.mkdtemp(prefix="bdchub-budget-"))
    if args.store_only:
        try:
            for w in (store_writes(n, args.store_seconds or args.duration, base) for n in (1, 2)):
                print(f"{w['processes']} process(es): {w['writes_per_s']} writes/s, p50 "
                      f"{w['p50_ms']} ms, p99 {w['p99_ms']} ms, max {w['max_ms']} ms")
        finally:
            shutil.rmtree(base, ignore_errors=True)
        print(f"1-minute load {started_load:.2f} at the start, {os.getloadavg()[0]:.2f} at the end")
        return 0
    try:
        one = run_processes(1, args, base)
        two = None if args.no_two else run_processes(2, args, base)
        writes = [store_writes(n, args.store_seconds or args.duration, base) for n in (1, 2)]
    except (RuntimeError, OSError) as exc:
        print(f"request_budget: setup failed: {exc}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(base, ignore_errors=True)
    ended_load = os.getloadavg()[0]

    rows = [(f"{run['processes']} process(es), {v}", run[v]["rps"], run[v]["p50_ms"],
             run[v]["p99_ms"], run[v]["max_ms"], run[v]["cpu_ms_per_request"], run[v]["failed"])
            for run in filter(None, (one, two)) for v in VARIANTS]
    print()
    print(table(["run", "req/s", "p50 ms", "p99 ms", "max ms", "CPU ms/req", "failed"], rows))
    if one.get("budget"):
        print()
        print(table(["part", *(f"{v} µs/req" for v in one["budget"]),
                     *(f"{v} share" for v in one["budget"])],
                    [(part, *(b[part]["us_per_request"] for b in one["budget"].values()),
                      *(f"{b[part]['share'] * 100:.1f}%" for b in one["budget"].values()))
                     for part in ORDER]))
    print()
    print(table(["store writes (progress, 4 threads each)", "writes/s", "p50 ms", "p99 ms",
                 "max ms"], [(f"{w['processes']} process(es)", w["writes_per_s"], w["p50_ms"],
                              w["p99_ms"], w["max_ms"]) for w in writes]))
    targets = targets_of(one, two, writes)
    result = {"benchmark": "request_budget", "label": args.label,
              "command": "python bench/request_budget.py " + " ".join(argv),
              "duration_s": args.duration, "load_1min": [round(started_load, 2),
                                                         round(ended_load, 2)],
              "machine": machine(), "one_process": one, "two_processes": two,
              "store_writes": writes,
              "targets": targets}
    written = write_results("request_budget", result)
    print(f"\nresults: {written.relative_to(ROOT)} (1-minute load {started_load:.2f} at the "
          f"start, {ended_load:.2f} at the end)")
    return 0 if all(t["met"] for t in targets) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
