"""Disc ferry: replays are refused, expiry is enforced, gaps and late discs are reported."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from bdchub.bridge.ferry import spec
from bdchub.bridge.ferry.ledger import Ledger, ranges
from bdchub.bridge.ferry.sequence import SequenceFile
from bdchub.bridge.ferry.testing import FerryRig
from bdchub.core.errors import BridgeError


@pytest.fixture
def ferry(tmp_path: Path) -> FerryRig:
    ferry = FerryRig(tmp_path)
    ferry.write("result.json", '{"type": "review.result"}')
    return ferry


def _pack_n(ferry: FerryRig, n: int) -> list[Path]:
    return [ferry.pack(out=ferry.root / f"out{i}").discs[0].image for i in range(n)]


def test_the_same_disc_imported_twice_is_refused_as_a_replay(ferry):
    image = ferry.pack().discs[0].image
    assert ferry.importer().import_images([image]).ok

    again = ferry.importer().import_images([image]).batches[0]

    assert again.status == "refused" and again.error == "ReplayError"
    assert "already imported" in again.reason
    assert (again.quarantine / "reason.json").exists()
    assert len(ferry.inbox_entries()) == 1


def test_a_copy_of_a_disc_in_the_same_run_is_a_replay(ferry):
    image = ferry.pack().discs[0].image
    copy = image.with_name("copy.iso")
    shutil.copyfile(image, copy)

    report = ferry.importer().import_images([image, copy])

    assert [b.status for b in report.batches] == ["delivered", "refused"]
    assert report.batches[1].error == "ReplayError"


def test_replay_costs_no_payload_extraction(ferry):
    ferry.write("big.bin", b"\0" * 300_000)
    image = ferry.pack().discs[0].image
    ferry.importer().import_images([image])
    again = ferry.importer().import_images([image]).batches[0]
    assert again.bytes_verified == 0
    assert not list(again.quarantine.rglob("big.bin"))


def test_verify_reports_a_replay_without_touching_the_ledger(ferry):
    image = ferry.pack().discs[0].image
    ferry.importer().import_images([image])
    before = ferry.ledger_path.read_bytes()
    report = ferry.importer().verify_images([image])
    assert report.batches[0].error == "ReplayError"
    assert ferry.ledger_path.read_bytes() == before


def test_expired_batch_is_refused_as_expired_with_its_expiry_not_as_a_replay(ferry):
    image = ferry.pack(expires=timedelta(days=7)).discs[0].image
    later = spec.utc_now() + timedelta(days=7, seconds=1)

    batch = ferry.importer(now=lambda: later).import_images([image]).batches[0]

    assert batch.status == "refused" and batch.error == "ExpiredError"
    assert f"expired at {batch.expires}" in batch.reason and "replay" not in batch.reason
    [refused] = [r for r in ferry.audit.records() if r["event"] == "refused"]
    assert (refused["fields"]["error"], refused["fields"]["expires"]) == (
        "ExpiredError", batch.expires)
    reason = json.loads((batch.quarantine / "reason.json").read_text(encoding="utf-8"))
    assert (reason["error"], reason["expires"]) == ("ExpiredError", batch.expires)
    assert ferry.inbox_entries() == []
    # and an expired disc is not consumed: the ledger stays empty
    assert Ledger(ferry.ledger_path).sequences(ferry.sender) == []


def test_batch_created_in_the_future_is_refused(ferry):
    ahead = spec.utc_now() + timedelta(days=2)
    image = ferry.pack(now=lambda: ahead).discs[0].image
    batch = ferry.importer().import_images([image]).batches[0]
    assert batch.error == "IntegrityError_" and "in the future" in batch.reason


def test_gaps_are_allowed_reported_and_closed_by_late_discs(ferry):
    one, two, three, four = _pack_n(ferry, 4)

    first = ferry.importer().import_images([one, four])
    assert first.ok
    assert first.batches[1].notes == ["gap: sequences 2-3 not received yet"]
    assert first.gaps == {ferry.sender: [2, 3]}

    late = ferry.importer().import_images([three])
    assert late.ok
    assert late.batches[0].notes == ["out of order: sequence 3 arrives after 4"]
    assert late.gaps == {ferry.sender: [2]}

    last = ferry.importer().import_images([two])
    assert last.ok and last.gaps == {}
    assert Ledger(ferry.ledger_path).sequences(ferry.sender) == [1, 2, 3, 4]


def test_failed_pack_burns_its_numbers_and_never_reuses_them(ferry):
    with pytest.raises(BridgeError):
        ferry.pack(medium_size=1000)  # too small for even an empty disc
    # planning fails before numbers are taken; a later failure would leave a gap
    assert ferry.sequence.last(ferry.sender) == 0
    ferry.sequence.allocate(ferry.sender, 2)  # numbers taken by a pack that then died
    image = ferry.pack().discs[0].image
    report = ferry.importer().import_images([image])
    assert report.batches[0].sequence == 3


def test_sequence_file_is_per_sender_and_monotonic(tmp_path):
    seq = SequenceFile(tmp_path / "s.json")
    assert seq.allocate("a", 3) == [1, 2, 3]
    assert seq.allocate("b") == [1]
    assert SequenceFile(tmp_path / "s.json").allocate("a") == [4]


def test_damaged_sequence_file_stops_packing(tmp_path):
    path = tmp_path / "s.json"
    path.write_text("{not json")
    with pytest.raises(BridgeError, match="damaged"):
        SequenceFile(path).allocate("a")


def test_crash_between_delivery_and_ledger_record_redelivers_once(ferry, monkeypatch):
    image = ferry.pack().discs[0].image

    def crash(*_a, **_k):
        raise OSError("power cut")

    monkeypatch.setattr(Ledger, "record", crash)
    crashed = ferry.importer().import_images([image]).batches[0]
    assert crashed.status == "failed"
    assert len(ferry.inbox_entries()) == 1  # delivered, but not recorded
    monkeypatch.undo()

    again = ferry.importer().import_images([image]).batches[0]

    assert again.status == "delivered"
    assert "already in the inbox" in again.notes[0]
    assert len(ferry.inbox_entries()) == 1
    assert Ledger(ferry.ledger_path).sequences(ferry.sender) == [1]
    assert ferry.importer().import_images([image]).batches[0].error == "ReplayError"


def test_ranges_compress_sequence_lists():
    assert ranges([7, 3, 5, 6, 9]) == "3, 5-7, 9"
    assert ranges([]) == ""
