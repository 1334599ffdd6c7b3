"""Disc ferry: a tampered, forged or malformed disc is refused and quarantined, never half-delivered."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from bdchub.bridge.ferry import sign, spec
from bdchub.bridge.ferry.testing import FerryRig, image_bag_dir, patch_file, resign, unpack

PDF = "data/files/附件/宗地图.pdf"
RESULT = "data/messages/审核结果.json"


@pytest.fixture
def ferry(tmp_path: Path) -> FerryRig:
    ferry = FerryRig(tmp_path)
    ferry.write("附件/宗地图.pdf", b"%PDF-1.7\n" + os.urandom(50_000))
    ferry.write("审核结果.json", json.dumps({"type": "review.result", "business_no": "B1"}))
    return ferry


@pytest.fixture
def image(ferry: FerryRig) -> Path:
    return ferry.pack().discs[0].image


def _refused(ferry: FerryRig, image: Path, error: str, match: str, **kw) -> dict:
    report = ferry.importer(**kw).import_images([image])
    batch = report.batches[0]
    assert batch.status == "refused", batch
    assert batch.error == error, batch.reason
    assert match in batch.reason
    assert batch.items == []
    # nothing half-written: the inbox is empty, staging is clean, the ledger untouched
    assert ferry.inbox_entries() == []
    assert ferry.staging_entries() == []
    assert not ferry.ledger_path.exists() or _ledger_empty(ferry)
    reason = json.loads((batch.quarantine / "reason.json").read_text(encoding="utf-8"))
    assert reason["error"] == error and reason["image"] == str(image)
    assert match in (batch.quarantine / "REASON.txt").read_text(encoding="utf-8")
    assert [r["event"] for r in ferry.audit.records()][-2:] == ["refused", "quarantined"]
    return reason


def _ledger_empty(ferry: FerryRig) -> bool:
    from bdchub.bridge.ferry.ledger import Ledger

    ledger = Ledger(ferry.ledger_path, readonly=True)
    try:
        return ledger.sequences(ferry.sender) == []
    finally:
        ledger.close()


def _flip_last_byte(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 0x01])


def test_flipped_byte_in_a_payload_file_is_refused(ferry, image):
    patch_file(image, PDF, _flip_last_byte)
    _refused(ferry, image, "IntegrityError_", "checksum mismatch")


def test_flipped_byte_refused_and_good_copy_still_imports(ferry, image):
    good = image.with_name("good.iso")
    shutil.copyfile(image, good)
    patch_file(image, RESULT, lambda b: b.replace(b"B1", b"B2"))
    _refused(ferry, image, "IntegrityError_", RESULT)
    report = ferry.importer().import_images([good])
    assert report.ok and report.messages[0].message["business_no"] == "B1"


def test_edited_bag_info_is_refused(ferry, image):
    patch_file(image, spec.BAG_INFO, lambda b: b.replace(b"Ferry-Sequence: 1", b"Ferry-Sequence: 7"))
    _refused(ferry, image, "IntegrityError_", "bag-info.txt was altered")


def test_edited_expiry_is_refused(ferry, image):
    patch_file(image, spec.BAG_INFO, lambda b: b.replace(b"Ferry-Expires: 20", b"Ferry-Expires: 29"))
    _refused(ferry, image, "IntegrityError_", "bag-info.txt was altered")


def test_edited_manifest_is_refused(ferry, image):
    def edit(data: bytes) -> bytes:  # change the first hex digit of the first checksum
        return (b"f" if data[:1] != b"f" else b"e") + data[1:]

    patch_file(image, spec.MANIFEST, edit)
    _refused(ferry, image, "IntegrityError_", "manifest-sha256.txt was altered")


def test_forged_tag_manifest_without_the_key_fails_the_signature(ferry, image, tmp_path):
    bag_dir = unpack(image, tmp_path / "forge")
    (bag_dir / "data/messages/审核结果.json").write_text('{"business_no": "FORGED"}')
    lines = [ln for ln in (bag_dir / spec.MANIFEST).read_text().splitlines()
             if not ln.endswith("审核结果.json")]
    import hashlib

    digest = hashlib.sha256((bag_dir / "data/messages/审核结果.json").read_bytes()).hexdigest()
    lines.append(f"{digest}  data/messages/审核结果.json")
    (bag_dir / spec.MANIFEST).write_text("\n".join(lines) + "\n")
    signature = (bag_dir / spec.SIGNATURE).read_bytes()
    resign(bag_dir, sign.HmacKey(os.urandom(32)))
    (bag_dir / spec.SIGNATURE).write_bytes(signature)  # keep the genuine signature
    forged = image_bag_dir(bag_dir, tmp_path / "forged.iso")
    _refused(ferry, forged, "IntegrityError_", "bad signature")


def test_corrupted_signature_is_refused(ferry, image):
    def corrupt(data: bytes) -> bytes:
        head, _sep, value = data.partition(b"Signature: ")
        flipped = (b"A" if value[:1] != b"A" else b"B") + value[1:]
        return head + b"Signature: " + flipped

    patch_file(image, spec.SIGNATURE, corrupt)
    _refused(ferry, image, "IntegrityError_", "bad signature")


def test_wrong_shared_key_is_refused(ferry, image):
    _refused(ferry, image, "IntegrityError_", "unknown key",
             verifiers=[sign.HmacKey(os.urandom(32))])


def test_ed25519_signature_by_another_key_claiming_our_key_id_is_refused(tmp_path):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    ferry = FerryRig(tmp_path, scheme=sign.ED25519)
    ferry.write("r.json", "{}")
    attacker = sign.Ed25519Signer(Ed25519PrivateKey.generate())
    attacker.key_id = ferry.signer.key_id  # claim the genuine key's id
    image = ferry.pack(signer=attacker).discs[0].image
    _refused(ferry, image, "IntegrityError_", "bad signature")


def test_hmac_key_cannot_verify_an_ed25519_disc(tmp_path):
    ferry = FerryRig(tmp_path, scheme=sign.ED25519)
    ferry.write("r.json", "{}")
    image = ferry.pack().discs[0].image
    _refused(ferry, image, "IntegrityError_", "unknown key", verifiers=[sign.HmacKey(b"k" * 32)])


def test_truncated_image_is_refused(ferry, image):
    with open(image, "r+b") as fh:
        fh.truncate(image.stat().st_size // 2)
    reason = _refused(ferry, image, "IntegrityError_", "")
    assert reason["reason"]


def test_random_bytes_are_not_an_image(ferry, tmp_path):
    junk = tmp_path / "junk.iso"
    junk.write_bytes(os.urandom(100_000))
    _refused(ferry, junk, "IntegrityError_", "not a readable ISO 9660 image")


def test_file_added_to_the_disc_but_not_the_manifest_is_refused(ferry, image, tmp_path):
    bag_dir = unpack(image, tmp_path / "extra")
    (bag_dir / "data/files/附件/payload.exe").write_bytes(b"MZ" + os.urandom(100))
    _refused(ferry, image_bag_dir(bag_dir, tmp_path / "extra.iso"), "IntegrityError_",
             "does not match its manifest")


def test_file_removed_from_the_disc_is_refused(ferry, image, tmp_path):
    bag_dir = unpack(image, tmp_path / "less")
    (bag_dir / PDF).unlink()
    _refused(ferry, image_bag_dir(bag_dir, tmp_path / "less.iso"), "IntegrityError_",
             "does not match its manifest")


def test_unexpected_file_beside_the_bag_is_refused(ferry, image, tmp_path):
    bag_dir = unpack(image, tmp_path / "beside")
    (bag_dir / "autorun.inf").write_text("[autorun]\nopen=evil.exe\n")
    _refused(ferry, image_bag_dir(bag_dir, tmp_path / "beside.iso"), "IntegrityError_",
             "autorun.inf")


def test_traversal_path_in_a_correctly_signed_manifest_is_refused(ferry, image, tmp_path):
    """Even the genuine sender (or a stolen key) cannot write outside the inbox."""
    bag_dir = unpack(image, tmp_path / "trav")
    manifest = (bag_dir / spec.MANIFEST).read_text()
    (bag_dir / spec.MANIFEST).write_text(
        manifest.replace("data/files/附件/宗地图.pdf", "data/files/../../../../evil.pdf"))
    resign(bag_dir, ferry.signer)
    _refused(ferry, image_bag_dir(bag_dir, tmp_path / "trav.iso"), "PolicyError", "unsafe path")
    assert not (ferry.root / "evil.pdf").exists()
    assert not list(ferry.root.rglob("evil.pdf"))


@pytest.mark.parametrize("name", ["..\\..\\evil.txt", "con.txt", "trailing.", "a:b.txt",
                                  "zero\u200bwidth.txt"])
def test_unsafe_names_on_a_correctly_signed_disc_are_refused(ferry, image, tmp_path, name):
    bag_dir = unpack(image, tmp_path / "names")
    data = b"payload"
    (bag_dir / "data/files" / name).write_bytes(data)
    import hashlib

    with (bag_dir / spec.MANIFEST).open("a") as fh:
        fh.write(f"{hashlib.sha256(data).hexdigest()}  data/files/{name}\n")
    info = (bag_dir / spec.BAG_INFO).read_text()
    oxum = next(ln for ln in info.splitlines() if ln.startswith("Payload-Oxum"))
    size, count = oxum.split(": ")[1].split(".")
    info = info.replace(oxum, f"Payload-Oxum: {int(size) + len(data)}.{int(count) + 1}")
    (bag_dir / spec.BAG_INFO).write_text(info)
    resign(bag_dir, ferry.signer)
    _refused(ferry, image_bag_dir(bag_dir, tmp_path / "names.iso"), "PolicyError", "unsafe")
    assert not list(ferry.root.rglob("evil.txt"))


def test_names_differing_only_in_case_are_refused(ferry, image, tmp_path):
    bag_dir = unpack(image, tmp_path / "case")
    pdf = bag_dir / PDF
    shutil.copyfile(pdf, pdf.with_name("宗地图.PDF"))
    manifest = (bag_dir / spec.MANIFEST).read_text()
    line = next(ln for ln in manifest.splitlines() if ln.endswith("宗地图.pdf"))
    (bag_dir / spec.MANIFEST).write_text(manifest + line.replace(".pdf", ".PDF") + "\n")
    resign(bag_dir, ferry.signer)
    report = ferry.importer().import_images([image_bag_dir(bag_dir, tmp_path / "case.iso")])
    assert report.batches[0].status == "refused"
    assert "twice" in report.batches[0].reason
    assert ferry.inbox_entries() == []


def test_content_policy_refusal_quarantines_the_whole_batch(ferry, image):
    class NoPdf:
        def inspect(self, path):
            from types import SimpleNamespace

            ok = path.suffix != ".pdf"
            return SimpleNamespace(ok=ok, reason="" if ok else "PDF not allowed", kind="x")

    reason = _refused(ferry, image, "PolicyError", "PDF not allowed", policy=NoPdf())
    quarantined = Path(reason["image"])
    assert quarantined == image


def test_content_policy_from_bridge_policy_accepts_pdf_and_json(ferry, image):
    from bdchub.bridge.policy import ContentPolicy

    report = ferry.importer(policy=ContentPolicy()).import_images([image])
    assert report.ok, report.batches[0].reason
    assert {i.content_type for i in report.items} == {"pdf", "json"}


def test_verify_of_a_tampered_image_refuses_without_quarantine_or_ledger(ferry, image):
    patch_file(image, PDF, _flip_last_byte)
    report = ferry.importer().verify_images([image])
    assert report.batches[0].status == "refused"
    assert "checksum mismatch" in report.batches[0].reason
    assert report.batches[0].quarantine is None
    assert not ferry.quarantine.exists() and not ferry.ledger_path.exists()


def test_signed_but_malformed_bag_info_is_refused_not_a_crash(ferry, image, tmp_path):
    bag_dir = unpack(image, tmp_path / "badinfo")
    with (bag_dir / spec.BAG_INFO).open("ab") as fh:
        fh.write(b"X-Note: \xff\xfe not utf-8\n")
    resign(bag_dir, ferry.signer)
    _refused(ferry, image_bag_dir(bag_dir, tmp_path / "badinfo.iso"), "IntegrityError_",
             "not a valid BagIt bag")


def test_signed_bag_info_without_a_sequence_is_refused(ferry, image, tmp_path):
    bag_dir = unpack(image, tmp_path / "noseq")
    info = (bag_dir / spec.BAG_INFO).read_text(encoding="utf-8")
    (bag_dir / spec.BAG_INFO).write_text(
        "".join(ln + "\n" for ln in info.splitlines() if not ln.startswith("Ferry-Sequence")),
        encoding="utf-8")
    resign(bag_dir, ferry.signer)
    _refused(ferry, image_bag_dir(bag_dir, tmp_path / "noseq.iso"), "IntegrityError_",
             "lacks Ferry-Sequence")
