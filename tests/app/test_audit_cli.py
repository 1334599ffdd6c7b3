"""``hub audit list|export|verify`` over the hub's own log, rotated files included
(app.audit_cli over core.audit_query); Chinese unless --lang en."""

from __future__ import annotations

import json

import yaml
from click.testing import CliRunner

from bdchub.core.audit import log_files
from bdchub.core.config import load
from bdchub.core.sealing import AUDIT_KEY_ENV, KEY_ENV
from bdchub.hub import cli as hub_cli
from bdchub.routes.runtime import Hub


def _hub_with_rotated_log(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv(AUDIT_KEY_ENV, raising=False)
    monkeypatch.setenv("HUB_DATA_DIR", str(tmp_path / "data"))
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "tenant": "320684", "broker": {"url": "memory://"}, "connectors": {}, "routes": {},
        "audit": {"retention_days": 400, "rotate": {"max_bytes": 4096, "daily": True}}}))
    hub = Hub.from_config(load(config))
    for n in range(40):
        hub.audit("inbound.accepted", id=f"r-{n}", client="window", business_no=f"BN{n:03d}",
                  pad="x" * 80)
    hub.audit("channel.suspended", kind="client", name="window", by="张三", reason="测试")
    hub.close()
    assert len(log_files(tmp_path / "data" / "audit.jsonl")) > 1  # the config's rotation
    return config


def _hub(*args: str):
    return CliRunner().invoke(hub_cli, list(args))


def test_list_is_a_chinese_table_newest_first_filtered_and_json_on_request(tmp_path,
                                                                           monkeypatch):
    config = str(_hub_with_rotated_log(tmp_path, monkeypatch))
    result = _hub("--lang", "zh_CN", "audit", "list", "-c", config, "--limit", "3")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "事件" in lines[0] and "channel.suspended" in lines[1] and "BN039" in lines[2]
    assert "--before" in lines[-1] and "更多" in lines[-1]
    doc = json.loads(_hub("audit", "list", "-c", config, "--json", "--business-no", "BN007")
                     .output)
    assert [r["object"] for r in doc["records"]] == ["r-7"]
    doc = json.loads(_hub("audit", "list", "-c", config, "--json", "--actor", "张三").output)
    assert [r["event"] for r in doc["records"]] == ["channel.suspended"]
    assert _hub("audit", "verify", "-c", config).exit_code == 0


def test_export_refuses_a_range_without_a_start_and_writes_csv_to_a_file(tmp_path,
                                                                         monkeypatch):
    config = str(_hub_with_rotated_log(tmp_path, monkeypatch))
    refused = _hub("audit", "export", "-c", config)
    assert refused.exit_code != 0 and "--since" in refused.output
    out = tmp_path / "audit.csv"
    result = _hub("--lang", "zh_CN", "audit", "export", "-c", config, "--since", "2000-01-01",
                  "--event",
                  "inbound.*", "-o", str(out))
    assert result.exit_code == 0, result.output
    rows = out.read_text(encoding="utf-8-sig").splitlines()
    assert len(rows) == 41 and rows[0].split(",")[4] == "业务号"
    assert "已将 40 条记录写入" in result.output
    every = _hub("audit", "export", "-c", config, "--all", "--format", "jsonl")
    assert len(every.output.splitlines()) == 41


def test_verify_names_the_rotated_file_that_was_edited(tmp_path, monkeypatch):
    config = _hub_with_rotated_log(tmp_path, monkeypatch)
    archive = log_files(tmp_path / "data" / "audit.jsonl")[0]
    archive.write_text(archive.read_text().replace('"r-1"', '"r-X"'))
    result = _hub("--lang", "en", "audit", "verify", "-c", str(config), "--json")
    assert result.exit_code == 1
    [log] = json.loads(result.stdout)["logs"]
    assert log["problems"][0]["file"] == archive.name
