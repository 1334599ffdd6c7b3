"""Content policy: types by magic bytes, limits, hostile archives, scanner hook."""

from __future__ import annotations

import io
import json
import stat
import struct
import sys
import zipfile
from pathlib import Path

import pytest

from bdchub.bridge.policy import ContentPolicy, PolicyConfig, Verdict, quarantine
from bdchub.core.audit import AuditLog
from bdchub.core.errors import ConfigError, PolicyError

SHP_HEADER = struct.pack(">7i", 9994, 0, 0, 0, 0, 0, 50) + struct.pack("<2i", 1000, 5) + bytes(64)


def _write(tmp: Path, name: str, data: bytes) -> Path:
    path = tmp / name
    path.write_bytes(data)
    return path


def _zip(tmp: Path, name: str, members: dict[str, bytes], *, level: int = 8) -> Path:
    path = tmp / name
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=level) as zf:
        for member, data in members.items():
            zf.writestr(member, data)
    return path


GOOD = {
    "a.pdf": b"%PDF-1.7\n%\xe2\xe3\n1 0 obj",
    "a.png": b"\x89PNG\r\n\x1a\n" + bytes(40),
    "a.jpg": b"\xff\xd8\xff\xe0" + bytes(40),
    "a.tif": b"II*\x00" + bytes(40),
    "a.dwg": b"AC1032" + bytes(40),
    "a.dxf": b"  0\r\nSECTION\r\n  2\r\nHEADER\r\n",
    "a.gml": b'<?xml version="1.0"?><gml:FeatureCollection xmlns:gml="http://www.opengis.net/gml"/>',
    "a.xml": b"\xef\xbb\xbf<?xml version='1.0'?><root/>",
    "a.geojson": b'{"type": "FeatureCollection", "features": []}',
    "batch.json": b'[{"type": "application.submitted"}]',
    "a.shp": SHP_HEADER,
    "a.shx": SHP_HEADER,
    "a.dbf": bytes([0x03, 124, 5, 17]) + bytes(60),
}
KINDS = {"a.pdf": "pdf", "a.png": "png", "a.jpg": "jpeg", "a.tif": "tiff", "a.dwg": "dwg",
         "a.dxf": "dxf", "a.gml": "gml", "a.xml": "xml", "a.geojson": "geojson",
         "batch.json": "json", "a.shp": "shp", "a.shx": "shx", "a.dbf": "dbf"}


@pytest.mark.parametrize("name", sorted(GOOD))
def test_allowed_types_are_recognised_by_their_magic(tmp_path, name):
    verdict = ContentPolicy().inspect(_write(tmp_path, name, GOOD[name]))
    assert verdict == Verdict(True, "", KINDS[name])


@pytest.mark.parametrize("name,data", [
    ("setup.pdf", b"MZ\x90\x00\x03" + bytes(60)),  # executable dressed as a PDF
    ("photo.png", b"%PDF-1.4 not a png"),  # extension and content disagree
    ("run.sh", b"#!/bin/sh\nrm -rf /\n"),
    ("empty.pdf", b""),
    ("bad.json", b'{"type": '),
    ("a.dbf", b"\x99garbage" + bytes(40)),
])
def test_wrong_or_unknown_content_is_refused(tmp_path, name, data):
    verdict = ContentPolicy().inspect(_write(tmp_path, name, data))
    assert not verdict.ok and verdict.reason


def test_kinds_outside_the_allow_list_are_refused(tmp_path):
    policy = ContentPolicy({"allowed_kinds": ["pdf"]})
    assert policy.inspect(_write(tmp_path, "a.pdf", GOOD["a.pdf"])).ok
    verdict = policy.inspect(_write(tmp_path, "a.png", GOOD["a.png"]))
    assert not verdict.ok and verdict.kind == "png"


def test_size_limit(tmp_path):
    path = _write(tmp_path, "big.pdf", b"%PDF-1.4\n" + bytes(2000))
    assert not ContentPolicy({"max_size": 1000}).inspect(path).ok


