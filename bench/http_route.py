"""HTTP route: the hub against calling the backend directly and against Node-RED 4, same run.

Issue #15, target 1: the hub's request/reply HTTP route in three shapes
(``bench/http_shapes.py`` defines them: the hub's routes, the Node-RED flows,
the bodies and the answers), each against Node-RED 4 doing the same work and
against the direct call of the backend:

- ``a``: validate -> map -> to, a body without a business number (the store
  writes nothing);
- ``b``: the same with a business number: the hub keeps the case's trace (a hop
  a step) and progress row, as a request/reply route of a case does;
- ``c``: the identity and household checks of an application: validate ->
  enrich -> enrich (each kept as a verification record) -> publish -> answer.

Targets: in every shape the hub answers at least as many requests per second
as Node-RED with one process; in shape a at least 0.35x the direct call; the
hub's p99 at most 3x its p50 in every shape, process count and store measured.

    python bench/http_route.py                      # 3 rounds x 10 s, shapes a b c, ~5 min
    python bench/http_route.py --quick              # 2 rounds x 3 s
    python bench/http_route.py --processes 2        # inbound.listen.processes: 2
    python bench/http_route.py --store postgresql   # HUB_TEST_POSTGRES_URL, else a throwaway server
    python bench/http_route.py --backend threading  # stdlib ThreadingHTTPServer echo
    python bench/http_route.py --backend uvicorn    # raw ASGI echo on uvicorn
    python bench/http_route.py --shapes a,b --no-nodered --concurrency 32
    python bench/http_route.py --profile F          # then sample the hub with py-spy --gil into F

The rest of the matrix is these flags: ``--processes 2`` (with ``--concurrency
16``, the independent measurement's), ``--store postgresql`` (the throwaway
server of tools/services.py runs with fsync off), and each ``--backend``.

Contenders (each in its own process; all of them call the SAME loopback echo
backend, which answers the bytes it received):

- ``direct``: wrk posts shape a's mapped body straight to the echo backend (one
  call). A shape that makes two backend calls (c) is compared with half that
  rate: two calls one after the other.
- ``hub``: ``web.server.serve`` (the event-loop server, uvicorn; the route in a
  greenlet; REST calls through aiohttp, pooled) with ``web.app.create_app``,
  one endpoint a shape (``auth: none``, ``reply: true``), run by
  ``Hub.run_sync``; the store is the embedded SQLite one (``--store sqlite``,
  default) or PostgreSQL; the broker is the embedded SQLite one.
- ``nodered``: Node-RED 4 (``bench/nodered``: node-red pinned in its
  package.json, installed with npm on first use), headless on loopback, with
  the flows ``http_shapes.nodered_flow()`` writes (one tab a shape): http in ->
  function validate (ajv 8 compiled once in settings.js from the hub's own
  schema files, with the same resident-ID rule as ``schemas/formats.py``; 422
  with the violations otherwise) -> the shape's functions and http request
  nodes -> (b, c) a file node appending the record -> http response.

Backends (``--backend``; the table names the one used, since every ratio
against ``direct`` depends on its speed): ``node`` (bench/nodered/echo.js,
default), ``uvicorn`` (a raw ASGI app on uvicorn with httptools and uvloop),
``threading`` (the standard library's ``ThreadingHTTPServer``, HTTP/1.1
keep-alive, as the independent measurement used).

``check_contenders`` verifies before anything is timed that every contender
answers the shape's expected body and calls the backend as often as the shape
says. Load: ``wrk`` (C, one thread, N keep-alive connections) in its own
process; a warm-up run each, then rounds of timed runs, interleaved (the order
rotates every round); the median of the rounds is reported, latency from the
run nearest the median. Only 2xx answers count. Results: tables on stdout and
bench/results/http_route.json (with ``targets``). Exit 0 when every target is
met, 1 when not, 2 when setup failed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    Child,
    Wrk,
    free_port,
    get_json,
    machine,
    median,
    post_json,
    table,
    target,
    write_results,
)
from bench.http_shapes import (  # noqa: E402
    EXAMPLE,
    LEGACY_OPERATIONS,
    MAPPING,
    SCHEMA,
    SHAPES,
    TENANT,
    expected_a,
    identity_request,
    nodered_flow,
)

TARGET_DIRECT = 0.35
TARGET_NODERED = 1.0
TARGET_TAIL = 3.0
NODERED_DIR = ROOT / "bench" / "nodered"
NODERED_MAIN = NODERED_DIR / "node_modules" / "node-red" / "red.js"
PATH = SHAPES["a"].path
ROUTE = SHAPES["a"].route

BACKENDS = {"node": "node (bench/nodered/echo.js, Node http)",
            "uvicorn": "uvicorn (raw ASGI echo, httptools + uvloop)",
            "threading": "threading (stdlib ThreadingHTTPServer echo)"}

__all__ = ["EXAMPLE", "MAPPING", "NODERED_MAIN", "Contenders", "check_contender",
           "check_contenders", "mapped", "nodered_ready", "request_body"]


def request_body() -> dict[str, Any]:
    """Shape a's request (the canonical example ``valid-with-face``)."""
    return identity_request()


