"""The receiver cannot send: not in its code, not at run time."""

from __future__ import annotations

import ast
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import bdchub.bridge.diode as diode_pkg
from bdchub.bridge.diode.rxsocket import RecvOnlySocket, open_receive_socket

ROOT = Path(diode_pkg.__file__).resolve().parent
# Every module on the receiving path (what runs on the internal network).
RECEIVING_PATH = [ROOT / "receiver.py", ROOT / "rxsocket.py", ROOT / "staging.py",
                  ROOT / "inbound.py", ROOT / "manifest.py", ROOT / "fec.py", ROOT / "wire.py",
                  ROOT.parent / "policy.py", ROOT.parent.parent / "core" / "audit.py"]
SENDING = {"send", "sendto", "sendmsg", "sendall", "sendfile", "connect", "connect_ex"}


@pytest.mark.parametrize("module", RECEIVING_PATH, ids=lambda p: p.name)
def test_receiving_modules_contain_no_send_call(module):
    tree = ast.parse(module.read_text(encoding="utf-8"))
    offenders = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in SENDING:
            offenders.append(f"{module.name}:{node.lineno} .{node.attr}")
        if isinstance(node, ast.Name) and node.id in SENDING:
            offenders.append(f"{module.name}:{node.lineno} {node.id}")
    assert not offenders


def test_receiving_modules_do_not_import_the_sender():
    for module in RECEIVING_PATH:
        tree = ast.parse(module.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert "sender" not in node.module and "relay" not in node.module, module.name


def test_recv_only_socket_exposes_no_way_to_send():
    sock = open_receive_socket("127.0.0.1", 0)
    try:
        for name in SENDING | {"sock", "_sock", "socket"}:
            assert not hasattr(sock, name)
        assert set(RecvOnlySocket.__slots__) == {"__sock"}
    finally:
        sock.close()


def test_receiver_works_with_every_socket_send_disabled(tmp_path, monkeypatch, key_file):
    """Sender in a subprocess; in this process every send method raises."""
    from bdchub.bridge.diode.manifest import read_hmac_key
    from bdchub.bridge.diode.receiver import DiodeReceiver
    from bdchub.core.audit import AuditLog

    calls = []

    def forbidden(self, *a, **kw):  # noqa: ANN001, ANN002, ANN003
        calls.append(a)
        raise AssertionError("the receiver tried to send")

    for name in ("send", "sendto", "sendmsg", "sendall", "connect"):
        monkeypatch.setattr(socket.socket, name, forbidden)
    src = tmp_path / "x.pdf"
    src.write_bytes(b"%PDF-1.5\n" + bytes(range(256)) * 2000)
    sock = open_receive_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    receiver = DiodeReceiver(sock, tmp_path / "inbox", verifier=read_hmac_key(key_file),
                             staging=tmp_path / "staging", quarantine_dir=tmp_path / "q",
                             audit=AuditLog(tmp_path / "audit.jsonl"))
    t = threading.Thread(target=receiver.run, kwargs={"max_objects": 1, "timeout": 30})
    t.start()
    subprocess.run([sys.executable, "-m", "bdchub.bridge.cli.diode", "send", str(src),
                    "--to", f"127.0.0.1:{port}", "--key-file", str(key_file),
                    "--audit-log", str(tmp_path / "tx.jsonl"), "--rate", "50M"],
                   check=True, timeout=60, cwd=Path(diode_pkg.__file__).parents[2],
                   capture_output=True)
    t.join(40)
    sock.close()
    assert not calls
    assert (tmp_path / "inbox" / "x.pdf").read_bytes() == src.read_bytes()
