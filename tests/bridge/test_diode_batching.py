"""Batched sending and receiving keep the datagram format; the hash follows
reception in block order."""

from __future__ import annotations

import errno
import hashlib
import socket

import pytest

from bdchub.bridge.diode import wire
from bdchub.bridge.diode.batch import DatagramBatch
from bdchub.bridge.diode.manifest import HmacKey
from bdchub.bridge.diode.rxsocket import BATCH_BUFFER, open_receive_socket
from bdchub.bridge.diode.sender import DiodeSender
from bdchub.bridge.diode.settings import DiodeSettings
from bdchub.bridge.diode.staging import COMPLETE, Staging

from .conftest import pdf_bytes

SIZE = 1472


def _fill(batch: DatagramBatch, count: int) -> list[bytes]:
    """``count`` distinct valid data datagrams written side by side."""
    sent = []
    for i in range(count):
        payload = bytes([i]) * (SIZE - wire.HEADER_SIZE)
        dgram = wire.encode(wire.DATA, 7, i + 1, payload, object_id=1, block=i, symbol=0)
        batch.buf[i * SIZE:(i + 1) * SIZE] = dgram
        sent.append(dgram)
    return sent


def _read_all(sock: socket.socket, expected: int) -> list[bytes]:
    got = []
    sock.settimeout(2.0)
    while len(got) < expected:
        got.append(sock.recv(65536))
    return got


@pytest.fixture
def plain_receiver():  # noqa: ANN201
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind(("127.0.0.1", 0))
    yield sock
    sock.close()


def test_a_batch_reaches_an_ordinary_socket_as_separate_whole_datagrams(plain_receiver):
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    batch = DatagramBatch(tx, plain_receiver.getsockname(), SIZE, ("127.0.0.1", 0))
    assert batch.capacity > 1
    sent = _fill(batch, batch.capacity)
    batch.send(batch.capacity)
    got = _read_all(plain_receiver, len(sent))
    tx.close()
    assert sorted(got) == sorted(sent)
    assert all(wire.decode(memoryview(d), len(d)) for d in got)


def test_a_kernel_that_refuses_segmentation_gets_one_datagram_per_send(plain_receiver,
                                                                       monkeypatch):
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    batch = DatagramBatch(tx, plain_receiver.getsockname(), SIZE, ("127.0.0.1", 0))

    class NoOffload:
        """A socket whose interface cannot segment (EIO, as Linux answers)."""

        def sendmsg(self, *args: object) -> int:
            raise OSError(errno.EIO, "no segmentation offload")

        def sendto(self, data: memoryview, addr: object) -> int:
            return tx.sendto(data, addr)

    batch.sock = NoOffload()  # type: ignore[assignment]
    sent = _fill(batch, 5)
    batch.send(5)
    batch.send(0)
    got = _read_all(plain_receiver, 5)
    tx.close()
    assert got == sent
    assert not batch.gso


def test_a_batching_receiver_reads_several_datagrams_at_once_each_intact():
    rx = open_receive_socket("127.0.0.1", 0)
    if not rx.enable_batches():
        rx.close()
        pytest.skip("no UDP receive offload on this kernel")
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    batch = DatagramBatch(tx, ("127.0.0.1", rx.getsockname()[1]), SIZE, ("127.0.0.1", 0))
    sent = _fill(batch, 8)
    batch.send(8)
    buf = bytearray(BATCH_BUFFER)
    rx.settimeout(2.0)
    got: list[bytes] = []
    while len(got) < 8:
        total, size = rx.recv_batch(buf)
        assert total > 0 and size == SIZE
        got += [bytes(buf[o:min(o + size, total)]) for o in range(0, total, size)]
    tx.close()
    rx.close()
    assert got == sent


def test_sender_output_is_byte_for_byte_what_one_send_per_datagram_gave(plain_receiver):
    """The same object, session and sequence numbers give the same datagrams
    whether they leave batched or one by one."""
    data = pdf_bytes(300_000, seed=3)
    settings = DiodeSettings(rate_bps=1e9, overhead=0.25, heartbeat_interval=60)
    key = HmacKey(b"k" * 32)
    runs = []
    for batched in (True, False):
        tx = DiodeSender(plain_receiver.getsockname(), key, settings)
        tx.session = 42
        with tx:
            if not batched:
                tx._batch.gso = False  # type: ignore[union-attr]
            obj = tx.prepare_bytes(data, "x.pdf")
            report = tx.send([obj])
        got = _read_all(plain_receiver, report.datagrams + 3)
        runs.append(sorted(d for d in got if d[5] == wire.DATA))
    assert runs[0] == runs[1]
    assert len(runs[0]) == obj.plan.total_symbols


def _staged(tmp_path, data: bytes, symbol_size: int = 1024):  # noqa: ANN202
    settings = DiodeSettings(datagram_size=symbol_size + wire.HEADER_SIZE, k_max=4,
                             overhead=0.5)
    tx = DiodeSender(("127.0.0.1", 9), HmacKey(b"k" * 32), settings)
    m = tx.prepare_bytes(data, "doc.pdf").manifest
    return Staging(tmp_path / "staging").open(m), m


def test_the_hash_follows_decoded_blocks_in_order_and_stops_at_a_gap(tmp_path):
    data = pdf_bytes(20_000, seed=5)
    obj, m = _staged(tmp_path, data)
    plan, S = m.plan, m.symbol_size
    padded = data.ljust(plan.padded_size, b"\0")
    buffer = bytearray(4096)

    def fill(block: int) -> int:
        off, k = plan.block_offset(block), plan.k_of(block)
        outcome = 0
        for j in range(k):
            outcome = obj.put(block, j, memoryview(padded[off + j * S:off + (j + 1) * S]))
        return outcome

    assert plan.blocks >= 3
    fill(1)  # block 0 missing: nothing may be hashed yet
    assert obj.catch_up(buffer) == 0
    fill(0)
    assert obj.catch_up(buffer) == plan.block_offset(2)
    for b in range(2, plan.blocks - 1):
        fill(b)
    assert fill(plan.blocks - 1) == COMPLETE
    obj.finish()
    assert obj._hash.hexdigest() == hashlib.sha256(data).hexdigest() == m.digest