def mapped(body: dict[str, Any]) -> dict[str, Any]:
    """What every contender must answer for ``body`` in shape a."""
    return expected_a(body)


def hub_config(echo_url: str, workdir: Path, port: int, threads: int, processes: int = 1,
               store_url: str | None = None, shapes: list[str] | None = None) -> str:
    """The hub's config.yaml for the benchmark (JSON is YAML): one endpoint a shape."""
    chosen = [SHAPES[k] for k in (shapes or list(SHAPES))]
    routes: dict[str, Any] = {}
    for shape in chosen:
        routes.update(shape.hub_routes())
    config = {
        "tenant": TENANT,
        "name": "bench",
        "broker": {"url": f"sqla+sqlite:///{workdir / 'broker.db'}"},
        "store": {"url": store_url or f"sqlite:///{workdir / 'store.db'}"},
        "connectors": {
            "legacy": {
                "type": "rest",
                "base_url": echo_url,
                "pool": {"maxsize": max(threads * 2, 10)},
                "operations": LEGACY_OPERATIONS,
            },
        },
        "routes": routes,
        "inbound": {
            "listen": {"host": "127.0.0.1", "port": port, "threads": threads,
                       "processes": processes},
            "endpoints": [shape.endpoint() for shape in chosen],
        },
    }
    return json.dumps(config, indent=2, ensure_ascii=False)


# -- the hub's server process ---------------------------------------------------

def serve_hub(config_path: str) -> int:
    """Run in the child process: load the config, start the hub, serve the web app."""
    import logging

    logging.basicConfig(level=logging.WARNING)
    from bdchub.core.config import load
    from bdchub.routes.runtime import Hub
    from bdchub.web.app import create_app
    from bdchub.web.server import PerProcess, serve

    config = load(config_path)
    listen = config["inbound"]["listen"]
    processes = int(listen.get("processes", 1))
    if processes > 1:
        # Each server process builds its own hub after the fork (web.server.serve).
        def build():
            hub = Hub.from_config(config)
            hub.start()
            return create_app(hub, config)

        serve(PerProcess(build, close=lambda app: app.hub.stop(timeout=5)), listen["host"],
              int(listen["port"]), threads=int(listen["threads"]), processes=processes)
        return 0
    hub = Hub.from_config(config)
    hub.start()
    app = create_app(hub, config)
    try:
        serve(app, listen["host"], int(listen["port"]), threads=int(listen["threads"]))
    finally:
        hub.stop(timeout=5)
    return 0


def serve_echo(port: int) -> int:
    """Run in the child process: the uvicorn echo backend, a raw ASGI app on uvicorn
    (httptools, uvloop) answering what it received."""
    import uvicorn

    echoed = [0]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["method"] == "GET" and scope["path"] == "/count":
            body = json.dumps({"echoed": echoed[0]}).encode()
        else:
            chunks, more = [], True
            while more:
                message = await receive()
                chunks.append(message.get("body", b""))
                more = message.get("more_body", False)
            body = b"".join(chunks)
            echoed[0] += 1  # one event loop: no lock needed
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    uvicorn.run(app, host="127.0.0.1", port=port, interface="asgi3", http="httptools",
                loop="uvloop", lifespan="off", access_log=False, log_level="warning",
                server_header=False, date_header=False)
    return 0


