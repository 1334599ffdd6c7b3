"""``send_materials`` of the diode connector: an application's files from the
material store (named by their SHA-256) cross with a manifest that ties them
to the case, and only when their bytes are the ones the application declared."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from bdchub.bridge.diode.inbound import InboxWatcher
from bdchub.bridge.diode.materials import object_name
from bdchub.connectors import registry
from bdchub.core import config as config_mod
from bdchub.core.errors import ConfigError, PermanentError, RecoverableError

from .conftest import pdf_bytes

DXF = b"0\nSECTION\n2\nHEADER\n0\nENDSEC\n0\nEOF\n"


def _store(tmp_path: Path, *files: bytes) -> tuple[Path, list[str]]:
    store = tmp_path / "materials"
    store.mkdir(exist_ok=True)
    hashes = []
    for data in files:
        sha = hashlib.sha256(data).hexdigest()
        (store / sha).write_bytes(data)
        hashes.append(sha)
    return store, hashes


def _connector(rig, key_hex: str, store: Path):  # noqa: ANN001
    return registry.create("internal_gate", {
        "type": "diode", "host": "127.0.0.1", "port": rig.port, "key": key_hex,
        "rate": "80M", "heartbeat_interval": 0.1, "materials_dir": str(store)})


def _application(hashes: list[str], sizes: list[int]) -> dict:
    return {"business_no": "320684-2024-0601", "tenant": "320684", "unit_codes": [
        "320684413219GB00029F00010002"], "materials": [
        {"name": "房屋测绘报告", "type": "survey_report", "sha256": hashes[0], "size": sizes[0],
         "media_type": "application/pdf"},
        {"name": "宗地图.dxf", "type": "spatial_data", "sha256": hashes[1], "size": sizes[1],
         "media_type": "image/vnd.dxf"}]}


def test_materials_cross_with_a_manifest_naming_each_by_its_hash(rig, diode_key, tmp_path):
    pdf = pdf_bytes(300_000, seed=7)
    store, hashes = _store(tmp_path, pdf, DXF)
    run = rig.start_receiver(max_objects=3)
    with _connector(rig, diode_key.key.hex(), store) as conn:
        receipt = conn.call("send_materials", _application(hashes, [len(pdf), len(DXF)]))
    run.wait()

    got = {o.name: o for o in InboxWatcher(rig.inbox).poll()}
    manifest = got["320684-2024-0601-materials.json"].messages()
    assert manifest["kind"] == "spatial_materials"
    assert manifest["business_no"] == "320684-2024-0601"
    assert manifest["unit_codes"] == ["320684413219GB00029F00010002"]
    by_hash = {m["sha256"]: m for m in manifest["materials"]}
    assert set(by_hash) == set(hashes)
    # The PDF had no extension in its name: the media type gave it one.
    assert by_hash[hashes[0]]["object"] == "320684-2024-0601-01-房屋测绘报告.pdf"
    for sha, data in zip(hashes, (pdf, DXF), strict=True):
        assert got[by_hash[sha]["object"]].read_bytes() == data
    assert [m["sha256"] for m in receipt["materials"]] == hashes
    assert receipt["objects"] == 3 and receipt["manifest"]["name"].endswith("materials.json")
    assert all(m["ref"] for m in receipt["materials"])


def test_the_same_application_sent_again_is_the_same_objects_delivered_once(rig, diode_key,
                                                                             tmp_path):
    store, hashes = _store(tmp_path, pdf_bytes(2000, seed=3), DXF)
    app = _application(hashes, [2000, len(DXF)])
    run = rig.start_receiver(timeout=3)
    with _connector(rig, diode_key.key.hex(), store) as conn:
        first = conn.call("send_materials", app)
        again = conn.call("send_materials", app)
    run.wait()
    # A retry (after a crash, a replayed dead letter) makes the same bytes, which
    # the receiver recognises as delivered already.
    assert len(InboxWatcher(rig.inbox).poll()) == 3
    assert first["manifest"]["hash"] == again["manifest"]["hash"]
    assert first["manifest"]["ref"] != again["manifest"]["ref"]


def test_a_stored_file_that_is_not_the_declared_one_is_never_sent(rig, diode_key, tmp_path):
    store, hashes = _store(tmp_path, pdf_bytes(2000, seed=3), DXF)
    (store / hashes[1]).write_bytes(DXF.replace(b"EOF", b"EOX"))  # same size, other bytes
    run = rig.start_receiver(timeout=1.5)
    with _connector(rig, diode_key.key.hex(), store) as conn, \
            pytest.raises(PermanentError, match="SHA-256"):
        conn.call("send_materials", _application(hashes, [2000, len(DXF)]))
    run.wait()
    assert InboxWatcher(rig.inbox).poll() == []


def test_a_material_not_yet_in_the_store_is_worth_another_try(rig, diode_key, tmp_path):
    store, hashes = _store(tmp_path, pdf_bytes(2000, seed=3), DXF)
    (store / hashes[0]).unlink()
    with _connector(rig, diode_key.key.hex(), store) as conn, \
            pytest.raises(RecoverableError, match="material store"):
        conn.call("send_materials", _application(hashes, [2000, len(DXF)]))


def test_a_declared_size_that_differs_is_permanent(rig, diode_key, tmp_path):
    store, hashes = _store(tmp_path, pdf_bytes(2000, seed=3), DXF)
    with _connector(rig, diode_key.key.hex(), store) as conn, \
            pytest.raises(PermanentError, match="2001"):
        conn.call("send_materials", _application(hashes, [2001, len(DXF)]))


def test_material_names_never_become_paths():
    name = object_name("320684/2024", 3, "../../etc/\x00passwd", None)
    assert "/" not in name and "\x00" not in name and not name.startswith(".")
    assert name.startswith("320684_2024-03-")
    long = object_name("B1", 1, "测" * 200 + ".dwg", None)
    assert len(long.encode()) <= 255 and long.endswith(".dwg")


def test_hub_check_names_an_operation_the_diode_does_not_offer():
    text = ('tenant: "320684"\nconnectors:\n  gate: {type: diode, host: 127.0.0.1, port: 7000,\n'
            '    key: "' + "ab" * 16 + '"}\nroutes:\n  r:\n    from: a.b\n    steps:\n'
            '      - to: {connector: gate, operation: send_material}\n')
    with pytest.raises(ConfigError) as err:
        config_mod.check_text(text, "config.yaml", {})
    assert "send_materials" in str(err.value)
    config_mod.check_text(text.replace("send_material}", "send_materials}"), "config.yaml", {})


def test_the_key_may_be_given_inline_in_hex(rig, diode_key, tmp_path):
    run = rig.start_receiver(max_objects=1)
    conn = registry.create("gate", {"type": "diode", "host": "127.0.0.1", "port": rig.port,
                                    "key": diode_key.key.hex(), "rate": "80M"})
    with conn:
        conn.call("send", [{"business_no": "B1"}])
    run.wait()
    (obj,) = InboxWatcher(rig.inbox).poll()
    assert obj.messages() == [{"business_no": "B1"}]
