"""Run every benchmark in one go (``make bench``) and print where the results are.

Each benchmark is its own script with its own baseline measured in the same
run; this only runs them in turn, passing ``--quick`` through, and reports
which ones failed to run or missed their target (non-zero exit).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
SCRIPTS = ["http_route.py", "broker_relay.py", "memory.py", "fault_isolation.py",
           "bridge_diode.py", "bridge_ferry.py", "startup.py", "province_dispatch.py",
           "federation_latency.py"]


def main(argv: list[str]) -> int:
    passthrough = [a for a in argv if a == "--quick"]
    only = [a for a in argv if a.endswith(".py")] or SCRIPTS
    outcome: list[tuple[str, int, float]] = []
    for script in only:
        path = BENCH / script
        if not path.exists():
            outcome.append((script, -1, 0.0))
            continue
        print(f"\n=== {script} {' '.join(passthrough)}", flush=True)
        started = time.monotonic()
        code = subprocess.call([sys.executable, str(path), *passthrough])
        outcome.append((script, code, time.monotonic() - started))
    print("\n=== summary (JSON results in bench/results/)")
    for script, code, seconds in outcome:
        state = "missing" if code == -1 else ("ok" if code == 0 else f"exit {code}")
        print(f"  {script:18} {state:10} {seconds:7.1f} s")
    return 0 if all(code == 0 for _s, code, _t in outcome) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
