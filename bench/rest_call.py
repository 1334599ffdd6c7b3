"""CPU of one outbound REST call on the inbound server's event loop (issue #15, target 2).

A request/reply route's ``to`` step calls a ``rest`` connector; on the inbound
server's loop (``core.greenloop``) the call goes out through aiohttp
(``connectors.loophttp``). ``bench/request_budget.py`` found that call to be the
largest part of a request's CPU. This measures it alone, against a bare aiohttp
call to the same echo in the same run:

    python bench/rest_call.py                  # 5 interleaved rounds of 4,000 calls each
    python bench/rest_call.py --quick          # 3 rounds of 1,500
    python bench/rest_call.py --profile        # and py-spy's budget of a call by part
    python bench/rest_call.py --auth appkey    # the connector signs every call (appkey HMAC)

- the echo: ``bench/http_route.py --serve-echo`` (raw ASGI on uvicorn, its own process);
- the hub's call: ``connectors.build`` of the ``rest`` block ``bench/request_budget.py``
  gives its echo (POST, JSON body, the default policies: retry, breaker, metrics),
  ``conn.call("notify", payload)`` from 8 greenlets at once on one uvloop loop, as the
  inbound server runs 8 requests;
- the bare call: ``session.post(url, json=payload)`` and ``await reply.json()`` on
  one ``aiohttp.ClientSession`` from 8 coroutines at once, on the same loop;
- CPU: ``time.process_time`` of this process (the echo is another) over a round,
  divided by its calls; hub and bare rounds alternate and the median is reported;
- ``--profile``: the hub's calls again in a child process under ``py-spy record --gil``;
  each sample goes to the part its innermost recognised frame belongs to (``PARTS``),
  and the shares times the CPU per call give microseconds per part.

Results: a table on stdout and ``bench/results/rest_call.json`` with the targets
``bench/run.py`` prints. The machine has few cores and is shared: the 1-minute
load is printed and kept with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import request_budget  # noqa: E402
from bench.common import Child, free_port, machine, table, target, write_results  # noqa: E402

#: CPU per call the hub's REST call should stay within on the loop path (µs). A bare
#: aiohttp call with JSON both ways takes about 150-200 µs here; what the hub adds
#: (the requests-shaped request, idempotency key, the policies, metrics) is allowed
#: as much again.
TARGET_CPU_US = 220.0
#: The hub's call against a bare aiohttp call, CPU per call, in the same run.
TARGET_RATIO = 2.0
CONCURRENCY = 8

#: A payment notification as the request budget's route forwards it (legacy names).
PAYLOAD: dict[str, Any] = {
    "YWH": "3301022024000123", "DDH": "WX20241201093000123456", "JE": "12345.67",
    "JYH": "4200002024120112345678", "ZFSJ": "2024-12-01T09:30:00+08:00",
    "ZFQD": "wechat", "QLR": [{"XM": "张三", "ZJHM": "330102199001011234"}],
}

APPKEY = {"scheme": "appkey", "app_key": "bench-key", "app_secret": "bench-secret-0123456789"}

#: The parts of a call's budget, tested against a sample's frames innermost first.
PARTS: list[tuple[str, tuple[str, ...]]] = [
    ("JSON encode/decode", ("(json/", "orjson")),
    ("signing/auth", ("connectors/auth.py", "(hmac.py", "(hashlib.py", "(uuid.py")),
    ("breaker/retry/metrics", ("connectors/resilience.py", "connectors/metrics.py",
                               "prometheus_client/", "tenacity/", "(dataclasses.py",
                               "core/backoff.py")),
    ("logging/tracing", ("(logging/", "core/tracing.py", "core/otel.py", "core/logs.py")),
    ("request/answer objects", ("connectors/rest.py", "connectors/http.py",
                                "connectors/profile.py", "requests/", "urllib3/",
                                "jmespath/", "(urllib/parse.py", "idna/", "(http/cookies.py")),
    ("aiohttp send/receive", ("connectors/loophttp.py", "aiohttp/", "yarl/", "multidict/",
                              "aiohappyeyeballs/", "propcache/", "(asyncio/", "uvloop/",
                              "greenlet", "core/greenloop.py")),
]
#: A sample with no Python frame: the loop's own C code (uvloop) holding the GIL.
LOOP_C = "event loop (uvloop, C)"
OTHER = "other (harness)"
ORDER = [name for name, _ in PARTS] + [LOOP_C, OTHER]


def block(echo_url: str, auth: str = "none") -> dict[str, Any]:
    """The ``rest`` block of the request budget's echo (plus ``auth``)."""
    config: dict[str, Any] = {"type": "rest", "base_url": echo_url,
                              "pool": {"maxsize": CONCURRENCY * 2},
                              "operations": {"notify": {"method": "POST", "path": "/echo"}}}
    if auth == "appkey":
        config["auth"] = APPKEY
    return config


