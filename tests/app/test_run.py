"""``hub run``: serve the inbound endpoints and run the workers until SIGTERM."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]


class Output:
    """The lines a subprocess prints, read by a thread (select() would miss lines
    already in the pipe object's buffer)."""

    def __init__(self, proc: subprocess.Popen[str]):
        self.proc = proc
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen = ""
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)

    def until(self, marker: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while marker not in self.seen:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {marker!r} in the output so far: {self.seen!r}")
            try:
                self.seen += self.lines.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                if self.proc.poll() is not None and self.lines.empty():
                    raise AssertionError(f"hub run exited ({self.proc.returncode}) without "
                                         f"{marker!r}: {self.seen!r}") from None
        return self.seen


def own_secrets(env: dict[str, str]) -> dict[str, str]:
    """``env`` with a fresh value for every secret it leaves at config.yaml's published
    demo default (the clients' secrets, the diode key: the sandbox's department
    credentials are set already), as a deployment sets them: ``hub run`` refuses
    the demo values. Hex, so the diode key's form fits too."""
    import secrets

    from bdchub.core.config import load
    from bdchub.core.secrets import DEMO_SECRETS_KEY

    found = load(ROOT / "config.yaml", environ=env)[DEMO_SECRETS_KEY]
    return {**env, **{s.variables[0]: secrets.token_hex(24) for s in found}}


@contextlib.contextmanager
def hub_run(tmp_path: Path, env: dict[str, str]):
    """``hub run`` on a copy of the shipped config in ``tmp_path`` (so the hub's own
    files stay there); yields its output; stops it with SIGTERM, which must end it
    cleanly."""
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    errors = (tmp_path / "stderr.txt").open("w")  # a file: a full pipe would block the hub
    proc = subprocess.Popen([sys.executable, str(ROOT / "hub.py"), "--lang", "en", "run",
                             "-c", str(tmp_path / "config.yaml"), "--log-level", "WARNING"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=errors,
                            text=True)
    output = Output(proc)
    try:
        yield output
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
    assert "stopped" in output.until("stopped", timeout=5)


def test_hub_run_serves_inbound_runs_workers_and_stops_on_sigterm(clean_sandbox, tmp_path):
    from bdchub.demo import samples as samples_mod
    from bdchub.demo.environment import free_port, sandbox_environ
    from bdchub.web.signing import signed_headers

    sb = clean_sandbox
    port = free_port()
    env = own_secrets(sandbox_environ(sb, inbound_port=port, data_dir=tmp_path / "data",
                                      HUB_COURT_POLL_SECONDS="0.5"))
    with hub_run(tmp_path, env) as output:
        out = output.until("stop with Ctrl-C or SIGTERM")
        assert f"inbound endpoints on http://127.0.0.1:{port}" in out
        assert "/api/v1/inbound/legacy/stage-changes  -> legacy_stage_change" in out
        assert "/api/v1/bank/batches  -> bank_batch" in out
        assert requests.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=5).status_code == 200

        # A signed submission from the county window is routed to the registration system.
        body = samples_mod.build(sb.data, tag=uuid.uuid4().hex[:4].upper())["first"]
        raw = json.dumps(body, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json",
                   **signed_headers("ik-window-national", env["HUB_CLIENT_NATIONAL_SECRET"],
                                    "POST", "/api/v1/applications", raw)}
        resp = requests.post(f"http://127.0.0.1:{port}/api/v1/applications", data=raw,
                             headers=headers, timeout=10)
        assert resp.status_code == 202, resp.text
        deadline = time.monotonic() + 20
        while not [r for r in sb.received("legacy") if r["operation"] == "SubmitApplication"
                   and r["body"].get("YWH") == body["business_no"]]:
            assert time.monotonic() < deadline, "the application never reached legacy"
            time.sleep(0.05)
        # The court poller runs too: the seeded orders reach the registration system.
        while not [r for r in sb.received("legacy") if r["operation"] == "ReceiveCourtOrder"]:
            assert time.monotonic() < deadline, "no court order reached legacy"
            time.sleep(0.05)
        # The broker and store live where HUB_BROKER_URL / HUB_STORE_URL said.
        assert (tmp_path / "data" / "store.db").exists()


def test_hub_run_reports_a_missing_config_as_one_error_line(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "hub.py"), "--lang", "en", "run",
                           "-c", str(tmp_path / "nope.yaml")], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "HUB_LANG": "en"})
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("Error: config file not found")
    assert "Traceback" not in proc.stderr


