"""``hub sandbox`` (sandbox.cli:sandbox_command) and the pytest fixtures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
import requests

from bdchub.sandbox.cli import sandbox_command

ROOT = Path(__file__).resolve().parents[2]


def test_command_is_a_click_command_named_sandbox_with_the_documented_options():
    assert isinstance(sandbox_command, click.Command)
    assert sandbox_command.name == "sandbox"
    options = {o for p in sandbox_command.params for o in p.opts}
    assert {"--seed", "--host", "--base-port", "--auto-advance", "--credentials-out"} <= options


def test_command_prints_the_table_serves_until_interrupted_and_stops(tmp_path):
    out = tmp_path / "sandbox.json"
    code = ("import sys; from sandbox.cli import sandbox_command; "
            "sandbox_command(sys.argv[1:], prog_name='hub sandbox')")
    env = {**os.environ, "HUB_LANG": "en", "COLUMNS": "200"}
    proc = subprocess.Popen([sys.executable, "-c", code, "--seed", "3", "--auto-advance", "0",
                             "--credentials-out", str(out)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 20
        while not out.exists() or not out.read_text(encoding="utf-8").strip().endswith("}"):
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "sandbox did not start"
            time.sleep(0.05)
        doc = json.loads(out.read_text(encoding="utf-8"))
        assert doc["seed"] == 3 and set(doc["wsdl"]) == {"tax", "court", "legacy"}
        assert requests.get(doc["urls"]["legacy"] + "/_sandbox/health", timeout=5).status_code == 200
        assert doc["credentials"]["tax"]["username"]
    finally:
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, output
    assert doc["urls"]["window_national"] in output
    assert doc["wsdl"]["tax"] in output
    assert "sandbox stopped" in output


def test_clean_sandbox_starts_each_test_without_faults_or_received(clean_sandbox):
    assert all(clean_sandbox.received(n) == [] for n in clean_sandbox.names())
    assert all(clean_sandbox.faults(n).settings()["error_rate"] == 0 for n in clean_sandbox.names())
    clean_sandbox.faults("gov").set(error_rate=1.0)
    requests.get(clean_sandbox.url("gov") + "/api/elicense/x", timeout=5)


def test_clean_sandbox_cleared_what_the_previous_test_left(clean_sandbox):
    assert clean_sandbox.faults("gov").settings()["error_rate"] == 0
    assert clean_sandbox.received("gov") == []
