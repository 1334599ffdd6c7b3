"""``type: diode`` connector: config schema, sending files and batches."""

from __future__ import annotations

import jsonschema
import pytest

from bdchub.connectors import registry
from bdchub.core.errors import PermanentError


def _config(rig, key_file, **extra):
    return {"type": "diode", "host": "127.0.0.1", "port": rig.port,
            "key_file": str(key_file), "rate": "80M", "heartbeat_interval": 0.1, **extra}


def test_schema_accepts_a_good_block_and_refuses_bad_ones(rig, key_file):
    schema = registry.schema_for("diode")
    jsonschema.validate({"type": "diode", "host": "10.0.0.2", "port": 9000,
                         "key_file": "/etc/bdc/diode.key", "rate": "1G", "loss": 0.05}, schema)
    for bad in ({"type": "diode", "host": "h", "port": 9000},  # no key
                {"type": "diode", "host": "h", "port": 0, "key_file": "k"},
                {"type": "diode", "host": "h", "port": 1, "key_file": "k", "loss": 0.7},
                {"type": "diode", "host": "h", "port": 1, "key_file": "k", "colour": "red"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)


def test_call_send_carries_a_file_and_a_batch_across(rig, key_file, make_file):
    from bdchub.bridge.diode.inbound import InboxWatcher

    run = rig.start_receiver(max_objects=2)
    conn = registry.create("to-internal", _config(rig, key_file))
    src = make_file("界址点.pdf", 400_000)
    with conn:
        receipt = conn.call("send", str(src))
        assert receipt["name"] == "界址点.pdf" and receipt["size"] == 400_000
        batch = [{"type": "progress.updated", "business_no": "YWH1"}]
        conn.call("send", batch)
        assert conn.health().up
    run.wait()
    got = {o.kind: o for o in InboxWatcher(rig.inbox).poll()}
    assert got["file"].read_bytes() == src.read_bytes()
    assert got["batch"].messages() == batch
    assert run.receiver.sessions  # heartbeats and data arrived in one session


def test_idle_connector_keeps_the_receiver_informed_with_heartbeats(rig, key_file):
    import time

    run = rig.start_receiver(timeout=3)
    conn = registry.create("to-internal", _config(rig, key_file))
    conn.open()
    try:
        time.sleep(0.6)
    finally:
        conn.close()
    run.wait()
    (session,) = run.receiver.sessions.values()
    assert session.received >= 3 and session.ended


def test_bad_payloads_and_operations_are_permanent_errors(rig, key_file, tmp_path):
    conn = registry.create("to-internal", _config(rig, key_file))
    with conn:
        with pytest.raises(PermanentError):
            conn.call("receive", {})
        with pytest.raises(PermanentError):
            conn.call("send", 42)
        with pytest.raises(PermanentError):
            conn.call("send", str(tmp_path / "missing.pdf"))
