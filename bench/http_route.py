"""HTTP route: the hub against calling the backend directly and against Node-RED 4, same run.

Target (BRIEF section 6): the hub's request/reply HTTP route (REST in ->
validate -> map -> REST out to a loopback backend) answers at least 0.35x the
requests per second of calling the backend directly, and more than Node-RED 4
doing the same flow (Node-RED measured 0.14x direct on the dev machine).

    python bench/http_route.py                  # 10 s per contender and round, 3 rounds
    python bench/http_route.py --quick          # 3 s, 2 rounds
    python bench/http_route.py --duration 20 --rounds 5 --concurrency 32
    python bench/http_route.py --no-nodered     # direct and hub only
    python bench/http_route.py --backend python # a Python (uvicorn) echo backend instead
    python bench/http_route.py --profile F      # then sample the hub with py-spy --gil into F

Every contender answers POST with an ``identity_verification_request`` body
(the canonical example ``valid-with-face``: name, resident ID, purpose, face
image digest) and every one forwards to the SAME loopback echo backend
(``bench/nodered/echo.js``, Node's http module, keep-alive), which answers
with the bytes it received:

- ``direct``: the load generator posts the mapped body straight to the echo
  backend. The baseline: what the backend and loopback cost on their own.
- ``hub``: ``web.server.serve`` (the event-loop server ``web.loopserver``:
  uvicorn, the route in a greenlet, the REST call through aiohttp) with
  ``web.app.create_app`` in its own process; the endpoint ``POST
  /api/v1/bench/verify`` (``auth: none``, ``reply: true``) runs the route ``verify_identity`` through
  ``Hub.run_sync``: ``validate: identity_verification_request`` (the
  canonical JSON Schema with the domain format checkers), ``map`` to the
  legacy field names (QQBH, QLRMC, ZJZL, ZJHM, HYYT, RXZY), ``to`` a ``rest``
  connector (pooled; on the loop through aiohttp) that POSTs the result to the echo
  backend and parses its JSON reply; the answer is the route's resulting
  body. Everything the hub does per request is on: the envelope, metrics,
  connector policies (retry, breaker), and ``Store.finish`` on the embedded
  SQLite store (the default; the body has no business number, so no rows
  are written and no transaction is taken).
- ``nodered``: Node-RED 4 (``bench/nodered``: node-red pinned in its
  package.json, installed with npm on first use), headless on loopback, with
  ``bench/nodered/flow.json``: http in -> function ``validate`` (ajv 8
  compiled once from the hub's own schema files, with the same resident-ID
  rule as ``schemas/formats.py``; 422 with the violations otherwise) ->
  function ``map`` (the same renames; missing values left out) -> http
  request (POST, keep-alive, JSON reply parsed) -> http response.

With ``--backend python`` the echo backend is a raw ASGI app on uvicorn
instead (slower, so ``direct`` is lower and every ratio higher): the target's
ratio depends on how fast the backend is, so the table names the backend.

The hub and Node-RED answer the same JSON (the mapped body; the echo makes
the backend's reply equal to it); ``check_contenders`` verifies that before
anything is timed, and that the backend really was called.

Load: ``wrk`` (C, one thread, N keep-alive connections) in its own process
(the Debian package; installed with apt-get when missing and running as root);
each contender gets a warm-up run, then rounds of timed runs, interleaved
(the order rotates every round); the median of the rounds is reported, with
the ratio of medians against ``direct``. Only 2xx answers count. All three
servers run for the whole benchmark; idle ones cost nothing.

This machine may have few cores (the reference one has 2): the load
generator, the backend and the contender share them, which is why the
default concurrency is moderate (16) and the ratio, not the absolute rate,
is the result. Results: a table on stdout and bench/results/http_route.json.
Exit status 0 when both targets are met, 1 when not (2: setup failed).
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
    write_results,
)

TARGET_DIRECT = 0.35
NODERED_DIR = ROOT / "bench" / "nodered"
NODERED_MAIN = NODERED_DIR / "node_modules" / "node-red" / "red.js"
PATH = "/api/v1/bench/verify"
ROUTE = "verify_identity"
SCHEMA = "identity_verification_request"
TENANT = "320684"
EXAMPLE = (ROOT / "schemas" / "messages" / "examples" / SCHEMA / "valid-with-face.json")

BACKENDS = {"node": "bench/nodered/echo.js (Node http)",
            "python": "ASGI echo on uvicorn (--backend python)"}

#: The map step, target <- JMESPath; Node-RED's map function does the same renames.
MAPPING = {"QQBH": "request_id", "QLRMC": "name", "ZJZL": "'1'", "ZJHM": "id_number",
           "HYYT": "purpose", "RXZY": "face_image.sha256"}


def request_body() -> dict[str, Any]:
    return json.loads(EXAMPLE.read_text(encoding="utf-8"))


def mapped(body: dict[str, Any]) -> dict[str, Any]:
    """What every contender must answer for ``body``."""
    import jmespath

    out = {}
    for target, expr in MAPPING.items():
        value = jmespath.search(expr, body)
        if value is not None:
            out[target] = value
    return out


def hub_config(echo_url: str, workdir: Path, port: int, threads: int, processes: int = 1) -> str:
    """The hub's config.yaml for the benchmark (JSON is YAML)."""
    config = {
        "tenant": TENANT,
        "name": "bench",
        "broker": {"url": f"sqla+sqlite:///{workdir / 'broker.db'}"},
        "store": {"url": f"sqlite:///{workdir / 'store.db'}"},
        "connectors": {
            "legacy": {
                "type": "rest",
                "base_url": echo_url,
                "pool": {"maxsize": max(threads * 2, 10)},
                "operations": {"verify": {"method": "POST", "path": "/echo"}},
            },
        },
        "routes": {
            ROUTE: {
                "description": "identity check: validate, rename to legacy names, forward",
                "from": {"endpoint": {"method": "POST", "path": PATH, "reply": True}},
                "steps": [
                    {"validate": SCHEMA},
                    {"map": MAPPING},
                    {"to": {"connector": "legacy", "operation": "verify"}},
                ],
            },
        },
        "inbound": {
            "listen": {"host": "127.0.0.1", "port": port, "threads": threads,
                       "processes": processes},
            "endpoints": [{"method": "POST", "path": PATH, "route": ROUTE, "reply": True,
                           "auth": "none"}],
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
    """Run in the child process: the Python echo backend (``--backend python``), a
    raw ASGI app on uvicorn (httptools, uvloop) answering what it received."""
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


class Contenders(contextlib.AbstractContextManager):
    """The echo backend, the hub and (optionally) Node-RED, each in its own process."""

    def __init__(self, *, threads: int = 8, nodered: bool = True, workdir: Path | None = None,
                 backend: str = "node", processes: int = 1):
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="bdchub-bench-http-"))
        self._own_dir = workdir is None
        self.children: list[Child] = []
        self.threads = threads
        self.processes = processes
        self.nodered_reason: str | None = None
        try:
            if backend == "python":
                echo = [sys.executable, str(Path(__file__).resolve()), "--serve-echo"]
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
                                          self.processes),
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
        port = free_port()
        env = {"BDCHUB_NODERED_PORT": str(port), "BDCHUB_ECHO_URL": f"{self.echo.url}/echo",
               "BDCHUB_SCHEMAS_DIR": str(ROOT / "schemas" / "messages"),
               "BDCHUB_SCHEMA": SCHEMA, "BDCHUB_ID_PROVINCES": ",".join(provinces),
               "NODE_ENV": "production"}
        try:
            return self._start("nodered", ["node", str(NODERED_MAIN), "--settings",
                                           str(NODERED_DIR / "settings.js"), "--userDir",
                                           str(user_dir), str(NODERED_DIR / "flow.json")],
                               port=port, env=env, timeout=90)
        except RuntimeError as exc:
            self.nodered_reason = f"did not start: {exc}"
            return None

    def urls(self) -> dict[str, str]:
        out = {"direct": f"{self.echo.url}/echo", "hub": f"{self.hub.url}{PATH}"}
        if self.nodered is not None:
            out["nodered"] = f"{self.nodered.url}{PATH}"
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
                    n: int = 3) -> Any:
    """``name`` answers the mapped body ``n`` times (and, but for ``direct``, calls the
    backend once per request); returns its last answer."""
    expected = mapped(body)
    url = contenders.urls()[name]
    sent = json.dumps(expected if name == "direct" else body, ensure_ascii=False).encode()
    before = contenders.echoed()
    answer = None
    for _i in range(n):
        status, answer = post_json(url, sent)
        if status != 200 or answer != expected:
            raise AssertionError(f"{name} answered {status} {answer!r}, expected 200 "
                                 f"{expected!r}")
    calls = contenders.echoed() - before
    if calls != n:
        raise AssertionError(f"{name}: the backend saw {calls} calls for {n} requests")
    return answer