def serve_threading_echo(port: int) -> int:
    """Run in the child process: the standard library's ``ThreadingHTTPServer`` echo
    (a thread a connection, HTTP/1.1 keep-alive), as the independent measurement used."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    lock = threading.Lock()
    echoed = [0]

    class Echo(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Head and body in one segment (flushed after each request by http.server),
        # and no Nagle: otherwise each answer waits for a delayed ACK (~40 ms).
        wbufsize = 64 * 1024
        disable_nagle_algorithm = True

        def _answer(self, body: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self._answer(json.dumps({"echoed": echoed[0]}).encode())

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with lock:
                echoed[0] += 1
            self._answer(body)

        def log_message(self, *args: Any) -> None:  # quiet: one line a request otherwise
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Echo)
    server.daemon_threads = True
    server.serve_forever()
    return 0


# -- contenders -----------------------------------------------------------------

def nodered_ready(install: bool = True) -> str | None:
    """None when Node-RED can run; else why not (installs it with npm on first use)."""
    if not shutil.which("node"):
        return "node is not installed"
    if NODERED_MAIN.exists():
        return None
    if not install:
        return f"{NODERED_MAIN.relative_to(ROOT)} missing (npm install --prefix bench/nodered)"
    npm = shutil.which("npm")
    if not npm:
        return "npm is not installed"
    lock = NODERED_DIR / "package-lock.json"
    argv = [npm, "ci" if lock.exists() else "install", "--no-audit", "--no-fund",
            "--omit=optional", "--prefix", str(NODERED_DIR)]
    print(f"installing Node-RED: {' '.join(argv[:2])} in bench/nodered ...", flush=True)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0 or not NODERED_MAIN.exists():
        return f"npm install failed: {(done.stderr or done.stdout).strip()[-500:]}"
    return None


@contextlib.contextmanager
def postgres_store() -> Iterator[str]:
    """A fresh PostgreSQL database: on HUB_TEST_POSTGRES_URL's server, else on a
    throwaway server (tools/services.py; fsync off) stopped afterwards."""
    from tools.services import PostgresServer, fresh_database

    server = None
    url = os.environ.get("HUB_TEST_POSTGRES_URL")
    try:
        if not url:
            server = PostgresServer()
            server.start()
            url = server.url
        yield fresh_database(url)
    finally:
        if server is not None:
            server.cleanup()


class Contenders(contextlib.AbstractContextManager):
    """The echo backend, the hub and (optionally) Node-RED, each in its own process."""

    def __init__(self, *, threads: int = 8, nodered: bool = True, workdir: Path | None = None,
                 backend: str = "node", processes: int = 1, store_url: str | None = None,
                 shapes: list[str] | None = None):
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="bdchub-bench-http-"))
        self._own_dir = workdir is None
        self.children: list[Child] = []
        self.threads = threads
        self.processes = processes
        self.store_url = store_url
        self.shapes = shapes or list(SHAPES)
        self.nodered_reason: str | None = None
        try:
            if backend in ("uvicorn", "python"):
                echo = [sys.executable, str(Path(__file__).resolve()), "--serve-echo"]
            elif backend == "threading":
                echo = [sys.executable, str(Path(__file__).resolve()), "--serve-threading-echo"]
            else:
                echo = ["node", str(NODERED_DIR / "echo.js")]
            self.echo = self._start("echo", echo, port=None)
            self.hub = self._start_hub()
            self.nodered = self._start_nodered() if nodered else None
            if not nodered:
                self.nodered_reason = "disabled (--no-nodered)"
        except BaseException:
            self.close()
            raise

    def _start(self, name: str, argv: list[str], *, port: int | None,
               env: dict[str, str] | None = None, timeout: float = 60.0) -> Child:
        port = port or free_port()
        if name == "echo":
            argv = [*argv, str(port)]
        child = Child(name, argv, port=port, logdir=self.workdir, env=env, cwd=ROOT,
                      timeout=timeout)
        self.children.append(child)
        return child

    def _start_hub(self) -> Child:
        port = free_port()
        config = self.workdir / "config.yaml"
        config.write_text(hub_config(self.echo.url, self.workdir, port, self.threads,
                                     self.processes, self.store_url, self.shapes),
                          encoding="utf-8")
        env = {"PYTHONPATH": str(ROOT), "HUB_LANG": "en"}
        return self._start("hub", [sys.executable, str(Path(__file__).resolve()),
                                   "--serve-hub", str(config)], port=port, env=env)

    def _start_nodered(self) -> Child | None:
        reason = nodered_ready()
        if reason:
            self.nodered_reason = reason
            return None
        from bdchub.schemas import divisions

        provinces = sorted({p for p in (f"{i:02d}" for i in range(100))
                            if divisions.is_known(p + "0000")} | {"83"})
        user_dir = self.workdir / "nodered"
        user_dir.mkdir(exist_ok=True)
        flow = user_dir / "flow.json"
        flow.write_text(json.dumps(nodered_flow(self.shapes), indent=1, ensure_ascii=False),
                        encoding="utf-8")
        port = free_port()
        env = {"BDCHUB_NODERED_PORT": str(port), "BDCHUB_ECHO_URL": f"{self.echo.url}/echo",
               "BDCHUB_SCHEMAS_DIR": str(ROOT / "schemas" / "messages"),
               "BDCHUB_SCHEMA": SCHEMA, "BDCHUB_ID_PROVINCES": ",".join(provinces),
               "BDCHUB_RECORD_FILE": str(user_dir / "records.jsonl"),
               "BDCHUB_PUBLISH_FILE": str(user_dir / "published.jsonl"),
               "NODE_ENV": "production"}
        try:
            return self._start("nodered", ["node", str(NODERED_MAIN), "--settings",
                                           str(NODERED_DIR / "settings.js"), "--userDir",
                                           str(user_dir), str(flow)],
                               port=port, env=env, timeout=90)
        except RuntimeError as exc:
            self.nodered_reason = f"did not start: {exc}"
            return None

    def urls(self, shape: str = "a") -> dict[str, str]:
        path = SHAPES[shape].path
        out = {"direct": f"{self.echo.url}/echo", "hub": f"{self.hub.url}{path}"}
        if self.nodered is not None:
            out["nodered"] = f"{self.nodered.url}{path}"
        return out

    def echoed(self) -> int:
        return int(get_json(f"{self.echo.url}/count")["echoed"])

    def close(self) -> None:
        for child in reversed(self.children):
            child.stop()
        self.children.clear()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_contender(contenders: Contenders, name: str, body: dict[str, Any],
                    n: int = 3, shape: str = "a") -> Any:
    """``name`` answers the shape's expected body ``n`` times (and, but for
    ``direct``, calls the backend as often as the shape does); returns its last answer."""
    spec = SHAPES[shape]
    expected = spec.expected(body)
    url = contenders.urls(shape)[name]
    sent = json.dumps(expected if name == "direct" else body, ensure_ascii=False).encode()
    before = contenders.echoed()
    answer = None
    for _i in range(n):
        status, answer = post_json(url, sent)
        if status != 200 or answer != expected:
            raise AssertionError(f"{name} (shape {shape}) answered {status} {answer!r}, "
                                 f"expected 200 {expected!r}")
    calls = contenders.echoed() - before
    wanted = n if name == "direct" else n * spec.calls
    if calls != wanted:
        raise AssertionError(f"{name} (shape {shape}): the backend saw {calls} calls for "
                             f"{n} requests, expected {wanted}")
    return answer


def check_contenders(contenders: Contenders, body: dict[str, Any] | None = None, n: int = 3,
                     shape: str = "a") -> dict[str, Any]:
    """Every running contender answers the shape's expected body and calls the backend."""
    body = SHAPES[shape].body() if body is None else body
    return {name: check_contender(contenders, name, body, n, shape)
            for name in contenders.urls(shape)}


