"""The list and show commands for scripts and people: ``hub dlq``, ``hub parked`` and
``hub trace`` with ``--json``, ids as unique prefixes, an ambiguous prefix refused
with its candidates (routes.cli), on the embedded store."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from click.testing import CliRunner

from bdchub.core.config import load
from bdchub.core.errors import RecoverableError
from bdchub.core.ids import derive_id
from bdchub.hub import cli as hub_cli
from bdchub.routes.runtime import Hub
from tests.routes.helpers import application, fake

PARENT = "0190d4f2-aaaa-7bbb-8ccc-000000000001"


def _config(tmp_path: Path) -> Path:
    config = {
        "tenant": "320684",
        "broker": {"url": f"sqla+sqlite:///{tmp_path / 'broker.db'}"},
        "store": {"url": f"sqlite:///{tmp_path / 'store.db'}"},
        "connectors": {"tax": {"type": "fake"}},
        "routes": {"tax_declaration": {
            "from": "application.submitted",
            "on_error": {"retry": {"attempts": 1}, "park_for": 600},
            "steps": [{"map": {"fields": {"ywh": "business_no"}, "merge": True}},
                      {"to": {"connector": "tax", "operation": "declare"}}]}},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    return path


def _hub(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(hub_cli, ["--lang", "en", *args])
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def _dead_letters(config: Path) -> list[str]:
    """Two dead letters of children of one message (as a split makes them): their ids
    share the parent's millisecond, so their first 13 characters are the same."""
    ids = [derive_id(PARENT, "child", n) for n in (1, 2)]
    assert ids[0][:14] == ids[1][:14]
    hub = Hub.from_config(load(config))
    for n, dl_id in enumerate(ids, 1):
        envelope = {"id": f"m-{n}", "type": "application.submitted", "tenant": "320684",
                    "business_no": f"P-{n}", "body": application(f"P-{n}")}
        hub.store.add_dead_letter(
            id=dl_id, message_id=f"m-{n}", origin_id=PARENT, route="tax_declaration",
            step="1:to", type="application.submitted", tenant="320684", business_no=f"P-{n}",
            reason="permanent", last_error="refused ID 110105199001011234",
            envelope=json.dumps(envelope, ensure_ascii=False), at=1_750_000_000.0 + n)
    hub.close()
    return ids


def test_dlq_list_shows_each_id_by_a_prefix_that_opens_it_alone(tmp_path):
    config = _config(tmp_path)
    ids = _dead_letters(config)
    code, out = _hub(["dlq", "list", "-c", str(config)])
    assert code == 0, out
    shown = [line.split()[0] for line in out.splitlines()[1:]]
    assert len(shown) == 2 and shown[0] != shown[1]
    for prefix, whole in zip(shown, ids, strict=True):
        assert whole.startswith(prefix) and len(prefix) >= 13
        code, opened = _hub(["dlq", "show", "-c", str(config), prefix])
        assert code == 0, opened
        assert f"id: {whole}" in opened


def test_an_ambiguous_dead_letter_prefix_is_refused_with_the_candidates(tmp_path):
    config = _config(tmp_path)
    ids = _dead_letters(config)
    common = ids[0][:13]
    for command in (["dlq", "show"], ["dlq", "replay"], ["dlq", "drop"]):
        code, out = _hub([*command, "-c", str(config), common])
        assert code == 2, (command, out)
        lines = out.splitlines()
        assert lines[0] == (f"Error: '{common}' is the start of the ids of 2 rows "
                            "(dead letter); give more of the id:")
        assert [line.split()[0] for line in lines[1:]] == ids
        assert "P-1" in lines[1] and "tax_declaration" in lines[1]
    hub = Hub.from_config(load(config))
    assert [r["status"] for r in hub.store.dead_letters()] == ["dead", "dead"]  # untouched
    hub.close()
    code, out = _hub(["dlq", "show", "-c", str(config), "ffffffff-0000"])
    assert code == 2 and out.strip() == "Error: no dead letter 'ffffffff-0000'"
    code, out = _hub(["dlq", "drop", "-c", str(config), ids[1]])
    assert code == 0
    code, out = _hub(["dlq", "drop", "-c", str(config), ids[1]])
    assert code == 1 and "was replayed or dropped already" in out


