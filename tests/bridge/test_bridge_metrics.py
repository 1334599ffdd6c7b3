"""The bridge counts its crossings for Prometheus (bridge.metrics): diode objects and
bytes each way, blocks rebuilt from FEC parity, quarantined objects; ferry discs
packed, imported and refused."""

from __future__ import annotations

import json
import os
import shutil

from prometheus_client import REGISTRY

from bdchub.bridge.diode.relay import LinkModel
from bdchub.bridge.diode.settings import DiodeSettings
from bdchub.bridge.ferry.testing import FerryRig, patch_file


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_diode_objects_bytes_and_fec_repairs_are_counted_each_way(rig, make_file):
    before = {d: (value("bdchub_diode_objects_total", direction=d),
                  value("bdchub_diode_bytes_total", direction=d)) for d in ("sent", "received")}
    repairs = value("bdchub_diode_repairs_total")
    src = make_file("宗地图.pdf", 1 << 20, seed=5)
    run = rig.start_receiver(max_objects=1)
    rig.with_relay(LinkModel(loss=0.05, seed=11))  # symbols lost: parity makes them good
    rig.send_files([src], DiodeSettings(rate_bps=80e6, loss_rate=0.05))
    run.wait()
    assert (rig.inbox / src.name).exists()
    for direction in ("sent", "received"):
        objects, size = before[direction]
        assert value("bdchub_diode_objects_total", direction=direction) == objects + 1
        assert value("bdchub_diode_bytes_total", direction=direction) == size + (1 << 20)
    assert value("bdchub_diode_repairs_total") > repairs


def test_a_diode_object_the_policy_refuses_is_counted_as_quarantined(rig, tmp_path):
    quarantined = value("bdchub_diode_quarantined_total")
    received = value("bdchub_diode_objects_total", direction="received")
    src = tmp_path / "payload.pdf"
    src.write_bytes(b"MZ\x90\x00" + bytes(50_000))  # an executable dressed as PDF
    run = rig.start_receiver(max_objects=1)
    rig.send_files([src])
    run.wait()
    assert value("bdchub_diode_quarantined_total") == quarantined + 1
    assert value("bdchub_diode_objects_total", direction="received") == received


def test_ferry_discs_packed_imported_and_refused_are_counted(tmp_path):
    ferry = FerryRig(tmp_path)
    ferry.write("附件/宗地图.pdf", b"%PDF-1.7\n" + os.urandom(50_000))
    ferry.write("审核结果.json", json.dumps({"type": "review.result", "business_no": "B1"}))
    packed, imported, refused = (value("bdchub_ferry_discs_packed_total"),
                                 value("bdchub_ferry_discs_imported_total"),
                                 value("bdchub_ferry_discs_refused_total"))
    image = ferry.pack().discs[0].image
    assert value("bdchub_ferry_discs_packed_total") == packed + 1

    tampered = image.with_name("tampered.iso")
    shutil.copyfile(image, tampered)
    patch_file(tampered, "data/messages/审核结果.json", lambda b: b.replace(b"B1", b"B2"))
    assert not ferry.importer().import_images([tampered]).ok
    assert ferry.importer().import_images([image]).ok
    assert value("bdchub_ferry_discs_imported_total") == imported + 1
    assert value("bdchub_ferry_discs_refused_total") == refused + 1
    # Verifying a disc without importing it is no import.
    ferry.importer().verify_images([image])
    assert value("bdchub_ferry_discs_imported_total") == imported + 1


def test_hub_bridge_receive_serves_its_counts_with_metrics_listen(tmp_path, key_file):
    import subprocess
    import sys
    import time

    import requests

    from bdchub.demo.environment import free_port
    from tests.bridge.test_diode_cli import CWD, _cli, _free_port

    port, metrics_port = _free_port(), free_port()
    doc = tmp_path / "申请材料.pdf"
    doc.write_bytes(b"%PDF-1.4\n" + bytes(100_000))
    rx = subprocess.Popen([sys.executable, "-m", "bdchub.bridge.cli.diode", "receive",
                           "--listen", f"127.0.0.1:{port}", "--inbox", str(tmp_path / "inbox"),
                           "--key-file", str(key_file), "--audit-log", str(tmp_path / "rx.jsonl"),
                           "--metrics-listen", f"127.0.0.1:{metrics_port}",
                           "--max-objects", "2", "--timeout", "60"],
                          cwd=CWD, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env={"HUB_LANG": "en", "PATH": "/usr/bin:/bin"})
    try:
        assert "127.0.0.1" in rx.stderr.readline()  # bound and listening
        out = _cli("send", str(doc), "--to", f"127.0.0.1:{port}", "--key-file", str(key_file),
                   "--audit-log", str(tmp_path / "tx.jsonl"), "--rate", "100M")
        assert out.returncode == 0, out.stderr
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        deadline = time.monotonic() + 30
        while 'bdchub_diode_objects_total{direction="received"} 1.0' not in (
                text := requests.get(url, timeout=5).text):
            assert time.monotonic() < deadline, text[-2000:]
            time.sleep(0.1)
        assert f'bdchub_diode_bytes_total{{direction="received"}} {float(100_009)}' in text
    finally:
        rx.kill()
        rx.communicate(timeout=10)
