"""The hub's own audit log (Hub.audit) and ``hub audit verify``: keyed by default,
one chain for every process and hub on a data folder, truncation noticed."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from bdchub.core.config import load
from bdchub.core.sealing import AUDIT_KEY_ENV, KEY_ENV
from bdchub.hub import cli as hub_cli
from bdchub.routes.runtime import Hub

ROOT = Path(__file__).resolve().parents[2]

WRITER = """
import sys
from bdchub.core.config import load
from bdchub.routes.runtime import Hub
hub = Hub.from_config(load(sys.argv[1]))
print("ready", flush=True)
sys.stdin.readline()
for i in range(int(sys.argv[2])):
    hub.audit("inbound.accepted", id=f"{sys.argv[3]}-{i}", client="window")
hub.close()
"""


@pytest.fixture
def config(tmp_path, monkeypatch) -> Path:
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv(AUDIT_KEY_ENV, raising=False)
    monkeypatch.setenv("HUB_DATA_DIR", str(tmp_path / "data"))
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"tenant": "320684", "broker": {"url": "memory://"},
                                    "connectors": {}, "routes": {}}))
    return path


def _verify(config: Path):
    return CliRunner().invoke(hub_cli, ["--lang", "en", "audit", "verify", "-c", str(config)])


def _audit_file(tmp_path: Path) -> Path:
    return tmp_path / "data" / "audit.jsonl"


def test_two_hub_processes_on_one_data_folder_keep_one_verifiable_chain(config, tmp_path):
    Hub.from_config(load(config)).close()  # the first start makes the data key
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(config), "100", name],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              cwd=ROOT) for name in ("p1", "p2")]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.close()
    for p in procs:
        assert p.wait(120) == 0

    result = _verify(config)

    assert result.exit_code == 0, result.output
    assert "intact, 200 records" in result.output


def test_two_hubs_in_one_process_on_one_data_folder_keep_one_chain(config):
    hubs = [Hub.from_config(load(config)) for _ in range(2)]

    def write(hub: Hub, name: str) -> None:
        for i in range(60):
            hub.audit("inbound.accepted", id=f"{name}-{i}")

    threads = [threading.Thread(target=write, args=(hub, n))
               for hub, n in zip(hubs, ("a", "b"), strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for hub in hubs:
        hub.close()

    result = _verify(config)
    assert result.exit_code == 0, result.output
    assert "intact, 120 records" in result.output


def test_the_hubs_log_is_keyed_without_being_asked_to(config, tmp_path):
    hub = Hub.from_config(load(config))
    for i in range(4):
        hub.audit("inbound.accepted", id=f"m-{i}", client="window")
    hub.close()
    path = _audit_file(tmp_path)
    lines = path.read_text(encoding="utf-8").splitlines()
    # Rewritten as someone without the key can: edit, then recompute every plain hash.
    prev, out = "0" * 64, []
    for n, line in enumerate(lines):
        rec = json.loads(line)
        rec.pop("hash")
        if n == 2:
            rec["fields"]["client"] = "bank"
        rec["prev"] = prev
        body = json.dumps(rec, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        rec["hash"] = prev = hashlib.sha256(prev.encode() + b"\n" + body.encode()).hexdigest()
        out.append(json.dumps(rec))
    path.write_text("\n".join(out) + "\n", encoding="utf-8")

    result = _verify(config)

    assert result.exit_code == 1
    assert "not keyed" in result.output and "Error: 1 of 1 audit logs failed" in result.output


def test_the_audit_key_is_neither_the_data_key_nor_a_fixed_value(config, tmp_path):
    hub = Hub.from_config(load(config))
    try:
        data_key = bytes.fromhex((tmp_path / "data" / "store.key").read_text().strip())
        assert hub.audit_key() not in (data_key, data_key.hex().encode(), b"")
        assert len(hub.audit_key()) == 32
    finally:
        hub.close()


def test_a_truncated_log_fails_verification(config, tmp_path):
    hub = Hub.from_config(load(config))
    for i in range(10):
        hub.audit("inbound.accepted", id=f"m-{i}")
    hub.close()
    path = _audit_file(tmp_path)
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join(lines[:-2]) + "\n", encoding="utf-8")

    result = _verify(config)

    assert result.exit_code == 1
    assert "ends before its last checkpoint" in result.output


def test_audit_verify_makes_no_key_and_says_where_it_looked(config, tmp_path):
    result = _verify(config)
    assert result.exit_code == 2
    assert result.output.startswith("Error: no data key") and "HUB_DATA_DIR" in result.output
    assert not (tmp_path / "data" / "store.key").exists()


def test_audit_verify_checks_the_ferry_inbox_log_under_the_same_key(config, tmp_path):
    from bdchub.bridge.ferry_inbox import FerryWatch

    block = {"ferry_inbox": {"path": str(tmp_path / "arrivals"), "key": "ferry.key"}}
    (tmp_path / "ferry.key").write_bytes(b"k" * 32)
    loaded = {**load(config), "bridge": block}
    hub = Hub.from_config(loaded)
    hub.audit("inbound.accepted", id="m-1")
    watch = FerryWatch.from_config(loaded, hub, tmp_path / "data")
    watch.audit.record("refused", "arrival:x", reason="test")
    watch.audit.close()
    hub.close()
    config.write_text(yaml.safe_dump({**yaml.safe_load(config.read_text()), "bridge": block}))

    result = _verify(config)

    assert result.exit_code == 0, result.output
    assert str(tmp_path / "data" / "ferry" / "audit.jsonl") in result.output


def test_an_audit_step_writes_what_the_route_refused_masked_to_the_hubs_log(
        tmp_path, monkeypatch):
    from .helpers import application, make_hub

    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv(AUDIT_KEY_ENV, raising=False)
    monkeypatch.setenv("HUB_DATA_DIR", str(tmp_path / "data"))
    hub = make_hub({"refuse": {"from": "application.submitted", "steps": [
        {"audit": {"event": "application.refused",
                   "fields": {"reason": "'classified_material'",
                              "materials": "materials[?classified].name",
                              "applicant": "applicants[0]"}}},
        {"filter": "`false`"}]}})
    try:
        body = application("S-9", materials=[
            {"name": "宗地图.dxf", "type": "spatial_data", "classified": True},
            {"name": "申请书", "type": "application_form"}])
        hub.send("application.submitted", body, business_no="S-9")
        hub.run_until_idle()
        [record] = [r for r in hub.audit_log().records() if r["event"] == "application.refused"]
    finally:
        hub.close()
    fields = record["fields"]
    assert (fields["route"], fields["business_no"], fields["reason"], fields["materials"]) == (
        "refuse", "S-9", "classified_material", ["宗地图.dxf"])
    # A person picked by mistake is kept masked, as everywhere the hub shows one.
    assert fields["applicant"]["id_number"] == "110105********1234"
    assert "110105199001011234" not in _audit_file(tmp_path).read_text(encoding="utf-8")