def test_hub_run_refuses_to_start_with_published_demo_secrets_naming_each_in_one_error(
        tmp_path):
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    # Every department's secret set, the clients' and the diode's left at their defaults.
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    for var in ("GOV", "CIVIL", "PUBLIC_SECTOR", "HEALTH", "JUSTICE", "FINANCE"):
        env[f"HUB_{var}_SECRET"] = uuid.uuid4().hex
    proc = subprocess.run([sys.executable, str(ROOT / "hub.py"), "run", "-c", "config.yaml"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    first, *rest = proc.stderr.strip().splitlines()
    assert first.startswith("错误: 配置中有 ") and "个密钥仍是配置文件里公开的演示值" in first
    lines = (ROOT / "config.yaml").read_text(encoding="utf-8").splitlines()
    line = 1 + next(i for i, text in enumerate(lines) if "${HUB_CLIENT_COUNTY_SECRET:" in text)
    assert [text for text in rest if "inbound.clients.county_window.app_secret" in text] == [
        f"  config.yaml:{line}:19：inbound.clients.county_window.app_secret：仍是公开的演示值；"
        "请设置 HUB_CLIENT_COUNTY_SECRET（或 HUB_CLIENT_COUNTY_SECRET_FILE）"]
    named = " ".join(rest)
    assert "connectors.police.auth.password" in named and "HUB_POLICE_PASSWORD" in named
    assert "connectors.gov.auth.secret" not in named  # set in the environment
    assert not (tmp_path / "var").exists()  # nothing started, nothing written


def test_hub_run_with_two_processes_serves_one_port_polls_once_and_stops_on_sigterm(
        clean_sandbox, tmp_path):
    from bdchub.demo import samples as samples_mod
    from bdchub.demo.environment import free_port, sandbox_environ
    from bdchub.web.signing import signed_headers

    sb = clean_sandbox
    port = free_port()
    env = own_secrets(sandbox_environ(sb, inbound_port=port, data_dir=tmp_path / "data",
                                      HUB_COURT_POLL_SECONDS="0.5", HUB_LISTEN_PROCESSES="2"))
    with hub_run(tmp_path, env) as output:
        out = output.until("stop with Ctrl-C or SIGTERM")
        assert f"2 processes on http://127.0.0.1:{port}" in out
        deadline = time.monotonic() + 30
        while True:  # the processes build their hubs one after the other
            try:
                if requests.get(f"http://127.0.0.1:{port}/api/v1/health",
                                timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline and output.proc.poll() is None, "no health answer"
            time.sleep(0.1)

        body = samples_mod.build(sb.data, tag=uuid.uuid4().hex[:4].upper())["first"]
        raw = json.dumps(body, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json",
                   **signed_headers("ik-window-national", env["HUB_CLIENT_NATIONAL_SECRET"],
                                    "POST", "/api/v1/applications", raw)}
        url = f"http://127.0.0.1:{port}/api/v1/applications"
        assert requests.post(url, data=raw, headers=headers, timeout=10).status_code == 202
        # Each replay on a new connection may land in either process (which one is the
        # kernel's choice; tests/web/test_signing.py shows the store refuses it in both).
        replays = [requests.post(url, data=raw, headers={**headers, "Connection": "close"},
                                 timeout=10) for _ in range(8)]
        assert [r.status_code for r in replays] == [401] * 8
        assert {r.json()["error"]["code"] for r in replays} == {"replayed_nonce"}
        while not [r for r in sb.received("legacy") if r["operation"] == "SubmitApplication"
                   and r["body"].get("YWH") == body["business_no"]]:
            assert time.monotonic() < deadline + 20, "the application never reached legacy"
            time.sleep(0.05)
        # One process polls the court: its orders arrive once each, not once per process.
        while not [r for r in sb.received("legacy") if r["operation"] == "ReceiveCourtOrder"]:
            assert time.monotonic() < deadline + 20, "no court order reached legacy"
            time.sleep(0.05)
