"""Disc ferry building blocks: parsers, path rules, manifests, signatures, streaming."""

from __future__ import annotations

import hashlib
import os
from datetime import timedelta
from pathlib import Path

import pytest

from bdchub.bridge.ferry import bag, sign, spec, stream
from bdchub.core.errors import BridgeError, IntegrityError_, PolicyError


@pytest.mark.parametrize("text, expected", [("7d", timedelta(days=7)), ("12h", timedelta(hours=12)),
                                            ("2w", timedelta(weeks=2)), ("90s", timedelta(seconds=90))])
def test_durations(text, expected):
    assert spec.parse_duration(text) == expected


@pytest.mark.parametrize("bad", ["0d", "7", "-1d", "1y", ""])
def test_bad_durations(bad):
    with pytest.raises(BridgeError):
        spec.parse_duration(bad)


def test_sizes_and_media():
    assert spec.parse_size("cd") == 737_280_000
    assert spec.parse_size("bd") == 25_025_314_816
    assert spec.parse_size("dvd-dl") == 8_543_666_176
    assert spec.parse_size("700M") == 700 << 20
    assert spec.parse_size("1.5K") == 1536
    assert spec.parse_headroom("5%") == 0.05
    with pytest.raises(BridgeError):
        spec.parse_headroom("95%")


@pytest.mark.parametrize("path", [
    "data/files/../x", "data/files/./x", "data/files//x", "data/other/x", "files/x",
    "data/files/a\\b", "data/files/nul", "data/files/x ", "data/messages/not-json.txt",
    "data/files/\x07bell", "data/files/" + "长" * 65,
])
def test_unsafe_payload_paths(path):
    with pytest.raises(PolicyError):
        spec.check_payload_path(path)


@pytest.mark.parametrize("path", ["data/files/附件/宗地图 (1).pdf",
                                  "data/messages/苏(2017)海门市不动产权第0000183号.json",
                                  "data/files/" + "长" * 64])
def test_safe_payload_paths(path):
    spec.check_payload_path(path)


def test_manifest_parser_is_strict():
    good = b"%s  data/files/a\n" % (b"a" * 64)
    assert bag.parse_manifest(good, "m") == {"data/files/a": "a" * 64}
    for bad in (b"zz  data/files/a\n", b"\xef\xbb\xbf" + good, good + good,
                good + good.replace(b"/a", b"/A"), b"\xff\xfe"):
        with pytest.raises(IntegrityError_):
            bag.parse_manifest(bad, "m")


def test_signature_file_parse_rejects_garbage():
    with pytest.raises(IntegrityError_):
        sign.Signature.parse(b"Algorithm: ed25519\nSignature: !!!\n")
    s = sign.sign(sign.HmacKey(b"k" * 32), b"tags")
    assert sign.Signature.parse(s.render()) == s


def test_key_loading_matches_pack_and_import_sides(tmp_path: Path):
    priv, pub = sign.generate("ed25519", tmp_path / "k")
    signer, verifier = sign.load_signer(priv), sign.load_verifier(pub)
    assert signer.key_id == verifier.key_id
    assert verifier.verify(b"x", signer.sign(b"x"))
    with pytest.raises(BridgeError, match="public key"):
        sign.load_signer(pub)
    with pytest.raises(BridgeError, match="already exists"):
        sign.generate("ed25519", tmp_path / "k")


@pytest.mark.parametrize("total_mib", [1, 9])  # below and above the pipelining threshold
def test_streamed_digest_and_copy_match_hashlib_across_odd_extents(tmp_path: Path, total_mib):
    data = os.urandom(total_mib << 20)
    src = tmp_path / "image.bin"
    src.write_bytes(data)
    # extents out of order and of odd lengths, like a multi-extent file's runs
    cut1, cut2 = len(data) // 3 + 5, len(data) // 3 * 2 + 77
    extents = [(cut1, cut2 - cut1), (0, cut1), (cut2, len(data) - cut2)]
    expected = data[cut1:cut2] + data[:cut1] + data[cut2:]
    fd = os.open(src, os.O_RDONLY)
    out = tmp_path / "copy.bin"
    dst = os.open(out, os.O_WRONLY | os.O_CREAT, 0o600)
    seen = []
    try:
        got = stream.digest(fd, extents, dst, seen.append, chunk=64 * 1024)
        assert stream.digest(fd, extents, None, chunk=64 * 1024 + 3) == got
    finally:
        os.close(fd)
        os.close(dst)
    assert got == hashlib.sha256(expected).hexdigest()
    assert out.read_bytes() == expected
    assert sum(seen) == len(data)


def test_streamed_digest_reports_a_short_image(tmp_path: Path):
    src = tmp_path / "short.bin"
    src.write_bytes(b"x" * 1000)
    fd = os.open(src, os.O_RDONLY)
    try:
        with pytest.raises(IntegrityError_, match="truncated"):
            stream.digest(fd, [(0, 5000)])
        with pytest.raises(IntegrityError_, match="truncated"):
            stream.digest(fd, [(0, 20 << 20)], chunk=1 << 20)
    finally:
        os.close(fd)
