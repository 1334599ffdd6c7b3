"""hub dlq / trace / send, on the embedded broker and store."""

from __future__ import annotations

import json
import time
from pathlib import Path

import yaml
from click.testing import CliRunner

from bdchub.core.config import load
from bdchub.hub import cli as hub_cli
from bdchub.routes.cli import dlq_group, send_command, trace_command
from bdchub.routes.runtime import Hub
from tests.routes.helpers import application


def _config(tmp_path: Path, responses: dict) -> Path:
    config = {
        "tenant": "320684",
        "broker": {"url": f"sqla+sqlite:///{tmp_path / 'broker.db'}"},
        "store": {"url": f"sqlite:///{tmp_path / 'store.db'}"},
        "connectors": {"legacy": {"type": "fake", "responses": responses}},
        "routes": {"intake": {"from": "application.submitted",
                              "on_error": {"retry": {"attempts": 1}},
                              "steps": [{"map": {"fields": {"ywh": "business_no"}, "merge": True}},
                                        {"to": {"connector": "legacy", "operation": "submit"}}]}},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    return path


def _work(config: Path, until) -> None:
    """Run a worker until ``until(hub)`` holds (bounded)."""
    hub = Hub.from_config(load(config), tick_interval=0.1)
    hub.start()
    try:
        deadline = time.monotonic() + 20
        while not until(hub) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert until(hub)
    finally:
        hub.stop(timeout=5)


def test_send_publishes_the_file_and_trace_prints_each_step(tmp_path):
    config = _config(tmp_path, {"submit": {"ok": True}})
    Hub.from_config(load(config)).close()  # the hub's first start makes its data key
    body = tmp_path / "app.json"
    body.write_text(json.dumps(application("C-1"), ensure_ascii=False))
    runner = CliRunner()
    sent = runner.invoke(send_command, ["-c", str(config), "application.submitted", str(body)])
    assert sent.exit_code == 0, sent.output
    assert "sent application.submitted" in sent.output
    _work(config, lambda hub: hub.store.count("processed") == 1)
    traced = runner.invoke(trace_command, ["-c", str(config), "C-1"])
    assert traced.exit_code == 0, traced.output
    lines = traced.output.splitlines()
    assert "0:map" in lines[1] and "1:to" in lines[2] and "intake" in lines[1]
    # Through the ``hub`` group, as people run it: a known error is one line, no traceback.
    missing = runner.invoke(hub_cli, ["--lang", "en", "trace", "-c", str(config), "NOPE"])
    assert missing.exit_code == 1
    assert missing.output.strip() == "Error: nothing recorded for business number NOPE"


def test_send_reports_file_and_line_of_bad_json(tmp_path):
    config = _config(tmp_path, {})
    body = tmp_path / "bad.json"
    body.write_text('{\n  "a": 1,\n  oops\n}')
    result = CliRunner().invoke(hub_cli, ["--lang", "en", "send", "-c", str(config), "a.b",
                                          str(body)])
    assert result.exit_code == 2  # the input file is unusable, like a bad config
    assert result.output.startswith(f"Error: {body}:3:3: not valid JSON")


def test_dlq_list_show_replay_and_drop(tmp_path):
    config = _config(tmp_path, {})  # no reply for submit: a permanent error
    hub = Hub.from_config(load(config))
    for no in ("C-2", "C-3"):
        hub.send("application.submitted", application(no))
    hub.close()
    _work(config, lambda h: len(h.dlq_list()) == 2)
    runner = CliRunner()
    listed = runner.invoke(dlq_group, ["list", "-c", str(config)])
    assert listed.exit_code == 0, listed.output
    assert "C-2" in listed.output and "permanent" in listed.output and "1:to" in listed.output
    first = Hub.from_config(load(config))
    ids = {d["business_no"]: d["id"] for d in first.dlq_list()}
    first.close()
    shown = runner.invoke(dlq_group, ["show", "-c", str(config), ids["C-2"][:13]])
    assert shown.exit_code == 0, shown.output
    assert "110105********1234" in shown.output and "110105199001011234" not in shown.output
    assert "张*" in shown.output and "has no reply for submit" in shown.output
    dropped = runner.invoke(dlq_group, ["drop", "-c", str(config), ids["C-3"]])
    assert dropped.exit_code == 0, dropped.output
    # The fix: the endpoint now answers; replay what is left.
    config = _config(tmp_path, {"submit": {"ok": True}})
    replayed = runner.invoke(dlq_group, ["replay", "-c", str(config), "all"])
    assert replayed.exit_code == 0 and "replayed 1 message(s)" in replayed.output
    assert "from step 1:to" in replayed.output  # the map before it is not done again
    _work(config, lambda h: h.store.count("processed", route="intake") == 3)
    empty = runner.invoke(dlq_group, ["list", "-c", str(config)])
    assert "no dead letters" in empty.output
    unknown = runner.invoke(dlq_group, ["show", "-c", str(config), "nope"])
    assert unknown.exit_code == 1


def test_trace_prints_the_verification_records_masked(tmp_path):
    config = {
        "tenant": "320684",
        "broker": {"url": f"sqla+sqlite:///{tmp_path / 'broker.db'}"},
        "store": {"url": f"sqlite:///{tmp_path / 'store.db'}"},
        "connectors": {"gov": {"type": "fake", "responses": {"verify_identity": {
            "match": True, "name": "张三", "id_number": "110105199001011234"},
            # What the exchange platform answers a household check with.
            "household": {"found": True, "entries": [
                {"name": "李四", "cert_num": "11010519850202002X", "relation": "户主"}]}}}},
        "routes": {"intake": {"from": "application.submitted", "steps": [
            {"enrich": {"connector": "gov", "operation": "verify_identity",
                        "into": "checks.identity", "record": "identity"}},
            {"enrich": {"connector": "gov", "operation": "household",
                        "into": "checks.household", "record": "household"}}]}},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    hub = Hub.from_config(load(path))
    hub.send("application.submitted", application("C-9"))
    hub.close()
    _work(path, lambda h: h.store.count("processed") == 1)
    traced = CliRunner().invoke(trace_command, ["-c", str(path), "C-9"])
    assert traced.exit_code == 0, traced.output
    [record] = [line for line in traced.output.splitlines() if "verify_identity" in line]
    assert "identity" in record and '"match": true' in record
    assert "张*" in record and "110105********1234" in record
    assert "张三" not in traced.output and "110105199001011234" not in traced.output
    [household] = [line for line in traced.output.splitlines() if '"relation"' in line]
    assert "李*" in household and "110105********002X" in household
    assert "李四" not in traced.output and "11010519850202002X" not in traced.output
    other = CliRunner().invoke(trace_command, ["-c", str(path), "--tenant", "320612", "C-9"])
    assert other.exit_code == 1  # another county's records stay out


def test_a_one_shot_command_that_finds_no_data_key_says_where_it_looked_and_makes_none(
        tmp_path, monkeypatch):
    monkeypatch.delenv("BDCHUB_DATA_KEY", raising=False)
    config = _config(tmp_path, {"submit": {"ok": True}})
    # The hub ran with its data folder elsewhere (HUB_DATA_DIR in its service unit).
    monkeypatch.setenv("HUB_DATA_DIR", str(tmp_path / "service-data"))
    hub = Hub.from_config(load(config))
    hub.send("application.submitted", application("C-11"))
    hub.close()
    monkeypatch.delenv("HUB_DATA_DIR")  # the operator's shell, without it
    body = tmp_path / "app.json"
    body.write_text(json.dumps(application("C-12"), ensure_ascii=False))
    runner = CliRunner()
    for args in (["trace", "-c", str(config), "C-11"], ["dlq", "list", "-c", str(config)],
                 ["send", "-c", str(config), "application.submitted", str(body)]):
        result = runner.invoke(hub_cli, ["--lang", "en", *args])
        assert result.exit_code == 2, (args, result.output)
        assert result.output.startswith("Error: no data key")
        for hint in ("BDCHUB_DATA_KEY", "store.key_file", "HUB_DATA_DIR",
                     str(tmp_path / "data" / "store.key")):
            assert hint in result.output
    assert not (tmp_path / "data" / "store.key").exists()
    monkeypatch.setenv("HUB_DATA_DIR", str(tmp_path / "service-data"))
    found = runner.invoke(hub_cli, ["--lang", "en", "dlq", "list", "-c", str(config)])
    assert found.exit_code == 0 and "no dead letters" in found.output
