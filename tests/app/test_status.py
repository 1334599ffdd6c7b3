"""``hub status``: the running hub's connectors, breakers and queues as the running
hub sees them (app.status, app.status_cli), on the embedded broker and store."""

from __future__ import annotations

import json
import time
from pathlib import Path

import yaml
from click.testing import CliRunner

from bdchub.app.service import HubService
from bdchub.app.status import StatusReporter
from bdchub.core.config import load
from bdchub.demo.environment import free_port
from bdchub.hub import cli as hub_cli
from bdchub.routes.runtime import Hub
from tests.routes.helpers import application


def _config(tmp_path: Path) -> Path:
    """A hub whose tax endpoint is a loopback port nobody listens on: its breaker
    opens at the first failure and the message parks."""
    config = {
        "tenant": "320684",
        "broker": {"url": f"sqla+sqlite:///{tmp_path / 'broker.db'}"},
        "store": {"url": f"sqlite:///{tmp_path / 'store.db'}"},
        "inbound": {"enabled": False},
        "connectors": {
            "tax": {"type": "rest", "base_url": f"http://127.0.0.1:{free_port()}",
                    "operations": {"declare": {"method": "POST", "path": "/declarations"}},
                    "timeout": 2, "retry": {"attempts": 1},
                    "breaker": {"failures": 1, "reset_after": 600}},
            "legacy": {"type": "fake", "responses": {"submit": {"ok": True}}}},
        "routes": {
            "tax_declaration": {"from": "application.submitted",
                                "on_error": {"retry": {"attempts": 1}, "park_for": 600},
                                "steps": [{"to": {"connector": "tax",
                                                  "operation": "declare"}}]},
            "archive": {"from": "application.archived",
                        "steps": [{"to": {"connector": "legacy", "operation": "submit"}}]}},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    return path


def _status(path: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(hub_cli, [*args, "status", "-c", str(path)])
    return result.exit_code, result.output


def _wait(condition, what: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_status_shows_the_open_breaker_and_the_parked_message_the_running_hub_sees(tmp_path):
    path = _config(tmp_path)
    service = HubService.from_config(load(path), pollers=False)
    service.status.every = 0.2
    service.start()
    try:
        service.hub.send("application.submitted", application("S-1"))
        service.hub.send("application.archived", application("S-2"))
        _wait(lambda: service.hub.store.count("parked") == 1, "the message never parked")
        _wait(lambda: service.hub.store.process_reports()[0]["report"]["connectors"]["tax"][
            "breaker"] == "open", "no report of the open breaker")

        code, out = _status(path, "--lang", "en")
        assert code == 0, out
        doc = json.loads(CliRunner().invoke(
            hub_cli, ["status", "-c", str(path), "--json"]).output)
    finally:
        service.stop(timeout=10)

    assert doc["running"] is True and doc["tenant"] == "320684"
    [process] = doc["processes"]
    assert process["fresh"] is True and process["age_seconds"] < process["every"] * 3
    tax, = [c for c in doc["connectors"] if c["name"] == "tax"]
    # As the running hub sees it: the breaker a fresh connection would not show.
    assert (tax["type"], tax["health"], tax["breaker"]) == ("rest", "down", "open")
    assert tax["retry_in_seconds"] > 0 and tax["calls"] >= 1 and tax["errors_1m"] >= 1
    legacy, = [c for c in doc["connectors"] if c["name"] == "legacy"]
    assert (legacy["health"], legacy["breaker"], legacy["errors_1m"]) == ("up", "closed", 0)
    assert legacy["calls_1m"] == 1 and legacy["latency_ms"] is not None
    routes = {r["name"]: r for r in doc["routes"]}
    assert routes["tax_declaration"] == {
        "name": "tax_declaration", "queue": "bdchub.route.tax_declaration", "depth": 0,
        "in_flight": 0, "parked": 1, "waiting": 0, "dead_letters": 0, "in_config": True}
    assert routes["archive"]["parked"] == 0
    # The text: one line per connector and route.
    assert out.startswith("hub 320684: running, 1 process(es)")
    [tax_line] = [line for line in out.splitlines() if line.startswith("tax ")]
    assert "down" in tax_line and "circuit open (trial in" in tax_line
    [route_line] = [line for line in out.splitlines() if line.startswith("tax_declaration")]
    assert route_line.split() == ["tax_declaration", "0", "0", "1", "0", "0"]

    # Stopped, the hub takes its report away: not running, exit 1, counts still shown.
    code, out = _status(path, "--lang", "en")
    assert code == 1
    assert out.startswith("hub 320684: not running: no process has reported")
    [route_line] = [line for line in out.splitlines() if line.startswith("tax_declaration")]
    assert route_line.split() == ["tax_declaration", "0", "-", "1", "0", "0"]
    stopped = json.loads(CliRunner().invoke(hub_cli, ["status", "-c", str(path),
                                                      "--json"]).output)
    assert stopped["running"] is False and stopped["processes"] == []
    tax, = [c for c in stopped["connectors"] if c["name"] == "tax"]
    assert tax["health"] is None and tax["breaker"] is None


def test_status_calls_a_report_older_than_three_intervals_stale_and_the_hub_not_running(
        tmp_path):
    path = _config(tmp_path)
    hub = Hub.from_config(load(path))  # makes the data key, as the first start does
    reporter = StatusReporter(hub, every=5.0, clock=lambda: time.time() - 16)
    reporter.report()  # a process killed 16 s ago: its row stays behind
    hub.close()
    code, out = _status(path, "--lang", "en")
    assert code == 1
    first = out.splitlines()[0]
    assert first.startswith("hub 320684: not running: the last report (")
    assert "is 16 s old, stale after 15 s" in first
    assert "stale" in out.splitlines()[3]  # the process row says so too
    doc = json.loads(CliRunner().invoke(hub_cli, ["status", "-c", str(path), "--json"]).output)
    assert doc["running"] is False and doc["processes"][0]["fresh"] is False
    # A fresh report makes it running again.
    hub = Hub.from_config(load(path))
    StatusReporter(hub, every=5.0).report()
    hub.close()
    assert _status(path, "--lang", "en")[0] == 0


def test_status_speaks_chinese_by_default(tmp_path, monkeypatch):
    from bdchub.core import i18n

    monkeypatch.delenv("HUB_LANG", raising=False)
    i18n.set_language(None)
    path = _config(tmp_path)
    Hub.from_config(load(path)).close()
    code, out = _status(path)
    assert code == 1
    assert out.startswith("集成中心 320684：未运行")
    assert "连接器" in out and "队列深度" in out


def test_status_of_a_config_that_cannot_be_loaded_is_one_error_line(tmp_path):
    code, out = _status(tmp_path / "nope.yaml", "--lang", "en")
    assert code == 2
    assert out.startswith("Error: config file not found") and "Traceback" not in out


def test_status_of_hub_run_with_the_shipped_config_against_the_sandbox(clean_sandbox, tmp_path):
    """``hub run`` as a process, ``hub status`` as another: the calls the running hub
    made (the court poller's orders to the registration system) show up as its
    connectors' latency; once it stops, it is not running."""
    import subprocess
    import sys
    import uuid

    from bdchub.demo.environment import sandbox_environ
    from tests.app.test_run import ROOT, hub_run

    # Secrets of this hub's own, not the published demo values a hub refuses to run with.
    secrets = {f"HUB_CLIENT_{c}_SECRET": uuid.uuid4().hex
               for c in ("COUNTY", "PROVINCE", "NATIONAL", "BANK", "DEVELOPER", "AGENCY")}
    env = sandbox_environ(clean_sandbox, inbound_port=free_port(), data_dir=tmp_path / "data",
                          HUB_LANG="en", HUB_COURT_POLL_SECONDS="0.5",
                          HUB_DIODE_KEY=uuid.uuid4().hex * 2, **secrets)

    def status() -> tuple[int, dict]:
        proc = subprocess.run([sys.executable, str(ROOT / "hub.py"), "status", "-c",
                               str(tmp_path / "config.yaml"), "--json"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)
        assert "Traceback" not in proc.stderr, proc.stderr
        return proc.returncode, json.loads(proc.stdout)

    with hub_run(tmp_path, env) as output:
        output.until("stop with Ctrl-C or SIGTERM")
        deadline = time.monotonic() + 60
        while True:  # until a report (every 5 s) counts the calls
            code, doc = status()
            legacy = {c["name"]: c for c in doc["connectors"]}["legacy"]
            if code == 0 and legacy["calls_1m"]:
                break
            assert time.monotonic() < deadline, doc
            time.sleep(0.5)
        assert doc["running"] is True and len(doc["processes"]) == 1
        assert (legacy["health"], legacy["breaker"]) == ("up", "closed")
        assert legacy["latency_ms"] > 0
        routes = {r["name"]: r for r in doc["routes"]}
        assert routes["online_application"]["queue"].endswith("online_application")
        assert all(r["depth"] is not None for r in routes.values() if r["queue"])
    code, doc = status()
    assert code == 1 and doc["running"] is False and doc["processes"] == []