# -- profiling (optional) -------------------------------------------------------

def profile_hub(contenders: Contenders, wrk: Wrk, url: str, concurrency: int,
                seconds: float) -> str | None:
    """py-spy raw collapsed stacks of the hub process under load, if py-spy is installed."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        return None
    out = contenders.workdir / "hub-profile.txt"
    proc = subprocess.Popen([spy, "record", "--pid", str(contenders.hub.proc.pid),
                             "--duration", str(int(seconds)), "--format", "raw", "--gil",
                             "--subprocesses", "--output", str(out), "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wrk.run(url, connections=concurrency, duration=seconds)
    proc.wait(timeout=seconds + 60)
    return out.read_text() if out.exists() else None


# -- measuring ------------------------------------------------------------------

def measure(contenders: Contenders, shapes: list[str], *, concurrency: int, duration: float,
            rounds: int, warmup: float) -> dict[str, list[dict[str, Any]]]:
    """Timed wrk runs keyed ``direct`` and ``<shape>:<contender>``, interleaved by round."""
    direct_body = json.dumps(expected_a(identity_request()), ensure_ascii=False).encode()
    jobs: dict[str, tuple[Wrk, str]] = {
        "direct": (Wrk(direct_body, contenders.workdir / "wrk-direct"),
                   contenders.urls()["direct"])}
    for key in shapes:
        raw = json.dumps(SHAPES[key].body(), ensure_ascii=False).encode()
        wrk = Wrk(raw, contenders.workdir / f"wrk-{key}")
        for name, url in contenders.urls(key).items():
            if name != "direct":
                jobs[f"{key}:{name}"] = (wrk, url)
    names = list(jobs)
    runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    for name in names:  # warm up: connections, JIT, caches, database pages
        wrk, url = jobs[name]
        wrk.run(url, connections=concurrency, duration=warmup)
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            wrk, url = jobs[name]
            runs[name].append(wrk.run(url, connections=concurrency, duration=duration))
        print(f"round {r + 1}/{rounds}: " + ", ".join(
            f"{n} {runs[n][-1]['rps']:.0f}" for n in names) + " req/s", flush=True)
    return runs


def _nearest(runs: list[dict[str, Any]], rps: float) -> dict[str, Any]:
    """The run whose rate is the median's: its latency percentiles are reported."""
    return min(runs, key=lambda x: abs(x["rps"] - rps))


