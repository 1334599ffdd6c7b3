"""The Prometheus alert rules and the Grafana dashboard in deploy/ are valid
(``promtool check rules``, ``promtool test rules``), and every metric they use is
one a running hub exports (scraped from its /metrics)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from bdchub.app.service import HubService
from bdchub.core.config import load
from bdchub.demo.environment import free_port

from .test_state_metrics import config

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "bdchub.json"
#: What Prometheus makes itself rather than scrapes.
PROMETHEUS_OWN = {"up"}
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count",
                                                              "_created"),
            "gauge": ("",), "info": ("_info",), "summary": ("_sum", "_count", "_created")}


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        message = "promtool not found (Debian package prometheus)"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (CI=true: the tools are required)")
        pytest.skip("SKIPPED LOUDLY: " + message)
    return found


def test_promtool_accepts_the_alert_rules():
    done = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_alerts_fire_when_their_condition_holds_and_not_before():
    done = subprocess.run([promtool(), "test", "rules", "alerts.test.yml"], cwd=RULES.parent,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def used_names() -> dict[str, set[str]]:
    """The metric names in each expression of the rules and the dashboard."""
    exprs = [rule["expr"] for group in yaml.safe_load(RULES.read_text())["groups"]
             for rule in group["rules"]]
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs += [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    exprs.append(dashboard["templating"]["list"][1]["query"]["query"])
    found: dict[str, set[str]] = {}
    for expr in exprs:
        # Strip label matchers, strings and functions: what is left that names a series.
        bare = re.sub(r'\{[^}]*\}|"[^"]*"', " ", expr)
        for name in re.findall(r"\b(?:bdchub_[a-z0-9_]+|up)\b(?!\s*\()", bare):
            found.setdefault(name, set()).add(expr)
    return found


def test_every_metric_the_dashboard_and_the_alerts_use_is_one_the_hub_exports(tmp_path):
    port = free_port()
    doc = {"inbound": {"listen": {"host": "127.0.0.1", "port": port}},
           "pollers": {"court_orders": {"connector": "legacy", "operation": "submit",
                                        "every": 60, "items": "items",
                                        "publish": "court.order_received"}}}
    service = HubService.from_config(load(config(tmp_path, **doc)))
    service.start()
    try:
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    finally:
        service.stop(timeout=10)
    exported = set()
    for family in text_string_to_metric_families(text):
        exported |= {family.name + suffix for suffix in SUFFIXES.get(family.type, ("",))}
        exported |= {s.name for s in family.samples}

    used = used_names()
    assert {"bdchub_route_queue_messages", "bdchub_poller_lag_seconds",
            "bdchub_diode_repairs_total", "bdchub_ferry_discs_refused_total"} <= set(used)
    unknown = {name: sorted(where) for name, where in used.items()
               if name not in exported and name not in PROMETHEUS_OWN}
    assert unknown == {}
