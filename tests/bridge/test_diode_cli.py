"""The ``bridge`` command group: send/receive round trip and audit verify."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

import bdchub.bridge.diode as diode_pkg
from bdchub.bridge.cli.diode import bridge_group, main
from bdchub.core.audit import AuditLog

CWD = Path(diode_pkg.__file__).parents[2]


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bdchub.bridge.cli.diode", *args], cwd=CWD,
                          capture_output=True, text=True, timeout=timeout,
                          env={"HUB_LANG": "en", "PATH": "/usr/bin:/bin"})


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_send_and_receive_through_the_cli(tmp_path, key_file):
    port = _free_port()
    doc = tmp_path / "申请材料.pdf"
    doc.write_bytes(b"%PDF-1.4\n" + bytes(300_000))
    batch = tmp_path / "batch.json"
    batch.write_text(json.dumps([{"type": "application.submitted"}]))
    rx = subprocess.Popen([sys.executable, "-m", "bdchub.bridge.cli.diode", "receive", "--listen",
                           f"127.0.0.1:{port}", "--inbox", str(tmp_path / "inbox"),
                           "--key-file", str(key_file), "--audit-log",
                           str(tmp_path / "rx.jsonl"), "--max-objects", "2", "--timeout", "30"],
                          cwd=CWD, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env={"HUB_LANG": "en", "PATH": "/usr/bin:/bin"})
    try:
        assert "127.0.0.1" in rx.stderr.readline()  # bound and listening
        out = _cli("send", str(doc), "--to", f"127.0.0.1:{port}", "--key-file", str(key_file),
                   "--audit-log", str(tmp_path / "tx.jsonl"), "--rate", "100M")
        assert out.returncode == 0, out.stderr
        out = _cli("send", str(batch), "--batch", "--to", f"127.0.0.1:{port}", "--key-file",
                   str(key_file), "--audit-log", str(tmp_path / "tx.jsonl"))
        assert out.returncode == 0, out.stderr
        stdout, stderr = rx.communicate(timeout=40)
    finally:
        rx.kill()
    assert rx.returncode == 0, stderr
    assert "delivered 2" in stdout
    assert (tmp_path / "inbox" / doc.name).read_bytes() == doc.read_bytes()
    assert json.loads((tmp_path / "inbox" / "batch.json").read_text())[0]["type"]
    for log in ("rx.jsonl", "tx.jsonl"):
        assert _cli("audit", "verify", "--log", str(tmp_path / log)).returncode == 0


def test_audit_verify_names_the_first_tampered_line(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")
    for i in range(5):
        log.record("delivered", f"s/{i}", name=f"f{i}.pdf")
    ok = _cli("audit", "verify", "--log", str(log.path))
    assert ok.returncode == 0 and "5 records" in ok.stdout

    lines = log.path.read_text().splitlines()
    rec = json.loads(lines[2])
    rec["fields"]["name"] = "evil.pdf"
    lines[2] = json.dumps(rec, separators=(",", ":"), sort_keys=True)
    log.path.write_text("\n".join(lines) + "\n")
    bad = _cli("audit", "verify", "--log", str(log.path))
    assert bad.returncode == 1
    assert "line 3" in bad.stderr and "Error:" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_audit_verify_reports_a_deleted_line(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")
    for i in range(4):
        log.record("sent", f"s/{i}")
    lines = log.path.read_text().splitlines()
    log.path.write_text("\n".join(lines[:1] + lines[2:]) + "\n")
    assert main(["audit", "verify", "--log", str(log.path)]) == 1


def test_errors_surface_as_hub_errors_for_the_hub_cli(tmp_path):
    from bdchub.core.errors import HubError

    result = CliRunner().invoke(bridge_group, ["send", str(tmp_path / "x"), "--to", "bad"])
    assert isinstance(result.exception, HubError)
    result = CliRunner().invoke(bridge_group, ["receive", "--listen", "127.0.0.1:1",
                                               "--inbox", str(tmp_path)])
    assert isinstance(result.exception, HubError)  # no key given


def test_keygen_writes_a_usable_private_key(tmp_path):
    assert main(["keygen", "--out", str(tmp_path / "k")]) == 0
    assert len(bytes.fromhex((tmp_path / "k").read_text().strip())) == 32
    assert (tmp_path / "k").stat().st_mode & 0o077 == 0
    assert main(["keygen", "--out", str(tmp_path / "k")]) != 0  # never overwrites
    assert main(["keygen", "--ed25519", "--out", str(tmp_path / "ed")]) == 0
    assert (tmp_path / "ed.pub").exists()