def summarise(runs: dict[str, list[dict[str, Any]]], shapes: list[str]) -> dict[str, Any]:
    """Per shape: medians, ratios and the hub's tail (None where not measured)."""
    direct_one = median([x["rps"] for x in runs["direct"]])
    out: dict[str, Any] = {}
    for key in shapes:
        calls = SHAPES[key].calls
        row: dict[str, Any] = {"direct_rps": direct_one / calls, "direct_calls": calls}
        for name in ("hub", "nodered"):
            measured = runs.get(f"{key}:{name}")
            if not measured:
                row[f"{name}_rps"] = None
                continue
            rps = median([x["rps"] for x in measured])
            best = _nearest(measured, rps)
            row.update({f"{name}_rps": rps, f"{name}_p50_ms": best["p50_ms"],
                        f"{name}_p99_ms": best["p99_ms"], f"{name}_max_ms": best["max_ms"],
                        f"{name}_failed": sum(x["failed"] for x in measured)})
        hub, nodered = row["hub_rps"], row["nodered_rps"]
        row["hub_vs_direct"] = hub / row["direct_rps"] if hub else None
        row["hub_vs_nodered"] = hub / nodered if hub and nodered else None
        row["nodered_vs_direct"] = nodered / row["direct_rps"] if nodered else None
        row["hub_p99_over_p50"] = (row["hub_p99_ms"] / row["hub_p50_ms"]
                                   if hub and row["hub_p50_ms"] else None)
        out[key] = row
    return out


