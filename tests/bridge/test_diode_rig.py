"""Kernel-enforced one-way rig: two network namespaces joined by a veth pair.

The receiver's namespace has no route back (a blackhole default route and a
/32 address, so not even a connected route): the kernel itself refuses any
datagram towards the sender. The sender has a static neighbour entry, so not
even ARP needs to come back. The test proves both halves: transfer works,
and a send from the receiver's side fails.

Only addresses from the benchmark range 198.18.0.0/15, inside namespaces
this test creates and deletes.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import bdchub.bridge.diode as diode_pkg

pytestmark = pytest.mark.root
CWD = Path(diode_pkg.__file__).parents[2]
TX_IP, RX_IP, PORT = "198.18.0.1", "198.18.0.2", 47999


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"diode rig cannot run under CI: {reason}")
    pytest.skip(f"DIODE RIG NOT RUN (kernel one-way proof missing): {reason}")


def _ip(*args: str, ns: str | None = None) -> str:
    cmd = (["ip", "netns", "exec", ns] if ns else []) + list(args)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    if out.returncode:
        raise RuntimeError(f"{' '.join(cmd)}: {out.stderr.strip()}")
    return out.stdout


@pytest.fixture
def namespaces():
    if os.geteuid() != 0:
        _unavailable("needs root")
    if shutil.which("ip") is None:
        _unavailable("the 'ip' command (iproute2) is missing")
    tag = secrets.token_hex(3)
    tx, rx = f"bdctx{tag}", f"bdcrx{tag}"
    vtx, vrx = f"vt{tag}", f"vr{tag}"
    created = []
    try:
        for ns in (tx, rx):
            subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True,
                           timeout=20)
            created.append(ns)
    except (subprocess.SubprocessError, OSError) as exc:
        for ns in created:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20)
        _unavailable(f"cannot create network namespaces: {exc}")
    try:
        _ip("ip", "link", "add", vtx, "type", "veth", "peer", "name", vrx)
        _ip("ip", "link", "set", vtx, "netns", tx)
        _ip("ip", "link", "set", vrx, "netns", rx)
        for ns, dev, addr in ((tx, vtx, TX_IP), (rx, vrx, RX_IP)):
            _ip("ip", "link", "set", "lo", "up", ns=ns)
            _ip("ip", "addr", "add", f"{addr}/32", "dev", dev, ns=ns)
            _ip("ip", "link", "set", dev, "up", ns=ns)
        mac = re.search(r"link/ether ([0-9a-f:]{17})", _ip("ip", "link", "show", vrx, ns=rx))
        assert mac, "no MAC on the receiver's veth"
        _ip("ip", "route", "add", f"{RX_IP}/32", "dev", vtx, ns=tx)
        _ip("ip", "neigh", "replace", RX_IP, "lladdr", mac.group(1), "dev", vtx,
            "nud", "permanent", ns=tx)
        # The one-way part: no way back from the receiver's namespace.
        _ip("ip", "route", "add", "blackhole", "default", ns=rx)
        for conf in ("all", "default", vrx):
            _ip("sysctl", "-qw", f"net.ipv4.conf.{conf}.rp_filter=0", ns=rx)
        yield tx, rx
    finally:
        for ns in (tx, rx):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20)


def _cli(ns: str, *args: str, **kw) -> subprocess.Popen:  # noqa: ANN003
    return subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-m",
                             "bdchub.bridge.cli.diode", *args], cwd=CWD, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "HUB_LANG": "en"}, **kw)


SEND_BACK = """
import errno, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    s.sendto(b"ack", (sys.argv[1], 47998))
except OSError as exc:
    print(errno.errorcode.get(exc.errno, exc.errno))
    sys.exit(3)
print("SENT")
"""


def test_transfer_works_and_the_receiver_side_cannot_send_back(namespaces, tmp_path,
                                                               key_file):
    tx, rx = namespaces
    src = tmp_path / "地籍调查表.pdf"
    src.write_bytes(b"%PDF-1.6\n" + os.urandom(2 << 20))
    receiver = _cli(rx, "receive", "--listen", f"{RX_IP}:{PORT}", "--inbox",
                    str(tmp_path / "inbox"), "--key-file", str(key_file), "--audit-log",
                    str(tmp_path / "rx.jsonl"), "--max-objects", "1", "--timeout", "40")
    try:
        assert RX_IP in receiver.stderr.readline()  # bound and listening
        sender = _cli(tx, "send", str(src), "--to", f"{RX_IP}:{PORT}", "--key-file",
                      str(key_file), "--audit-log", str(tmp_path / "tx.jsonl"),
                      "--rate", "200M")
        out, err = sender.communicate(timeout=60)
        assert sender.returncode == 0, err
        out, err = receiver.communicate(timeout=60)
    finally:
        receiver.kill()
    assert receiver.returncode == 0, err
    assert (tmp_path / "inbox" / src.name).read_bytes() == src.read_bytes()

    back = subprocess.run(["ip", "netns", "exec", rx, sys.executable, "-c", SEND_BACK, TX_IP],
                          capture_output=True, text=True, timeout=30)
    assert back.returncode == 3, f"the receiver's namespace could send: {back.stdout}"
    assert back.stdout.strip() in {"EINVAL", "ENETUNREACH", "EHOSTUNREACH", "EACCES", "EPERM"}

    # and the sender's side really is reachable one way only: it can send to the receiver
    fwd = subprocess.run(["ip", "netns", "exec", tx, sys.executable, "-c", SEND_BACK, RX_IP],
                         capture_output=True, text=True, timeout=30)
    assert fwd.stdout.strip() == "SENT"