def test_xml_with_a_dtd_is_refused(tmp_path):
    lol = (b'<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
           b'<!ENTITY lol2 "&lol;&lol;">]>\n<lolz>&lol2;</lolz>')
    verdict = ContentPolicy().inspect(_write(tmp_path, "lol.xml", lol))
    assert not verdict.ok and "DTD" in verdict.reason


def test_good_zip_with_a_complete_shapefile_set_passes(tmp_path):
    path = _zip(tmp_path, "parcels.zip", {"parcels/p.shp": SHP_HEADER, "parcels/p.shx": SHP_HEADER,
                                          "parcels/p.dbf": GOOD["a.dbf"],
                                          "parcels/p.prj": b'GEOGCS["CGCS2000"]',
                                          "map.pdf": GOOD["a.pdf"]})
    assert ContentPolicy().inspect(path) == Verdict(True, "", "zip")


def test_zip_with_an_incomplete_shapefile_set_is_refused(tmp_path):
    path = _zip(tmp_path, "p.zip", {"p.shp": SHP_HEADER, "p.dbf": GOOD["a.dbf"]})
    verdict = ContentPolicy().inspect(path)
    assert not verdict.ok and ".shx" in verdict.reason


def test_zip_bomb_is_refused_by_its_compression_ratio(tmp_path):
    path = _zip(tmp_path, "bomb.zip", {"zeros.pdf": b"%PDF-1.4\n" + bytes(50 << 20)}, level=9)
    assert path.stat().st_size < 200_000
    verdict = ContentPolicy().inspect(path)
    assert not verdict.ok and "ratio" in verdict.reason


def test_zip_that_lies_about_its_sizes_is_refused(tmp_path):
    """Headers claim a tiny member; the stream inflates to much more."""
    path = _zip(tmp_path, "liar.zip", {"a.pdf": b"%PDF-1.4\n" + bytes(3 << 20)})
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.infolist()[0]
    # patch the uncompressed size in the local header (offset 22) and the central directory
    struct.pack_into("<I", data, info.header_offset + 22, 1000)
    cd = data.rfind(b"PK\x01\x02")
    struct.pack_into("<I", data, cd + 24, 1000)
    path.write_bytes(bytes(data))
    verdict = ContentPolicy().inspect(path)
    assert not verdict.ok and "corrupt" in verdict.reason


def test_total_uncompressed_size_limit(tmp_path):
    path = _zip(tmp_path, "big.zip", {f"{i}.pdf": b"%PDF-1.4\n" + bytes(300_000)
                                      for i in range(4)})
    verdict = ContentPolicy({"max_total_uncompressed": 1_000_000, "max_ratio": 1e9}).inspect(path)
    assert not verdict.ok and "expands" in verdict.reason


@pytest.mark.parametrize("member", ["../../etc/cron.d/evil.pdf", "/etc/passwd.pdf",
                                    "a/../../b.pdf", "C:\\Windows\\x.pdf", "..\\x.pdf"])
def test_path_traversal_in_archives_is_refused(tmp_path, member):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("x")
        info.filename = member  # bypass ZipInfo's own sanitising
        zf.writestr(info, GOOD["a.pdf"])
    path = _write(tmp_path, "trav.zip", buf.getvalue())
    verdict = ContentPolicy().inspect(path)
    assert not verdict.ok and "escapes" in verdict.reason