def test_dlq_list_and_show_json_are_whole_ids_and_masked(tmp_path):
    config = _config(tmp_path)
    ids = _dead_letters(config)
    code, out = _hub(["dlq", "list", "-c", str(config), "--json"])
    assert code == 0, out
    listed = json.loads(out)["dead_letters"]
    assert [d["id"] for d in listed] == ids
    assert set(listed[0]) == {"id", "message_id", "origin_id", "route", "step", "type",
                              "tenant", "business_no", "reason", "last_error", "status",
                              "replay_count", "created_at", "replayed_at"}
    assert listed[0]["last_error"] == "refused ID 110105********1234"
    assert listed[0]["created_at"] == 1_750_000_001.0
    code, out = _hub(["dlq", "show", "-c", str(config), ids[1][:20], "--json"])
    assert code == 0, out
    shown = json.loads(out)
    assert shown["id"] == ids[1] and shown["status"] == "dead"
    assert shown["envelope"]["body"]["applicants"][0]["id_number"] == "110105********1234"
    assert "110105199001011234" not in out
    code, out = _hub(["dlq", "list", "-c", str(config), "--route", "other", "--json"])
    assert code == 0 and json.loads(out) == {"dead_letters": []}


def _park(config: Path, *numbers: str) -> None:
    def down(op, payload, ctx):
        raise RecoverableError("down: 110105199001011234")

    hub = Hub.from_config(load(config), broker="memory://", connectors={"tax": fake("tax", down)})
    for no in numbers:
        hub.send("application.submitted", application(no))
    hub.run_until_idle()
    hub.close()


def test_parked_list_and_show_say_route_step_reason_error_and_when_due(tmp_path):
    config = _config(tmp_path)
    _park(config, "Q-1")
    code, out = _hub(["parked", "list", "-c", str(config)])
    assert code == 0, out
    header, row = out.splitlines()
    assert header.split()[:4] == ["id", "due", "route", "step"]
    assert "tax_declaration" in row and "1:to" in row and "Q-1" in row
    assert "recoverable" in row and "(in 6" in row  # due in about 600 s
    assert "110105********1234" in row and "110105199001011234" not in row
    prefix = row.split()[0]
    code, shown = _hub(["parked", "show", "-c", str(config), prefix])
    assert code == 0, shown
    assert "route: tax_declaration" in shown and "step: 1:to" in shown
    assert "park_count: 1" in shown and '"ywh": "Q-1"' in shown  # as it was at the step
    assert "张*" in shown and "110105199001011234" not in shown

    code, out = _hub(["parked", "list", "-c", str(config), "--json"])
    assert code == 0, out
    doc = json.loads(out)
    [parked] = doc["parked"]
    assert parked["id"].startswith(prefix) and parked["business_no"] == "Q-1"
    assert (parked["route"], parked["step"], parked["reason"], parked["park_count"]) == (
        "tax_declaration", "1:to", "recoverable", 1)
    assert 590 < parked["due_at"] - doc["at"] <= 600
    assert "envelope" not in parked and "110105199001011234" not in out
    code, out = _hub(["parked", "show", "-c", str(config), parked["id"], "--json"])
    shown = json.loads(out)
    assert shown["envelope"]["body"]["ywh"] == "Q-1" and shown["due_at"] == parked["due_at"]
    code, out = _hub(["parked", "list", "-c", str(config), "--route", "other"])
    assert code == 0 and out.strip() == "no parked messages"
    code, out = _hub(["parked", "show", "-c", str(config), "nope"])
    assert code == 2 and out.strip() == "Error: no parked message 'nope'"


def test_trace_json_has_the_hops_and_the_verification_records_masked(tmp_path):
    config = _config(tmp_path)
    _park(config, "T-1")
    code, out = _hub(["trace", "-c", str(config), "T-1", "--json"])
    assert code == 0, out
    doc = json.loads(out)
    assert doc["business_no"] == "T-1" and doc["verifications"] == []
    assert [(h["route"], h["step"], h["outcome"]) for h in doc["hops"]] == [
        ("tax_declaration", "0:map", "ok"), ("tax_declaration", "1:to", "parked")]
    assert {"started_at", "duration_ms", "message_id", "type", "detail"} <= set(doc["hops"][0])
    assert "110105199001011234" not in out