def new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # the inbound server falls back to asyncio's loop too
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class Contenders:
    """The hub's connector and a bare aiohttp session, on one loop, against one echo."""

    def __init__(self, echo_url: str, auth: str = "none") -> None:
        import aiohttp
        from prometheus_client import CollectorRegistry

        from bdchub import connectors
        from bdchub.connectors.metrics import ConnectorMetrics

        self.loop = new_loop()
        asyncio.set_event_loop(self.loop)
        self.url = echo_url + "/echo"
        self.conn = connectors.build("payment", block(echo_url, auth),
                                     metrics=ConnectorMetrics(CollectorRegistry()))
        self.conn.open()

        async def session() -> aiohttp.ClientSession:
            return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY * 2))

        self.session = self.loop.run_until_complete(session())

    def hub(self, calls: int) -> None:
        from bdchub.core import greenloop

        def caller(n: int) -> None:
            for _ in range(n):
                answer = self.conn.call("notify", PAYLOAD)
                assert answer == PAYLOAD, answer

        self.loop.run_until_complete(asyncio.gather(
            *(greenloop.run(caller, n) for n in _split(calls))))

    def bare(self, calls: int) -> None:
        async def caller(n: int) -> None:
            for _ in range(n):
                async with self.session.post(self.url, json=PAYLOAD) as reply:
                    answer = await reply.json()
                assert reply.status == 200 and answer == PAYLOAD, answer

        self.loop.run_until_complete(asyncio.gather(*(caller(n) for n in _split(calls))))

    def close(self) -> None:
        from bdchub.connectors.loophttp import close_loop

        self.loop.run_until_complete(self.session.close())
        self.loop.run_until_complete(close_loop(self.loop))
        self.conn.close()
        self.loop.close()
        asyncio.set_event_loop(None)


def _split(calls: int) -> list[int]:
    share, extra = divmod(calls, CONCURRENCY)
    return [share + (1 if k < extra else 0) for k in range(CONCURRENCY)]


def cpu_per_call(run: Any, calls: int) -> float:
    """Microseconds of this process's CPU per call over ``run(calls)``."""
    started = time.process_time()
    run(calls)
    return (time.process_time() - started) / calls * 1e6


def measure(echo_url: str, *, rounds: int, calls: int, auth: str) -> dict[str, list[float]]:
    contenders = Contenders(echo_url, auth)
    try:
        contenders.hub(min(calls, 500))  # warm: connections open, lazy imports done
        contenders.bare(min(calls, 500))
        hub: list[float] = []
        bare: list[float] = []
        for n in range(rounds):  # alternate which goes first: drift hits both alike
            pair = [("hub", contenders.hub), ("bare", contenders.bare)]
            for name, run in pair if n % 2 == 0 else pair[::-1]:
                (hub if name == "hub" else bare).append(cpu_per_call(run, calls))
        return {"hub": hub, "bare": bare}
    finally:
        contenders.close()


# -- the profile ----------------------------------------------------------------------

def part_of(stack: str) -> str:
    """The budget part of one collapsed stack (frames outermost first, ``;``-joined)."""
    if not stack.strip(";"):
        return LOOP_C
    return request_budget.part_of(stack, PARTS, OTHER)


def budget(raw: str) -> dict[str, float]:
    """Each part's share of the samples in py-spy's raw output (``stack count`` lines);
    a sample without a Python frame counts: the loop's C code."""
    return request_budget.budget(raw, part=part_of, order=ORDER, keep_empty=True)


