"""Run every benchmark in one go (``make bench``) and print every figure of issue
#15 in one table: what was measured, its target, and whether it is met.

Each benchmark is its own script with its own baseline measured in the same
run; this runs them in turn, passing ``--quick`` through, then reads the
``"targets"`` each wrote into its JSON result (``bench.common.target``). A
benchmark that failed to run, or whose result file was not written in this
run, shows as such instead of an old figure. Exit 1 when anything failed to run
or a target was missed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

from bench.common import RESULTS, table  # noqa: E402

SCRIPTS = ["http_route.py", "broker_relay.py", "memory.py", "fault_isolation.py",
           "bridge_diode.py", "bridge_ferry.py", "startup.py", "province_dispatch.py",
           "federation_latency.py", "request_budget.py", "rest_call.py"]


def figures(script: str, code: int, started: float,
            results: Path = RESULTS) -> list[list[Any]]:
    """The table's rows of one benchmark: its targets, or why there are none."""
    name = script.removesuffix(".py")
    path = results / f"{name}.json"
    if code == -1:
        return [[name, "(no such benchmark)", "-", "-", "missing"]]
    if not path.exists() or path.stat().st_mtime < started:
        return [[name, f"(no result written; exit {code})", "-", "-", "not run"]]
    data = json.loads(path.read_text())
    rows = []
    for t in data.get("targets") or []:
        goal = ("≥ " if t["at_least"] else "≤ ") + f"{t['goal']:g}{t['unit']}"
        measured = "-" if t["measured"] is None else f"{t['measured']:.3g}{t['unit']}"
        rows.append([name, t["name"], measured, goal, "met" if t["met"] else "NOT MET"])
    return rows or [[name, "(figures only, no target)", "-", "-", "measured"]]


def summary(outcome: Sequence[tuple[str, int, float, float]],
            results: Path = RESULTS) -> tuple[str, bool]:
    """The one table, and whether every benchmark ran and met its targets."""
    rows: list[list[Any]] = []
    for script, code, started, _seconds in outcome:
        rows += figures(script, code, started, results)
    ok = all(code == 0 for _s, code, _t, _d in outcome) and all(
        r[4] in ("met", "measured") for r in rows)
    return table(["benchmark", "figure", "measured", "target", "status"], rows), ok


def main(argv: list[str]) -> int:
    passthrough = [a for a in argv if a == "--quick"]
    only = [a for a in argv if a.endswith(".py")] or SCRIPTS
    outcome: list[tuple[str, int, float, float]] = []
    for script in only:
        path = BENCH / script
        if not path.exists():
            outcome.append((script, -1, time.time(), 0.0))
            continue
        print(f"\n=== {script} {' '.join(passthrough)}", flush=True)
        started, clock = time.time(), time.monotonic()
        code = subprocess.call([sys.executable, str(path), *passthrough])
        outcome.append((script, code, started, time.monotonic() - clock))
    print("\n=== how long each ran")
    for script, code, _started, seconds in outcome:
        state = "missing" if code == -1 else ("ok" if code == 0 else f"exit {code}")
        print(f"  {script:24} {state:10} {seconds:7.1f} s")
    text, ok = summary(outcome)
    print("\n=== every figure against its target (JSON results in bench/results/)")
    print(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