def check_contenders(contenders: Contenders, body: dict[str, Any], n: int = 3) -> dict[str, Any]:
    """Every running contender answers the mapped body and calls the backend."""
    return {name: check_contender(contenders, name, body, n) for name in contenders.urls()}


# -- profiling (optional) -------------------------------------------------------

def profile_hub(contenders: Contenders, wrk: Wrk, url: str, concurrency: int,
                seconds: float) -> str | None:
    """py-spy top-down summary of the hub process under load, if py-spy is installed."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        return None
    out = contenders.workdir / "hub-profile.txt"
    proc = subprocess.Popen([spy, "record", "--pid", str(contenders.hub.proc.pid),
                             "--duration", str(int(seconds)), "--format", "raw", "--gil",
                             "--output", str(out), "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wrk.run(url, connections=concurrency, duration=seconds)
    proc.wait(timeout=seconds + 60)
    return out.read_text() if out.exists() else None


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
    parser.add_argument("--processes", type=int, default=1,
                        help="hub web server processes (inbound.listen.processes)")
    parser.add_argument("--no-nodered", action="store_true", help="skip Node-RED")
    parser.add_argument("--backend", choices=["node", "python"], default="node",
                        help="echo backend: node (bench/nodered/echo.js, default) or python "
                             "(a raw ASGI app on uvicorn)")
    parser.add_argument("--profile", metavar="FILE", default=None,
                        help="after the rounds, sample the hub under load with py-spy "
                             "(raw collapsed stacks to FILE)")
    parser.add_argument("--serve-hub", metavar="CONFIG", help=argparse.SUPPRESS)
    parser.add_argument("--serve-echo", metavar="PORT", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_hub:
        return serve_hub(args.serve_hub)
    if args.serve_echo:
        return serve_echo(args.serve_echo)

    duration = args.duration or (3.0 if args.quick else 10.0)
    rounds = args.rounds or (2 if args.quick else 3)
    warmup = max(1.0, min(3.0, duration / 2))
    body = request_body()
    raw = json.dumps(body, ensure_ascii=False).encode()
    direct_body = json.dumps(mapped(body), ensure_ascii=False).encode()

    try:
        contenders = Contenders(threads=args.threads, nodered=not args.no_nodered,
                                backend=args.backend, processes=args.processes)
    except (RuntimeError, OSError) as exc:
        print(f"http_route: setup failed: {exc}", file=sys.stderr)
        return 2
    runs: dict[str, list[dict[str, Any]]] = {}
    profile_text = None
    with contenders:
        if contenders.nodered_reason and not args.no_nodered:
            print(f"Node-RED not measured: {contenders.nodered_reason}", flush=True)
        check_contenders(contenders, body)
        urls = contenders.urls()
        wrks = {"direct": Wrk(direct_body, contenders.workdir / "wrk-direct")}
        wrk_route = Wrk(raw, contenders.workdir / "wrk-route")
        for name in urls:
            wrks.setdefault(name, wrk_route)
        names = list(urls)
        runs = {n: [] for n in names}
        for name in names:  # warm up: connections, JIT, caches, SQLite pages
            wrks[name].run(urls[name], connections=args.concurrency, duration=warmup)
        for r in range(rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for name in order:
                result = wrks[name].run(urls[name], connections=args.concurrency,
                                        duration=duration)
                runs[name].append(result)
            print(f"round {r + 1}/{rounds}: " + ", ".join(
                f"{n} {runs[n][-1]['rps']:.0f} req/s" for n in names), flush=True)
        if args.profile:
            profile_text = profile_hub(contenders, wrk_route, urls["hub"], args.concurrency,
                                       max(duration, 5.0))
            if profile_text is None:
                print("profile: py-spy not installed (pip install py-spy)", file=sys.stderr)
            else:
                Path(args.profile).write_text(profile_text)
                print(f"profile: {args.profile}")
        nodered_reason = contenders.nodered_reason

    med = {n: median([x["rps"] for x in v]) for n, v in runs.items()}
    direct = med["direct"]
    labels = {"direct": "direct (client -> echo backend)",
              "hub": "hub (loop server -> route -> rest -> echo)",
              "nodered": "Node-RED 4 (http in -> ... -> echo)"}
    rows = []
    for n in names:
        best = min(runs[n], key=lambda x: abs(x["rps"] - med[n]))  # the median run's latency
        failed = sum(x["failed"] for x in runs[n])
        rows.append((labels[n], med[n], med[n] / direct, best["p50_ms"], best["p99_ms"], failed))
    print()
    print(f"HTTP route, {args.concurrency} connections, {rounds} x {duration:.0f} s, "
          f"{os.cpu_count()} CPUs, backend {BACKENDS[args.backend]}; median of rounds")
    print(table(["contender", "req/s", "x direct", "p50 ms", "p99 ms", "errors"], rows))
    hub_ratio = med["hub"] / direct
    verdicts = {"hub_vs_direct": hub_ratio >= TARGET_DIRECT}
    print(f"\nhub / direct = {hub_ratio:.3f} (target >= {TARGET_DIRECT}): "
          f"{'PASS' if verdicts['hub_vs_direct'] else 'FAIL'}")
    if "nodered" in med:
        nr_ratio = med["nodered"] / direct
        verdicts["hub_vs_nodered"] = med["hub"] > med["nodered"]
        print(f"Node-RED / direct = {nr_ratio:.3f}; hub / Node-RED = "
              f"{med['hub'] / med['nodered']:.2f} (target > 1): "
              f"{'PASS' if verdicts['hub_vs_nodered'] else 'FAIL'}")
    else:
        print(f"Node-RED: not measured ({nodered_reason})")
    errors = {n: sum(x["failed"] for x in v) for n, v in runs.items()}
    if any(errors.values()):
        print(f"WARNING: failed requests during timing: {errors}")
    out = {
        "benchmark": "http_route",
        "flow": {"schema": SCHEMA, "map": MAPPING, "path": PATH,
                 "backend": BACKENDS[args.backend]},
        "load": {"tool": "wrk", "connections": args.concurrency, "threads": 1,
                 "seconds_per_run": duration, "rounds": rounds, "warmup_seconds": warmup},
        "hub_threads": args.threads,
        "hub_processes": args.processes,
        "runs": {n: [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in x.items()}
                     for x in v] for n, v in runs.items()},
        "median_rps": {n: round(v, 1) for n, v in med.items()},
        "ratio_vs_direct": {n: round(v / direct, 4) for n, v in med.items()},
        "nodered": "measured" if "nodered" in med else f"not measured: {nodered_reason}",
        "targets": {"hub_vs_direct": TARGET_DIRECT, "hub_vs_nodered": "> 1"},
        "pass": verdicts,
        "machine": machine(),
        "quick": args.quick,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    path = write_results("http_route", out)
    print(f"results: {path.relative_to(ROOT)}")
    return 0 if all(verdicts.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
