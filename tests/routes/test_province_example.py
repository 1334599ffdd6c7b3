"""examples/province/dispatch.yaml: the province's dispatch routes pass `hub check`
and send a department's result to the right county; the shipped county config
has no dispatch route."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry

from bdchub.core.config import load
from bdchub.routes.middleware import MetricsMiddleware
from bdchub.routes.runtime import Hub

from .helpers import Clock, Sleeps, echo, fake

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "province" / "dispatch.yaml"


def hub_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "hub.py"), "--lang", "en", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)


def test_province_dispatch_example_passes_hub_check():
    result = hub_cli("check", "-c", str(EXAMPLE))
    assert result.returncode == 0, result.stderr
    assert "configuration is valid" in result.stdout


def test_a_county_of_another_province_in_the_example_fails_hub_check_at_its_line(tmp_path):
    text = EXAMPLE.read_text(encoding="utf-8").replace(
        '"320681": {connector: shared_djxt, params: {county: "320681"}}',
        '"330681": {connector: shared_djxt, params: {county: "330681"}}', 1)
    bad = tmp_path / "province.yaml"
    bad.write_text(text, encoding="utf-8")
    line = next(i for i, row in enumerate(text.splitlines(), 1) if '"330681"' in row)
    result = hub_cli("check", "-c", str(bad))
    assert result.returncode == 2
    assert f"province.yaml:{line}:" in result.stderr
    assert "not under the hub's province 320000" in result.stderr


def test_the_shipped_county_config_has_no_dispatch_route():
    config = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    assert "dispatch" not in yaml.safe_dump(config["routes"], allow_unicode=True)


def test_example_sends_a_tax_clearance_to_the_shared_system_with_its_county(tmp_path):
    config = load(EXAMPLE, environ={})
    connectors = {"county_haimen": fake("county_haimen", echo),
                  "shared_djxt": fake("shared_djxt", echo)}
    hub = Hub.from_config(config, broker="memory://", store="sqlite://", connectors=connectors,
                          metrics=MetricsMiddleware(CollectorRegistry()), clock=Clock(),
                          sleep=Sleeps())
    try:
        hub.send("tax.cleared", {"cleared": True}, tenant="320000",
                 business_no="3206812026000042")
        hub.send("tax.cleared", {"cleared": True}, tenant="320000",
                 business_no="3206842026000043")   # 海门市's old prefix: 海门区 now
        hub.run_until_idle()
    finally:
        hub.kill()
    [(op, payload, ctx)] = connectors["shared_djxt"].calls
    assert (op, payload["county"], ctx.tenant) == ("deliver_result", "320681", "320681")
    [(_op, _payload, ctx)] = connectors["county_haimen"].calls
    assert (ctx.tenant, ctx.business_no) == ("320614", "3206842026000043")
