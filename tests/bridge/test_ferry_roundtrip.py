"""Disc ferry: what goes onto the discs comes out of the inbox byte for byte."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bdchub.bridge.ferry import sign, spec
from bdchub.bridge.ferry.image import DiscImage
from bdchub.bridge.ferry.ledger import Ledger
from bdchub.bridge.ferry.testing import FerryRig
from bdchub.core.errors import BridgeError

CERT = "苏(2017)海门市不动产权第0000183号"
MESSAGE = {"type": "review.result", "tenant": "320684", "business_no": "YWH2024000123",
           "body": {"result": "审核通过", "cert": CERT}}


@pytest.fixture(params=[sign.HMAC, sign.ED25519])
def ferry(request, tmp_path: Path) -> FerryRig:
    return FerryRig(tmp_path, scheme=request.param)


def _sources(ferry: FerryRig) -> dict[str, bytes]:
    files = {
        f"审核结果/{CERT}.json": json.dumps(MESSAGE, ensure_ascii=False).encode(),
        "审核结果/second.json": b'{"type": "review.result", "business_no": "B2"}',
        "附件/宗地图 (final).pdf": b"%PDF-1.7\n" + os.urandom(70_000),
        "附件/empty.dat": b"",
        "notes.json": b"[1, 2, 3]",  # JSON but not an object: travels as a plain file
        "a/b/c/d/e/f/g/h/i/deep.txt": b"nine folders deep",
    }
    for rel, data in files.items():
        ferry.write(rel, data)
    return files


def test_round_trip_delivers_byte_exact_files_and_parsed_messages(ferry: FerryRig):
    files = _sources(ferry)
    packed = ferry.pack()
    assert len(packed.discs) == 1

    report = ferry.importer().import_images([packed.discs[0].image])

    assert report.ok, report.batches[0].reason
    batch = report.batches[0]
    assert batch.status == "delivered" and batch.sender == ferry.sender and batch.sequence == 1
    delivered = {i.relpath: i for i in report.items}
    expected = {
        f"data/messages/审核结果/{CERT}.json", "data/messages/审核结果/second.json",
        "data/files/附件/宗地图 (final).pdf", "data/files/附件/empty.dat",
        "data/files/notes.json", "data/files/a/b/c/d/e/f/g/h/i/deep.txt",
    }
    assert set(delivered) == expected
    for rel, data in files.items():
        item = next(i for i in report.items if i.relpath.endswith("/" + rel))
        assert item.path.read_bytes() == data
        assert item.size == len(data)
        assert item.path.is_relative_to(ferry.inbox)
    cert = delivered[f"data/messages/审核结果/{CERT}.json"]
    assert cert.kind == "message" and cert.message == MESSAGE
    assert delivered["data/files/notes.json"].kind == "file"
    assert sorted(m.message["business_no"] for m in report.messages) == ["B2", "YWH2024000123"]


def test_chinese_names_are_readable_on_the_disc_itself(ferry: FerryRig):
    _sources(ferry)
    image = ferry.pack().discs[0].image
    with DiscImage(image) as disc:
        assert f"data/messages/审核结果/{CERT}.json" in disc.files
        assert "data/files/附件/宗地图 (final).pdf" in disc.files


def test_tiny_medium_splits_into_self_contained_discs(tmp_path: Path):
    ferry = FerryRig(tmp_path)
    files = {f"batch/result-{i:02d}.json": json.dumps({"n": i, "pad": "x" * 150_000}).encode()
             for i in range(12)}
    for rel, data in files.items():
        ferry.write(rel, data)

    packed = ferry.pack(medium_size=1_200_000, headroom=0.05)

    discs = packed.discs
    assert len(discs) >= 3
    assert [d.disc_index for d in discs] == list(range(1, len(discs) + 1))
    assert {d.disc_count for d in discs} == {len(discs)}
    assert [d.sequence for d in discs] == list(range(1, len(discs) + 1))
    assert {d.group_id for d in discs} == {packed.group_id}
    for d in discs:
        assert d.image.stat().st_size <= 1_200_000 * 0.95
    assert sum(d.items for d in discs) == len(files)

    # Each disc verifies on its own ...
    for d in discs:
        alone = ferry.importer().verify_images([d.image])
        assert alone.ok, alone.batches[0].reason
    # ... and out of order, disc by disc, the set arrives whole.
    first = ferry.importer().import_images([discs[-1].image])
    assert first.incomplete_sets == {packed.group_id: list(range(1, len(discs)))}
    rest = ferry.importer().import_images([d.image for d in discs[:-1]])
    assert rest.ok and not rest.incomplete_sets
    got = {i.relpath.removeprefix("data/messages/"): i.path.read_bytes()
           for r in (first, rest) for i in r.items}
    assert got == files


def test_an_item_larger_than_the_medium_is_refused_at_pack_time(tmp_path: Path):
    ferry = FerryRig(tmp_path)
    ferry.write("huge.bin", os.urandom(900_000))
    with pytest.raises(BridgeError, match="does not fit on one disc"):
        ferry.pack(medium_size=800_000)
    assert not list(ferry.out.glob("*.iso"))


def test_verify_changes_neither_ledger_nor_inbox(tmp_path: Path):
    ferry = FerryRig(tmp_path)
    _sources(ferry)
    image = ferry.pack().discs[0].image

    report = ferry.importer().verify_images([image])

    assert report.ok and report.batches[0].status == "verified"
    assert report.batches[0].bytes_verified > 70_000
    assert not ferry.ledger_path.exists()
    assert ferry.inbox_entries() == []
    # verifying twice is fine; importing afterwards still works
    assert ferry.importer().verify_images([image]).ok
    assert ferry.importer().import_images([image]).ok


def test_sequence_numbers_persist_across_pack_runs(tmp_path: Path):
    ferry = FerryRig(tmp_path)
    ferry.write("r.json", "{}")
    seqs = [ferry.pack(out=tmp_path / f"out{i}").discs[0].sequence for i in range(3)]
    assert seqs == [1, 2, 3]
    assert ferry.sequence.last(ferry.sender) == 3


def test_every_step_is_in_the_audit_chain(tmp_path: Path):
    ferry = FerryRig(tmp_path)
    ferry.write("r.json", "{}")
    image = ferry.pack().discs[0].image
    ferry.importer().import_images([image])
    ferry.importer().import_images([image])  # replay

    events = [r["event"] for r in ferry.audit.records()]
    assert events == ["packed", "imported", "verified", "delivered",
                      "imported", "refused", "quarantined"]
    assert ferry.audit.verify() == []
    delivered = ferry.audit.records()[3]
    assert delivered["fields"]["sequence"] == 1 and delivered["fields"]["items"] == 1


def test_ledger_records_the_delivery(tmp_path: Path):
    ferry = FerryRig(tmp_path)
    ferry.write("r.json", "{}")
    packed = ferry.pack()
    ferry.importer().import_images([packed.discs[0].image])
    ledger = Ledger(ferry.ledger_path, readonly=True)
    try:
        assert ledger.sequences(ferry.sender) == [1]
        assert ledger.group(packed.group_id) == ({1}, 1)
    finally:
        ledger.close()


def test_images_without_udf_round_trip_too(tmp_path: Path):
    ferry = FerryRig(tmp_path)
    ferry.write("结果.json", '{"ok": true}')
    image = ferry.pack(udf=False).discs[0].image
    report = ferry.importer().import_images([image])
    assert report.ok and report.messages[0].message == {"ok": True}


def test_bag_on_the_disc_is_a_valid_rfc8493_bag(tmp_path: Path):
    import bagit

    from bdchub.bridge.ferry.testing import unpack

    ferry = FerryRig(tmp_path)
    ferry.write("结果.json", '{"ok": true}')
    bag_dir = unpack(ferry.pack().discs[0].image, tmp_path / "unpacked")
    bag = bagit.Bag(str(bag_dir))
    bag.validate()
    assert bag.version_info == (1, 0)
    assert bag.info[spec.F_COUNT] == "1 of 1"
    assert bag.info[spec.F_SENDER] == ferry.sender


def test_pack_refuses_symlinks_and_names_that_would_collide(tmp_path: Path):
    ferry = FerryRig(tmp_path)
    ferry.write("a/Result.json", "{}")
    (ferry.src / "a/link.json").symlink_to(ferry.src / "a/Result.json")
    with pytest.raises(BridgeError, match="only regular files"):
        ferry.pack()
    (ferry.src / "a/link.json").unlink()
    other = tmp_path / "other"
    (other / "a").mkdir(parents=True)
    (other / "a/result.JSON").write_text("{}")
    with pytest.raises(BridgeError, match="same name on the disc"):
        ferry.pack(ferry.src, other)
    assert ferry.sequence.last(ferry.sender) == 0  # nothing numbered, nothing written
    assert not ferry.out.exists() or not list(ferry.out.glob("*.iso"))


def test_pack_refuses_names_the_importer_would_refuse(tmp_path: Path):
    ferry = FerryRig(tmp_path)
    ferry.write("con.txt", "x")
    ferry.write("ok.json", "{}")
    with pytest.raises(BridgeError, match="reserved device name"):
        ferry.pack()