def test_symlink_in_archive_is_refused(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("link.pdf")
        info.create_system = 3
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/shadow")
    verdict = ContentPolicy().inspect(_write(tmp_path, "ln.zip", buf.getvalue()))
    assert not verdict.ok and "symbolic link" in verdict.reason


def test_symlink_itself_is_refused(tmp_path):
    target = _write(tmp_path, "real.pdf", GOOD["a.pdf"])
    link = tmp_path / "link.pdf"
    link.symlink_to(target)
    assert not ContentPolicy().inspect(link).ok


def test_too_many_members_is_refused(tmp_path):
    path = _zip(tmp_path, "many.zip", {f"{i}.pdf": GOOD["a.pdf"] for i in range(30)})
    verdict = ContentPolicy({"max_members": 20}).inspect(path)
    assert not verdict.ok and "30 members" in verdict.reason


@pytest.mark.parametrize("members,needle", [
    ({"tool.exe": b"MZ\x90\x00" + bytes(100)}, "not allowed"),
    ({"inner.zip": b"PK\x03\x04" + bytes(100)}, "nested"),
    ({"fake.png": GOOD["a.pdf"]}, "does not match"),
    ({"x.xml": b'<?xml version="1.0"?><!DOCTYPE x SYSTEM "file:///etc/passwd"><x/>'}, "DTD"),
])
def test_archive_members_must_be_allowed_types(tmp_path, members, needle):
    verdict = ContentPolicy().inspect(_zip(tmp_path, "m.zip", members))
    assert not verdict.ok and needle in verdict.reason


def test_encrypted_member_is_refused(tmp_path):
    path = _zip(tmp_path, "enc.zip", {"a.pdf": GOOD["a.pdf"]})
    data = bytearray(path.read_bytes())
    data[6] |= 1  # general purpose flag: encrypted (local header)
    cd = data.rfind(b"PK\x01\x02")
    data[cd + 8] |= 1
    path.write_bytes(bytes(data))
    verdict = ContentPolicy().inspect(path)
    assert not verdict.ok and "encrypted" in verdict.reason


def test_corrupt_zip_is_refused(tmp_path):
    verdict = ContentPolicy().inspect(_write(tmp_path, "c.zip", b"PK\x03\x04garbage"))
    assert not verdict.ok and "corrupt" in verdict.reason


def test_external_scanner_has_the_last_word(tmp_path):
    path = _write(tmp_path, "a.pdf", GOOD["a.pdf"])
    clean = [sys.executable, "-c", "import sys; sys.exit(0)"]
    infected = [sys.executable, "-c", "print('Eicar-Test-Signature FOUND'); raise SystemExit(1)"]
    assert ContentPolicy({"scanner": clean}).inspect(path).ok
    verdict = ContentPolicy({"scanner": infected}).inspect(path)
    assert not verdict.ok and "Eicar" in verdict.reason and verdict.kind == "pdf"
    missing = ContentPolicy({"scanner": ["/nonexistent/scanner"]}).inspect(path)
    assert not missing.ok  # fail closed


def test_every_verdict_is_audited_and_refusals_quarantined(tmp_path):
    audit = AuditLog(tmp_path / "audit.jsonl")
    policy = ContentPolicy(audit=audit)
    bad = _write(tmp_path, "x.pdf", b"MZ" + bytes(10))
    verdict = policy.inspect(bad, object_id="s/1")
    dest = quarantine(bad, verdict, tmp_path / "q", audit=audit, object_id="s/1")
    assert dest.exists() and not bad.exists()
    reason = json.loads(dest.with_name(dest.name + ".reason.json").read_text())
    assert reason["reason"] == verdict.reason and reason["object"] == "s/1"
    assert [r["event"] for r in audit.records()] == ["filtered", "quarantined"]
    assert audit.verify() == []
    with pytest.raises(PolicyError):
        policy.enforce(_write(tmp_path, "y.pdf", b"nope"))


def test_policy_config_is_checked(tmp_path):
    with pytest.raises(ConfigError):
        PolicyConfig.from_mapping({"allowed_kinds": ["pdf", "exe"]})
    with pytest.raises(ConfigError):
        PolicyConfig.from_mapping({"max_sise": 1})
    assert PolicyConfig.from_mapping({"scanner": "clamdscan --no-summary"}).scanner == (
        "clamdscan", "--no-summary")
