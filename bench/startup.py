"""Start-up of ``hub run`` on the shipped config.yaml: from the command to a hub
that answers ``/readyz`` with 200 (store, broker, workers and pollers answering).

Target (issue #15, item 6): under 1.5 s. Measured against the sandbox's
departments on loopback, with an embedded broker and store in a fresh data
folder each run (the first start of a county: tables created), and again on the
data folder the previous run left (a restart). Baseline in the same run: the
interpreter importing the hub's command line (``hub --version``), which no start
can beat.

    python bench/startup.py            # 5 runs of each
    python bench/startup.py --quick    # 3 runs of each

Results: a table on stdout and bench/results/startup.json; exit 1 when the
median fresh start misses the target.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bdchub.core.config import load  # noqa: E402
from bdchub.core.secrets import DEMO_SECRETS_KEY  # noqa: E402
from bdchub.demo.environment import free_port, sandbox_environ  # noqa: E402
from bdchub.sandbox.sandbox import Sandbox  # noqa: E402
from bench.common import machine, median, table, target, write_results  # noqa: E402

TARGET_SECONDS = 1.5
DEADLINE = 60.0


def own_secrets(env: dict[str, str]) -> dict[str, str]:
    """A fresh value for each secret left at its published default (hub run refuses them)."""
    found = load(ROOT / "config.yaml", environ=env)[DEMO_SECRETS_KEY]
    return {**env, **{s.variables[0]: secrets.token_hex(24) for s in found}}


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return answer.status == 200
    except (urllib.error.URLError, OSError):
        return False


def start_once(folder: Path, env: dict[str, str], port: int) -> float:
    """Seconds from the command to /readyz answering 200; the hub is stopped after."""
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, str(ROOT / "hub.py"), "run", "-c",
                             str(folder / "config.yaml"), "--log-level", "ERROR"],
                            cwd=folder, env=env, stdout=subprocess.DEVNULL,
                            stderr=(folder / "stderr.txt").open("a"))
    try:
        url = f"http://127.0.0.1:{port}/readyz"
        while not ready(url):
            if proc.poll() is not None:
                raise SystemExit(f"hub run exited {proc.returncode}: "
                                 + (folder / "stderr.txt").read_text()[-2000:])
            if time.monotonic() - started > DEADLINE:
                raise SystemExit(f"hub run not ready within {DEADLINE} s")
            time.sleep(0.01)
        return time.monotonic() - started
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def baseline_once() -> float:
    started = time.monotonic()
    subprocess.run([sys.executable, str(ROOT / "hub.py"), "--version"], check=True,
                   stdout=subprocess.DEVNULL)
    return time.monotonic() - started


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    runs = 3 if parser.parse_args(argv).quick else 5
    fresh: list[float] = []
    restart: list[float] = []
    with Sandbox(seed=42) as sb, tempfile.TemporaryDirectory(prefix="bdchub-startup-") as tmp:
        for n in range(runs):
            folder = Path(tmp) / f"run{n}"
            folder.mkdir()
            shutil.copy(ROOT / "config.yaml", folder / "config.yaml")
            port = free_port()
            env = own_secrets(sandbox_environ(sb, inbound_port=port, data_dir=folder / "data",
                                              base={k: v for k, v in os.environ.items()
                                                    if not k.startswith("HUB_")}))
            fresh.append(start_once(folder, env, port))
            restart.append(start_once(folder, env, port))
    base = [baseline_once() for _ in range(runs)]
    rows = [["fresh data folder", median(fresh), max(fresh), TARGET_SECONDS,
             "yes" if median(fresh) < TARGET_SECONDS else "NO"],
            ["restart on its data", median(restart), max(restart), TARGET_SECONDS,
             "yes" if median(restart) < TARGET_SECONDS else "NO"],
            ["baseline: hub --version", median(base), max(base), "-", "-"]]
    print(table(["hub run to /readyz 200", "median s", "max s", "target s", "met"], rows))
    path = write_results("startup", {"machine": machine(), "runs": runs, "fresh": fresh,
                                     "restart": restart, "baseline_help": base,
                                     "target_seconds": TARGET_SECONDS,
                                     "targets": [
                                         target("hub run to /readyz, fresh data folder",
                                                median(fresh), TARGET_SECONDS, unit=" s",
                                                at_least=False),
                                         target("hub run to /readyz, restart",
                                                median(restart), TARGET_SECONDS, unit=" s",
                                                at_least=False)]})
    print(f"results: {path}")
    return 0 if median(fresh) < TARGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