def profile(echo_url: str, *, calls: int, auth: str, workdir: Path,
            contender: str = "hub") -> str | None:
    """py-spy's raw stacks of a child process while it makes ``calls`` calls of
    ``contender`` (attached once the child has warmed up, so imports and
    connections are not in it)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        return None
    out = workdir / f"rest_call-{contender}.raw"
    child = subprocess.Popen([sys.executable, str(Path(__file__)), "--worker", echo_url,
                              "--calls", str(calls), "--auth", auth, "--contender", contender],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdin is not None and child.stdout is not None
    try:
        if child.stdout.readline().strip() != "ready":
            return None
        spying = subprocess.Popen([spy, "record", "--gil", "--format", "raw", "--rate", "1000",
                                   "--pid", str(child.pid), "--output", str(out)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(1.0)  # attached before the calls start
        child.stdin.write("go\n")
        child.stdin.flush()
        child.wait(timeout=600)
        _, errors = spying.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    if not out.exists():
        print(f"py-spy failed: {errors[-1000:]}", file=sys.stderr)
        return None
    return out.read_text()


def worker(echo_url: str, calls: int, auth: str, contender: str) -> int:
    """Run in the profiled child: warm up, say ready, wait for go, make ``calls`` calls."""
    contenders = Contenders(echo_url, auth)
    run = contenders.hub if contender == "hub" else contenders.bare
    try:
        run(min(calls, 500))
        print("ready", flush=True)
        sys.stdin.readline()
        run(calls)
    finally:
        contenders.close()
    return 0


# -- the run ----------------------------------------------------------------------------

def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds of 1,500 calls")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=4000, help="calls a round")
    parser.add_argument("--auth", choices=["none", "appkey"], default="none")
    parser.add_argument("--profile", action="store_true", help="py-spy budget by part")
    parser.add_argument("--label", default="", help="a name for this run in the result")
    parser.add_argument("--worker", metavar="ECHO_URL", help=argparse.SUPPRESS)
    parser.add_argument("--contender", choices=["hub", "bare"], default="hub",
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args.worker, args.calls, args.auth, args.contender)
    rounds, calls = (3, 1500) if args.quick else (args.rounds, args.calls)
    load_before = os.getloadavg()[0]
    workdir = Path(tempfile.mkdtemp(prefix="bdchub-rest-call-"))
    port = free_port()
    echo = Child("echo", [sys.executable, str(ROOT / "bench" / "http_route.py"),
                          "--serve-echo", str(port)], port=port, logdir=workdir, cwd=ROOT)
    try:
        runs = measure(echo.url, rounds=rounds, calls=calls, auth=args.auth)
        hub, bare = statistics.median(runs["hub"]), statistics.median(runs["bare"])
        shares: dict[str, dict[str, float]] = {}
        if args.profile:
            for contender in ("hub", "bare"):
                raw = profile(echo.url, calls=calls * 2, auth=args.auth, workdir=workdir,
                              contender=contender)
                if raw:
                    shares[contender] = budget(raw)
    finally:
        echo.stop()
    load_after = os.getloadavg()[0]
    ratio = hub / bare
    print(f"REST call CPU per call, {rounds} rounds of {calls} calls, {CONCURRENCY} callers, "
          f"auth {args.auth}; 1-minute load {load_before:.2f} -> {load_after:.2f}")
    print(table(["contender", "median µs/call", "rounds µs/call"],
                [["hub REST call", hub, " ".join(f"{x:.0f}" for x in runs["hub"])],
                 ["bare aiohttp call", bare, " ".join(f"{x:.0f}" for x in runs["bare"])],
                 ["hub / bare", ratio, ""]]))
    parts = {contender: {name: {"share": round(share, 4),
                                "us": round(share * (hub if contender == "hub" else bare), 1)}
                         for name, share in found.items()}
             for contender, found in shares.items()}
    if parts:
        print()
        names = list(parts)
        print(table(["part", *(f"{c} µs/call" for c in names), *(f"{c} share" for c in names)],
                    [[name, *(parts[c][name]["us"] for c in names),
                      *(f"{parts[c][name]['share'] * 100:.1f}%" for c in names)]
                     for name in ORDER]))
    targets = [
        target("REST call CPU µs (loop path)", round(hub, 1), TARGET_CPU_US, unit=" µs",
               at_least=False, note=f"auth {args.auth}, {CONCURRENCY} callers"),
        target("hub REST call / bare aiohttp call, CPU per call", round(ratio, 3),
               TARGET_RATIO, at_least=False, note="same echo, same loop, same run"),
    ]
    path = write_results("rest_call", {
        "label": args.label, "machine": machine(), "auth": args.auth, "rounds": rounds,
        "calls": calls, "concurrency": CONCURRENCY,
        "load_1min": [round(load_before, 2), round(load_after, 2)],
        "hub_us": runs["hub"], "bare_us": runs["bare"], "hub_median_us": round(hub, 1),
        "bare_median_us": round(bare, 1), "ratio": round(ratio, 3), "budget": parts or None,
        "targets": targets})
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
