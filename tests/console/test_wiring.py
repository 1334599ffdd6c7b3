"""The console under ``hub run``'s inbound server: its prefix from the config, the
``console:`` section checked with the rest, and ``hub user`` on the command line
(text and --json) against the store the running hub reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
import yaml
from click.testing import CliRunner
from prometheus_client import CollectorRegistry

from bdchub.core import config as config_mod
from bdchub.core.errors import ConfigError
from bdchub.routes.middleware import MetricsMiddleware
from bdchub.web.app import create_app

from .conftest import TENANT, Browser


def _config(tmp_path: Path, **console) -> Path:
    config = {"tenant": TENANT,
              "broker": {"url": f"sqla+sqlite:///{tmp_path / 'broker.db'}"},
              "store": {"url": f"sqlite:///{tmp_path / 'store.db'}"},
              "connectors": {}, "routes": {},
              "inbound": {"listen": {"host": "127.0.0.1", "port": 0}},
              "console": {"path": "/ops", **console}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _hub(*args: str, stdin: str | None = None):
    from bdchub.hub import cli

    return CliRunner().invoke(cli, ["--lang", "en", *args], input=stdin)


def test_the_console_section_is_checked_with_the_config():
    base = {"tenant": TENANT, "connectors": {}, "routes": {}}
    config_mod.check_text(yaml.safe_dump({**base, "console": {"path": "/console"}}),
                          "c.yaml", environ={})
    with pytest.raises(ConfigError, match="taken by the inbound server"):
        config_mod.check_text(yaml.safe_dump({**base, "console": {"path": "/api"}}),
                              "c.yaml", environ={})
    with pytest.raises(ConfigError, match="lockout.*after"):
        config_mod.check_text(yaml.safe_dump({**base, "console": {"lockout": {"after": 0}}}),
                              "c.yaml", environ={})
    with pytest.raises(ConfigError, match="session_tl"):
        config_mod.check_text(yaml.safe_dump({**base, "console": {"session_tl": 60}}),
                              "c.yaml", environ={})


def test_hub_user_adds_lists_and_disables_operators_and_audits_each_change(tmp_path):
    path = str(_config(tmp_path))
    added = _hub("user", "add", "wang", "-c", path, "--role", "system_admin",
                 "--password-stdin", "--by", "root", stdin="Xitong-Guanli-2024\n")
    assert added.exit_code == 0, added.output
    assert "operator wang added: system administrator; tenants 320684" in added.output
    prompted = _hub("user", "add", "sun", "-c", path, "--role", "viewer", "--tenant", "3206*",
                    stdin="Zhidu-Chakan-2024\nZhidu-Chakan-2024\n")
    assert prompted.exit_code == 0, prompted.output
    assert "Zhidu-Chakan-2024" not in prompted.output  # the prompt does not echo
    weak = _hub("user", "add", "li", "-c", path, "--role", "viewer", "--password-stdin",
                stdin="li-password\n")
    assert weak.exit_code != 0 and "at least 12" in weak.output
    assert _hub("user", "disable", "sun", "-c", path, "--reason", "调岗").exit_code == 0
    text = _hub("user", "list", "-c", path)
    assert text.exit_code == 0 and "wang" in text.output and "disabled" in text.output
    listed = json.loads(_hub("user", "list", "-c", path, "--json").output)
    assert [(o["username"], o["roles"], o["tenants"], o["state"]) for o in listed["operators"]] \
        == [("sun", ["viewer"], ["3206*"], "disabled"),
            ("wang", ["system_admin"], [TENANT], "active")]
    roles = json.loads(_hub("user", "roles", "sun", "-c", path, "--role", "audit_admin",
                            "--json").output)
    assert roles["roles"] == ["audit_admin"] and "audit.read" in roles["actions"]
    table = json.loads(_hub("user", "roles", "--json").output)
    assert set(table["roles"]) == {"system_admin", "security_admin", "audit_admin", "viewer"}
    assert _hub("user", "enable", "sun", "-c", path).exit_code == 0
    assert _hub("user", "passwd", "sun", "-c", path, "--password-stdin",
                stdin="Xin-Mima-Chakan-2025\n").exit_code == 0
    audit = (tmp_path / "data" / "audit.jsonl").read_text(encoding="utf-8")
    events = [json.loads(line) for line in audit.splitlines()]
    changes = [(e["event"], e["fields"]["username"], e["fields"]["by"]) for e in events
               if e["event"].startswith("operator.")]
    assert [c[:2] for c in changes] == [
        ("operator.added", "wang"), ("operator.added", "sun"), ("operator.disabled", "sun"),
        ("operator.roles_changed", "sun"), ("operator.enabled", "sun"),
        ("operator.password_changed", "sun")]
    assert changes[0][2] == "root" and all(by for _e, _u, by in changes)
    for password in ("Xitong-Guanli-2024", "Zhidu-Chakan-2024", "Xin-Mima-Chakan-2025"):
        assert password not in audit


def test_a_password_is_never_a_command_line_argument():
    result = _hub("user", "add", "wang", "--role", "viewer", "--password", "Xitong-Guanli-2024")
    assert result.exit_code == 2 and "No such option" in result.output


def test_hub_run_serves_the_console_under_its_prefix_on_the_inbound_server(tmp_path):
    from bdchub.app.service import HubService

    path = _config(tmp_path)
    assert _hub("user", "add", "wang", "-c", str(path), "--role", "system_admin",
                "--password-stdin", stdin="Xitong-Guanli-2024\n").exit_code == 0
    service = HubService.from_config(config_mod.load(path), port=0,
                                     metrics=MetricsMiddleware(CollectorRegistry()))
    service.start()
    try:
        with requests.Session() as http:
            assert http.get(f"{service.url}/ops/api/me", timeout=10).status_code == 401
            login = http.post(f"{service.url}/ops/api/login", timeout=10,
                              json={"username": "wang", "password": "Xitong-Guanli-2024"})
            assert login.status_code == 200, login.text
            me = http.get(f"{service.url}/ops/api/me", timeout=10)
            assert me.json()["username"] == "wang"
            assert http.get(f"{service.url}/console/api/me", timeout=10).status_code == 404
    finally:
        service.stop()


def test_without_a_console_section_nothing_is_served_under_console(tmp_path):
    from bdchub.routes.runtime import Hub

    config = {"tenant": TENANT, "connectors": {}, "routes": {}}
    hub = Hub.from_config(config, broker="memory://", store="sqlite://",
                          metrics=MetricsMiddleware(CollectorRegistry()))
    try:
        app = create_app(hub, config)
        assert Browser(app).get("/api/me").status_code == 404
        app = create_app(hub, {**config, "console": {}})
        assert Browser(app).get("/api/me").status_code == 401
    finally:
        hub.close()