def targets(summary: dict[str, Any], *, processes: int, store: str,
            nodered: bool) -> list[dict[str, Any]]:
    """The figures of issue #15's target 1 this run measured (``bench.common.target``)."""
    plural = "process" if processes == 1 else "processes"
    setup = f"{processes} {plural}, {store}"
    out = []
    for key, row in summary.items():
        if processes == 1 and nodered:
            out.append(target(f"shape {key}: hub / Node-RED ({setup})", row["hub_vs_nodered"],
                              TARGET_NODERED, unit="x"))
        if key == "a":
            out.append(target(f"shape a: hub / direct ({setup})", row["hub_vs_direct"],
                              TARGET_DIRECT, unit="x"))
        out.append(target(f"shape {key}: hub p99/p50 ({setup})", row["hub_p99_over_p50"],
                          TARGET_TAIL, unit="x", at_least=False))
    return out


def report(summary: dict[str, Any], *, header: str) -> str:
    rows = []
    for key, r in summary.items():
        direct = f"{r['direct_rps']:.0f}" + (f" (/{r['direct_calls']})"
                                             if r["direct_calls"] > 1 else "")
        rows.append((f"{key}: {SHAPES[key].title}", direct, r["nodered_rps"], r["hub_rps"],
                     r["hub_vs_nodered"], r["hub_vs_direct"], r.get("hub_p50_ms"),
                     r.get("hub_p99_ms"), r["hub_p99_over_p50"], r.get("nodered_p99_ms")))
    return header + "\n" + table(
        ["shape", "direct req/s", "Node-RED", "hub", "hub/NR", "hub/direct", "hub p50 ms",
         "hub p99 ms", "p99/p50", "NR p99 ms"], rows)


# -- main -----------------------------------------------------------------------

