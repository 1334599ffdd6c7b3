"""``hub audit verify --json``: the report of each audit log as one JSON document, for
scripts (app.audit_cli); exit 1 when a log fails, as without --json."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from click.testing import CliRunner

from bdchub.core.config import load
from bdchub.core.sealing import AUDIT_KEY_ENV, KEY_ENV
from bdchub.hub import cli as hub_cli
from bdchub.routes.runtime import Hub


def test_audit_verify_json_reports_each_log_and_its_problems(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv(AUDIT_KEY_ENV, raising=False)
    monkeypatch.setenv("HUB_DATA_DIR", str(tmp_path / "data"))
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"tenant": "320684", "broker": {"url": "memory://"},
                                      "connectors": {}, "routes": {}}))
    hub = Hub.from_config(load(config))
    for n in range(3):
        hub.audit("inbound.accepted", id=f"r-{n}", client="window")
    hub.close()

    def verify() -> tuple[int, dict]:
        result = CliRunner().invoke(hub_cli, ["--lang", "en", "audit", "verify", "-c",
                                              str(config), "--json"])
        return result.exit_code, json.loads(result.stdout)

    code, doc = verify()
    assert code == 0
    [log] = doc["logs"]
    assert log["path"] == str(tmp_path / "data" / "audit.jsonl")
    assert (log["ok"], log["records"], log["problems"]) == (True, 3, [])
    assert isinstance(log["last_checkpoint"], float)

    audit = Path(log["path"])
    lines = audit.read_text(encoding="utf-8").splitlines()
    edited = next(n for n, line in enumerate(lines) if '"id":"r-1"' in line)
    lines[edited] = lines[edited].replace('"id":"r-1"', '"id":"r-9"')  # a record changed
    audit.write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, doc = verify()
    assert code == 1
    [log] = doc["logs"]
    assert log["ok"] is False and log["problems"][0]["line"] == edited + 1
    assert log["problems"][0]["reason"]
