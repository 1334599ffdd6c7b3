"""Helpers shared by the HTTP benchmarks: child processes, wrk load, medians, results.

Load comes from ``wrk`` (C, event loop, keep-alive connections) in its own
process, so the contenders never share an interpreter with the load
generator. wrk is a Debian package (``apt-get install -y wrk``); ``need_wrk``
installs it when running as root and it is missing, else says how.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"

# Runs inside wrk: one POST body for every request; at the end one JSON line with
# the counts and latency percentiles (microseconds) for the harness to parse.
WRK_SCRIPT = r"""
local f = assert(io.open(os.getenv("BENCH_BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float, proc: subprocess.Popen | None = None,
              log: Path | None = None) -> None:
    """Wait until something accepts on 127.0.0.1:port (or the process died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
            raise RuntimeError(f"process exited with code {proc.returncode} before listening "
                               f"on port {port}\n{tail}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout:.0f}s")


class Child:
    """A server in its own process (and process group), output to a log file."""

    def __init__(self, name: str, argv: Sequence[str], *, port: int, logdir: Path,
                 env: Mapping[str, str] | None = None, cwd: Path | None = None,
                 timeout: float = 60.0):
        self.name = name
        self.port = port
        self.log = logdir / f"{name}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(list(argv), stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=cwd,
                                         env={**os.environ, **(env or {})},
                                         start_new_session=True)
        try:
            wait_port(port, timeout, self.proc, self.log)
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


def post_json(url: str, body: bytes, timeout: float = 10.0) -> tuple[int, Any]:
    """One POST with a JSON body; (status, parsed JSON answer)."""
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as reply:  # noqa: S310 - loopback
            return reply.status, json.loads(reply.read() or b"null")
    except urllib.error.HTTPError as err:
        data = err.read()
        try:
            return err.code, json.loads(data or b"null")
        except ValueError:
            return err.code, data.decode("utf-8", "replace")


def get_json(url: str, timeout: float = 10.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as reply:  # noqa: S310 - loopback
        return json.loads(reply.read())


def need_wrk() -> str:
    """The path of wrk; installs the Debian package when root and it is missing."""
    found = shutil.which("wrk")
    if found:
        return found
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "wrk"],
                       check=False, env=env, stdout=subprocess.DEVNULL)
        found = shutil.which("wrk")
        if not found:  # an old package list: refresh once, then try again
            subprocess.run(["apt-get", "update", "-qq"], check=False, env=env)
            subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "wrk"],
                           check=False, env=env, stdout=subprocess.DEVNULL)
            found = shutil.which("wrk")
    if not found:
        raise SystemExit("bench: the load generator wrk is missing; install it with "
                         "'apt-get install -y wrk' (Debian package)")
    return found


class Wrk:
    """Runs wrk against a URL with a fixed POST body; one instance per benchmark run."""

    def __init__(self, body: bytes, workdir: Path | None = None):
        self.bin = need_wrk()
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="bdchub-wrk-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.script = self.dir / "post.lua"
        self.script.write_text(WRK_SCRIPT)
        self.body_file = self.dir / "body.json"
        self.body_file.write_bytes(body)

    def run(self, url: str, *, connections: int, duration: float, threads: int = 1,
            timeout: float = 5.0) -> dict[str, Any]:
        """One timed run; requests per second, errors and latency percentiles (ms)."""
        threads = max(1, min(threads, connections))
        argv = [self.bin, "-t", str(threads), "-c", str(connections),
                "-d", f"{max(1, round(duration))}s", "--timeout", f"{max(1, round(timeout))}s",
                "-s", str(self.script), url]
        done = subprocess.run(argv, capture_output=True, text=True,
                              env={**os.environ, "BENCH_BODY_FILE": str(self.body_file)},
                              timeout=duration + timeout + 30)
        line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
        if done.returncode != 0 or line is None:
            raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()}\n"
                               f"{done.stdout[-2000:]}")
        data = json.loads(line[len("BENCH_JSON "):])
        seconds = data["duration_us"] / 1e6
        errors = data["errors"]
        failed = sum(errors.values())
        ok = max(0, data["requests"] - errors["status"])
        lat = data["latency_us"]
        return {"rps": ok / seconds if seconds else 0.0, "requests": data["requests"],
                "seconds": round(seconds, 3), "errors": errors, "failed": failed,
                "p50_ms": lat["p50"] / 1000, "p90_ms": lat["p90"] / 1000,
                "p99_ms": lat["p99"] / 1000, "max_ms": lat["max"] / 1000,
                "mean_ms": lat["mean"] / 1000}


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def machine() -> dict[str, Any]:
    return {"python": platform.python_version(), "cpus": os.cpu_count(),
            "platform": platform.platform(), "processor": platform.processor() or "",
            "load_avg": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg")
            else None}


def write_results(name: str, data: Mapping[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    return path


def target(name: str, measured: float | None, goal: float, *, unit: str = "",
           at_least: bool = True, note: str = "") -> dict[str, Any]:
    """One figure of issue #15's table: what was measured against its goal.

    Every benchmark puts a list of these under ``"targets"`` in its JSON result;
    ``bench/run.py`` prints all of them in one table. ``at_least``: the figure must
    reach ``goal`` (a ratio, a rate); otherwise it must stay at or under it (a
    time, a growth). A figure that could not be measured is None and not met."""
    met = measured is not None and measured == measured and (
        measured >= goal if at_least else measured <= goal)
    return {"name": name, "measured": measured, "goal": goal, "unit": unit,
            "at_least": at_least, "met": bool(met), "note": note}


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain text table, first column left-aligned, the others right-aligned."""
    cells = [[str(h) for h in headers]] + [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        lines.append("  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i])
                               for i, c in enumerate(row)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if value != value:  # nan
            return "-"
        return f"{value:.2f}" if abs(value) < 100 else f"{value:.0f}"
    return "-" if value is None else str(value)


def python() -> str:
    return sys.executable