def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 s runs, 2 rounds")
    parser.add_argument("--duration", type=float, default=None,
                        help="seconds per timed run (default 10, --quick 3)")
    parser.add_argument("--rounds", type=int, default=None, help="default 3, --quick 2")
    parser.add_argument("--concurrency", type=int, default=16,
                        help="keep-alive connections of the load generator")
    parser.add_argument("--threads", type=int, default=8, help="hub web server threads")
    parser.add_argument("--processes", type=int, choices=[1, 2, 3, 4], default=1,
                        help="hub web server processes (inbound.listen.processes)")
    parser.add_argument("--store", choices=["sqlite", "postgresql"], default="sqlite",
                        help="the hub's store: embedded SQLite (default) or PostgreSQL "
                             "(HUB_TEST_POSTGRES_URL, else a throwaway server)")
    parser.add_argument("--shapes", default="a,b,c", help="shapes to measure (default a,b,c)")
    parser.add_argument("--no-nodered", action="store_true", help="skip Node-RED")
    parser.add_argument("--backend", choices=["node", "uvicorn", "threading", "python"],
                        default="node",
                        help="echo backend: node (bench/nodered/echo.js, default), uvicorn "
                             "(raw ASGI app), threading (stdlib ThreadingHTTPServer); "
                             "python is uvicorn's old name")
    parser.add_argument("--profile", metavar="FILE", default=None,
                        help="after the rounds, sample the hub under load of the first shape "
                             "with py-spy (raw collapsed stacks to FILE)")
    parser.add_argument("--serve-hub", metavar="CONFIG", help=argparse.SUPPRESS)
    parser.add_argument("--serve-echo", metavar="PORT", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve-threading-echo", metavar="PORT", type=int,
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_hub:
        return serve_hub(args.serve_hub)
    if args.serve_echo:
        return serve_echo(args.serve_echo)
    if args.serve_threading_echo:
        return serve_threading_echo(args.serve_threading_echo)
    backend = "uvicorn" if args.backend == "python" else args.backend
    shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    unknown = [s for s in shapes if s not in SHAPES]
    if unknown or not shapes:
        parser.error(f"unknown shapes {unknown}; choose from {','.join(SHAPES)}")

    duration = args.duration or (3.0 if args.quick else 10.0)
    rounds = args.rounds or (2 if args.quick else 3)
    warmup = max(1.0, min(3.0, duration / 2))
    load_before = os.getloadavg()
    with contextlib.ExitStack() as stack:
        try:
            store_url = (stack.enter_context(postgres_store()) if args.store == "postgresql"
                         else None)
            contenders = stack.enter_context(Contenders(
                threads=args.threads, nodered=not args.no_nodered, backend=backend,
                processes=args.processes, store_url=store_url, shapes=shapes))
        except (RuntimeError, OSError) as exc:
            print(f"http_route: setup failed: {exc}", file=sys.stderr)
            return 2
        if contenders.nodered_reason and not args.no_nodered:
            print(f"Node-RED not measured: {contenders.nodered_reason}", flush=True)
        for key in shapes:
            check_contenders(contenders, shape=key)
        runs = measure(contenders, shapes, concurrency=args.concurrency, duration=duration,
                       rounds=rounds, warmup=warmup)
        if args.profile:
            first = SHAPES[shapes[0]]
            wrk = Wrk(json.dumps(first.body(), ensure_ascii=False).encode(),
                      contenders.workdir / "wrk-profile")
            text = profile_hub(contenders, wrk, contenders.urls(first.key)["hub"],
                               args.concurrency, max(duration, 5.0))
            if text is None:
                print("profile: py-spy not installed (pip install py-spy)", file=sys.stderr)
            else:
                Path(args.profile).write_text(text)
                print(f"profile: {args.profile}")
        nodered_reason = contenders.nodered_reason
        measured_nodered = contenders.nodered is not None

    summary = summarise(runs, shapes)
    plural = "process" if args.processes == 1 else "processes"
    header = (f"\nHTTP route, {args.concurrency} connections, {rounds} x {duration:.0f} s, "
              f"{os.cpu_count()} CPUs, hub {args.processes} {plural} on {args.store}, "
              f"backend {BACKENDS[backend]}; median of rounds; 1-min load at start "
              f"{load_before[0]:.2f}")
    print(report(summary, header=header))
    if not measured_nodered:
        print(f"Node-RED: not measured ({nodered_reason})")
    found = targets(summary, processes=args.processes, store=args.store,
                    nodered=measured_nodered)
    for t in found:
        print(f"  {t['name']}: {t['measured'] if t['measured'] is None else round(t['measured'], 3)}"
              f" ({'≥' if t['at_least'] else '≤'} {t['goal']}) "
              f"{'met' if t['met'] else 'NOT MET'}")
    errors = {n: sum(x["failed"] for x in v) for n, v in runs.items()}
    if any(errors.values()):
        print(f"WARNING: failed requests during timing: {errors}")
    out = {
        "benchmark": "http_route",
        "shapes": {k: {"title": SHAPES[k].title, "path": SHAPES[k].path,
                       "route": SHAPES[k].hub_route(SHAPES[k].path),
                       "backend_calls": SHAPES[k].calls, "hub_writes": SHAPES[k].writes,
                       "nodered_does": SHAPES[k].nodered_writes} for k in shapes},
        "backend": BACKENDS[backend],
        "store": args.store,
        "load": {"tool": "wrk", "connections": args.concurrency, "threads": 1,
                 "seconds_per_run": duration, "rounds": rounds, "warmup_seconds": warmup},
        "hub_threads": args.threads,
        "hub_processes": args.processes,
        "runs": {n: [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in x.items()}
                     for x in v] for n, v in runs.items()},
        "summary": {k: {f: (round(v, 4) if isinstance(v, float) else v) for f, v in r.items()}
                    for k, r in summary.items()},
        "nodered": "measured" if measured_nodered else f"not measured: {nodered_reason}",
        "targets": found,
        "machine": {**machine(), "load_avg_at_start": [round(x, 2) for x in load_before]},
        "quick": args.quick,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    path = write_results("http_route", out)
    print(f"results: {path.relative_to(ROOT)}")
    return 0 if found and all(t["met"] for t in found) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
