"""End-to-end transfers over loopback through a lossy relay.

Sender -> LossyRelay (seeded loss, bursts, duplicates, reordering, corruption)
-> receiver -> policy -> inbox. Objects are small (1-4 MiB) and rates modest
so the suite stays fast; the 64 MiB x 50 runs live in bench/bridge_diode.py.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import pytest

from bdchub.bridge.diode import fec, wire
from bdchub.bridge.diode.inbound import InboxWatcher
from bdchub.bridge.diode.manifest import HmacKey
from bdchub.bridge.diode.relay import LinkModel
from bdchub.bridge.diode.settings import DiodeSettings

FEC_5 = DiodeSettings(rate_bps=80e6, loss_rate=0.05)


def _assert_delivered(rig, *sources: Path) -> None:
    for src in sources:
        got = rig.inbox / src.name
        assert got.exists(), f"{src.name} not delivered; audit: {rig.audit.records()[-3:]}"
        assert got.read_bytes() == src.read_bytes()


@pytest.mark.parametrize("model", [
    pytest.param(LinkModel(loss=0.05, seed=11), id="5pct-random"),
    pytest.param(LinkModel(burst_loss=0.02, burst_length=8, seed=12), id="2pct-bursty"),
    pytest.param(LinkModel(loss=0.02, duplicate=0.05, reorder=0.05, seed=13),
                 id="dup-reorder"),
])
def test_transfer_is_byte_exact_over_a_lossy_link(rig, tmp_path, make_file, model):
    src = make_file("宗地图.pdf", 3 << 20, seed=model.seed)
    run = rig.start_receiver(max_objects=1)
    rig.with_relay(model)
    rig.send_files([src], FEC_5)
    run.wait()
    _assert_delivered(rig, src)
    assert rig.relay.stats.dropped > 0 or model.loss == 0
    events = [r["event"] for r in rig.audit.records()]
    for event in ("sent", "announced", "received", "verified", "filtered", "delivered"):
        assert event in events


def test_several_objects_with_repeat_passes(rig, tmp_path, make_file):
    files = [make_file(f"f{i}.pdf", size, seed=i)
             for i, size in enumerate([1 << 20, 200_000, 2 << 20, 1500], start=1)]
    run = rig.start_receiver(max_objects=len(files))
    rig.with_relay(LinkModel(loss=0.08, seed=21))
    rig.send_files(files, DiodeSettings(rate_bps=80e6, loss_rate=0.02, passes=2))
    run.wait()
    _assert_delivered(rig, *files)
    # the second pass re-sends everything, but each object is delivered once
    assert len(rig.events("delivered")) == len(files)


def test_corrupted_datagrams_are_dropped_and_the_object_still_arrives_intact(rig, tmp_path, make_file):
    src = make_file("plan.pdf", 2 << 20)
    run = rig.start_receiver(max_objects=1)
    relay = rig.with_relay(LinkModel(corrupt=0.05, seed=31))
    rig.send_files([src], FEC_5)
    run.wait()
    _assert_delivered(rig, src)
    assert relay.stats.corrupted > 50
    # Every corrupted datagram the receiver read was refused as malformed. Under
    # load the object can be complete (FEC) before the last datagrams are read:
    # those few the receiver never saw, corrupted or not.
    unread = relay.stats.forwarded - run.receiver.stats.datagrams
    assert relay.stats.corrupted - unread <= run.receiver.stats.malformed <= relay.stats.corrupted


def _forge(dgram: bytes) -> bytes:
    """An attacker who rewrites symbol 0 of block 0 and fixes the CRC."""
    kind, block, symbol = dgram[5], dgram[28:32], dgram[32:34]
    if kind != wire.DATA or block != b"\0\0\0\0" or symbol != b"\0\0":
        return dgram
    forged = bytearray(dgram)
    forged[wire.HEADER_SIZE + 100] ^= 0xFF
    crc = zlib.crc32(forged[wire.HEADER_SIZE:], zlib.crc32(forged[:36]))
    forged[36:40] = crc.to_bytes(4, "big")
    return bytes(forged)


def test_forged_symbol_with_valid_crc_is_caught_by_the_hash_and_never_delivered(rig, tmp_path, make_file):
    src = make_file("forged.pdf", 1 << 20)
    run = rig.start_receiver(idle_timeout=1.0, timeout=20)
    rig.relay = None
    from bdchub.bridge.diode.relay import LossyRelay

    rig.relay = LossyRelay(("127.0.0.1", rig.port), LinkModel(), tamper=_forge).start()
    rig.send_files([src], DiodeSettings(rate_bps=80e6, passes=2))
    run.wait()
    assert not (rig.inbox / src.name).exists()
    assert not rig.events("delivered") and not rig.events("verified")
    rejected = rig.events("rejected")
    assert rejected and "does not match" in rejected[0]["fields"]["reason"]
    assert run.receiver.stats.delivered == 0


def test_object_cut_off_midway_is_never_reported_complete(rig, tmp_path, make_file):
    src = make_file("cut.pdf", 2 << 20)
    run = rig.start_receiver(idle_timeout=1.0, timeout=20)
    settings = DiodeSettings(rate_bps=80e6)
    plan = fec.plan_object(src.stat().st_size, settings.symbol_size,
                           loss=settings.loss_rate, target=settings.target_failure)
    total = plan.total_symbols  # data datagrams; manifests and heartbeats come on top
    # lose most of the data, but let the closing heartbeats through
    rig.with_relay(LinkModel(), gate=lambda i: not (total // 3 < i < total))
    rig.send_files([src])
    run.wait()
    assert not (rig.inbox / src.name).exists()
    assert not rig.events("delivered") and not rig.events("received")
    incomplete = rig.events("incomplete")
    assert incomplete and incomplete[0]["fields"]["missing"]["blocks"] > 0
    status = run.receiver.status()
    (info,) = status["in_progress"].values()
    assert info["name"] == "cut.pdf" and 0 < info["progress"] < 1
    staged = list((rig.staging / "objects").iterdir())
    assert len(staged) == 1 and (staged[0] / "manifest.json").exists()


def test_restarted_receiver_resumes_a_half_received_object(rig, tmp_path, make_file):
    src = make_file("resume.pdf", 2 << 20)
    first = rig.start_receiver(idle_timeout=0.8, timeout=20)
    port = rig.port
    # Run 1: only the first 45 % of datagrams get through, then the receiver stops.
    gate_first = [True]
    rig.with_relay(LinkModel(), gate=lambda i: gate_first[0] and i < 900)
    rig.send_files([src])
    first.wait()
    assert not (rig.inbox / src.name).exists()
    rig.relay.stop()

    # Run 2: a new receiver on the same staging; a new sender session sends the
    # same file, but the first 40 % of its datagrams are lost. Neither run alone
    # has enough symbols: only the resumed staging plus run 2 completes it.
    rig.port = port
    second = rig.start_receiver(max_objects=1, timeout=20)
    rig.with_relay(LinkModel(), gate=lambda i: i > 800)
    rig.send_files([src])
    second.wait()
    _assert_delivered(rig, src)
    assert rig.events("resumed")
    own = second.receiver.stats.datagrams
    source_symbols = -(-src.stat().st_size // (1472 - 40))
    assert own < source_symbols, "run 2 could have completed without the staged symbols"


def test_manifest_signed_with_another_key_is_refused(rig, tmp_path, make_file):
    src = make_file("evil.pdf", 300_000)
    run = rig.start_receiver(idle_timeout=0.8, timeout=20)
    rig.send_files([src], signer=HmacKey(b"k" * 32))
    run.wait()
    assert not (rig.inbox / src.name).exists()
    assert not list((rig.staging / "objects").iterdir())  # nothing allocated for it
    assert run.receiver.stats.bad_manifests > 0
    assert "signature" in rig.events("rejected")[0]["fields"]["reason"]


def test_policy_refusal_goes_to_quarantine_with_a_reason(rig, tmp_path, make_file):
    src = tmp_path / "payload.pdf"
    src.write_bytes(b"MZ\x90\x00" + bytes(50_000))  # an executable dressed as PDF
    run = rig.start_receiver(max_objects=1)
    rig.send_files([src])
    run.wait()
    assert not (rig.inbox / src.name).exists()
    reasons = list(rig.quarantine.glob("*.reason.json"))
    assert len(reasons) == 1
    assert json.loads(reasons[0].read_text())["reason"]
    assert rig.events("quarantined") and rig.events("filtered")[0]["fields"]["ok"] is False


def test_resent_object_is_not_delivered_twice(rig, tmp_path, make_file):
    src = make_file("once.pdf", 200_000)
    run = rig.start_receiver(idle_timeout=1.0, timeout=20)
    rig.send_files([src])
    rig.send_files([src])  # new session, same object: a replay or a retry
    run.wait()
    assert len(rig.events("delivered")) == 1
    assert rig.events("duplicate")


def test_message_batch_arrives_and_is_yielded_by_the_inbox_watcher(rig):
    batch = [{"type": "application.submitted", "business_no": "YWH2024000001",
              "body": {"qlrmc": "张三"}}]
    run = rig.start_receiver(max_objects=1)
    with rig.sender() as tx:
        tx.send([tx.prepare_bytes(json.dumps(batch, ensure_ascii=False).encode(),
                                  "batch-1.json")])
    run.wait()
    watcher = InboxWatcher(rig.inbox)
    got = []
    for obj in watcher.watch(max_items=1, timeout=5):
        got.append((obj.kind, obj.messages(), obj.id))
    assert len(got) == 1 and got[0][:2] == ("batch", batch)
    assert got[0][2].endswith("/1")
    assert watcher.poll() == []  # acknowledged after the consumer moved on


def test_unacknowledged_inbox_object_is_yielded_again(tmp_path):
    from bdchub.bridge.diode.inbound import deliver

    src = tmp_path / "a.pdf"
    src.write_bytes(b"%PDF-1.4 x")
    deliver(src, tmp_path / "inbox", "a.pdf", {"ref": "s/1", "name": "a.pdf"}, "t")
    watcher = InboxWatcher(tmp_path / "inbox")
    gen = watcher.watch(timeout=1)
    first = next(gen)
    gen.close()  # consumer died before finishing
    assert [o.name for o in watcher.poll()] == [first.name]
    with pytest.raises(RuntimeError):
        watcher.run(lambda obj: (_ for _ in ()).throw(RuntimeError("broker down")), timeout=1)
    assert watcher.poll(), "a failed handler must leave the object in the inbox"
    assert watcher.run(lambda obj: None, max_items=1) == 1
    assert watcher.poll() == []


def test_sender_that_goes_quiet_midway_is_reported_and_nothing_delivered(rig, make_file):
    from bdchub.bridge.diode.receiver import ReceiverOptions

    src = make_file("quiet.pdf", 1 << 20)
    run = rig.start_receiver(timeout=4, options=ReceiverOptions(silence=0.5))
    rig.with_relay(LinkModel(), gate=lambda i: i < 300)  # then the cable is pulled
    tx = rig.sender()
    tx.open()
    obj = tx.prepare_file(src)
    tx.send([obj])
    obj.close()
    tx.close(end_session=False)  # crashed: no goodbye heartbeats
    run.wait()
    assert not (rig.inbox / src.name).exists()
    assert rig.events("sender_silent")
    assert rig.events("incomplete")[0]["fields"]["missing"]["blocks"] > 0


def test_forged_heartbeats_from_an_unverified_session_write_no_reports(rig):
    import socket

    run = rig.start_receiver(timeout=1.5)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for seq in range(1, 50):
            s.sendto(wire.encode(wire.HEARTBEAT, 0xBAD, seq, b'{"done": 1000000}'),
                     ("127.0.0.1", rig.port))
    run.wait()
    assert run.receiver.sessions[0xBAD].received == 49
    assert rig.audit.records() == []
