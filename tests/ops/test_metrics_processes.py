"""With several server processes (``inbound.listen.processes: 2``) every scrape tells
the same numbers, whichever process answers it: counters are summed over the
processes (prometheus_client's multiprocess mode, core.metrics) and the state is
read from the shared store and broker (app.metrics). ``metrics.listen`` serves the
same scrape on an address of its own."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.app.test_run import Output

ROOT = Path(__file__).resolve().parents[2]

HEALTH = ("bdchub_inbound_requests_total", (("endpoint", "/api/v1/health"), ("status", "200")))


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    # A new connection each time: the kernel hands it to either process.
    answer = requests.get(url, headers={"Connection": "close"}, timeout=10)
    assert answer.status_code == 200
    return samples(answer.text)


@contextlib.contextmanager
def hub_run(tmp_path: Path, port: int, metrics_port: int):
    """``hub run`` of a small hub with two server processes; stopped with SIGTERM,
    which must end it cleanly."""
    doc = {
        "tenant": "320684",
        "broker": {"url": f"sqla+sqlite:///{tmp_path / 'broker.db'}"},
        "store": {"url": f"sqlite:///{tmp_path / 'store.db'}"},
        "metrics": {"listen": f"127.0.0.1:{metrics_port}"},
        "inbound": {"listen": {"host": "127.0.0.1", "port": port, "processes": 2}},
        "connectors": {"legacy": {"type": "fake", "responses": {"submit": {"ok": True}}}},
        "routes": {"archive": {"from": "application.archived", "steps": [
            {"to": {"connector": "legacy", "operation": "submit"}}]}},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(doc))
    errors = (tmp_path / "stderr.txt").open("w")  # a file: a full pipe would block the hub
    proc = subprocess.Popen([sys.executable, str(ROOT / "hub.py"), "--lang", "en", "run",
                             "-c", str(tmp_path / "config.yaml"), "--log-level", "WARNING"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=errors, text=True,
                            env={**os.environ, "HUB_LANG": "en"})
    try:
        yield Output(proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        finally:
            errors.close()
    assert proc.returncode == 0, (tmp_path / "stderr.txt").read_text()[-2000:]


def test_two_processes_answer_every_scrape_with_the_same_counts_and_state(tmp_path):
    from bdchub.demo.environment import free_port

    port, metrics_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    with hub_run(tmp_path, port, metrics_port) as output:
        output.until("stop with Ctrl-C or SIGTERM")
        folder = _values_folder(tmp_path / "data" / "metrics", output)
        health = 0
        deadline = time.monotonic() + 60
        while len(_writers(folder)) < 2:  # the processes build their hubs one by one
            assert time.monotonic() < deadline, "the second process never counted a request"
            try:
                if requests.get(f"{base}/api/v1/health", headers={"Connection": "close"},
                                timeout=5).status_code == 200:
                    health += 1
            except requests.ConnectionError:
                pass
            time.sleep(0.05)
        for _ in range(20):
            assert requests.get(f"{base}/api/v1/health", headers={"Connection": "close"},
                                timeout=5).status_code == 200
            health += 1

        scrapes = [scrape(f"{base}/metrics") for _ in range(8)]
        scrapes.append(scrape(f"http://127.0.0.1:{metrics_port}/metrics"))

    # Both processes took health requests, and every scrape counts all of them.
    assert [s[HEALTH] for s in scrapes] == [health] * len(scrapes)
    state = [{k: v for k, v in s.items() if k[0].startswith(("bdchub_route_parked",
                                                                "bdchub_route_dead_letter",
                                                                "bdchub_route_waiting",
                                                                "bdchub_route_queue",
                                                                "bdchub_build_info"))}
             for s in scrapes]
    assert state[0] and all(s == state[0] for s in state)
    # Gauges of calls under way are summed, not one series per process.
    assert not [k for s in scrapes for k in s if dict(k[1]).get("pid")]


def _values_folder(parent: Path, output) -> Path:
    deadline = time.monotonic() + 30
    while not (parent.is_dir() and any(parent.iterdir())):
        assert time.monotonic() < deadline, f"no multiprocess folder in {parent}"
        time.sleep(0.05)
    [folder] = list(parent.iterdir())
    return folder


def _writers(folder: Path) -> set[str]:
    """The processes that have counted something (``counter_<pid>.db``)."""
    return {p.stem.rsplit("_", 1)[1] for p in folder.glob("counter_*.db")}
