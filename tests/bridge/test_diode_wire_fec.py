"""Wire format, FEC planning and coding: the pieces the transfer relies on."""

from __future__ import annotations

import os
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bdchub.bridge.diode import fec, wire
from bdchub.bridge.diode.manifest import HmacKey, Manifest, safe_name
from bdchub.core.errors import BridgeError, IntegrityError_


def test_header_roundtrip_and_size():
    dgram = wire.encode(wire.DATA, 0xDEADBEEF, 2**63 + 5, b"payload", object_id=7,
                        block=9, symbol=200)
    assert wire.HEADER_SIZE == 40
    h = wire.decode(memoryview(dgram), len(dgram))
    assert h == wire.Header(wire.DATA, 0, 0xDEADBEEF, 2**63 + 5, 7, 9, 200, 7)


@given(st.binary(min_size=0, max_size=300), st.data())
@settings(max_examples=200, deadline=None)
def test_any_single_bit_flip_is_detected(payload, data):
    dgram = bytearray(wire.encode(wire.DATA, 1, 2, payload, object_id=3, block=4, symbol=5))
    bit = data.draw(st.integers(0, len(dgram) * 8 - 1))
    dgram[bit // 8] ^= 1 << (bit % 8)
    assert wire.decode(memoryview(dgram), len(dgram)) is None


def test_truncated_or_foreign_datagrams_are_refused():
    dgram = wire.encode(wire.HEARTBEAT, 1, 1, b"{}")
    assert wire.decode(memoryview(dgram), len(dgram) - 1) is None
    assert wire.decode(memoryview(b"x" * 60), 60) is None


def test_small_fixed_groups_fail_big_files_as_the_brief_says():
    q = fec.binomial_tail(40, 0.05, 8)
    assert q == pytest.approx(1.3e-4, rel=0.01)
    assert fec.object_failure(q, (1 << 30) // (32 * 1400)) > 0.95


@pytest.mark.parametrize("size", [1, 1000, 1 << 20, 64 << 20, 1 << 30])
@pytest.mark.parametrize("loss", [0.0, 0.01, 0.05, 0.10])
def test_plan_meets_object_failure_target(size, loss):
    plan = fec.plan_object(size, 1432, loss=loss, target=1e-9)
    assert plan.failure_probability(loss) <= 1e-9
    assert plan.k_hi + plan.parity <= fec.MAX_SYMBOLS
    # whole object covered, blocks balanced within one symbol
    assert sum(plan.k_of(b) for b in range(plan.blocks)) == plan.source_symbols
    assert plan.block_offset(plan.blocks - 1) + plan.k_of(plan.blocks - 1) * 1432 \
        == plan.padded_size


def test_parity_grows_with_object_size_not_fixed():
    small = fec.plan_object(1 << 20, 1432, loss=0.05, target=1e-9)
    big = fec.plan_object(1 << 30, 1432, loss=0.05, target=1e-9)
    assert big.parity > small.parity


def test_explicit_overhead_is_honoured():
    plan = fec.plan_object(64 << 20, 1432, loss=0.05, target=1e-9, overhead=0.5)
    assert plan.overhead == pytest.approx(0.5, abs=0.02)
    plan = fec.plan_object(64 << 20, 1432, loss=0.05, target=1e-9, overhead=2.0, k_max=200)
    assert plan.k_hi + plan.parity <= fec.MAX_SYMBOLS


def test_plan_for_impossible_loss_is_a_config_error():
    from bdchub.core.errors import ConfigError

    with pytest.raises(ConfigError):
        fec.plan_object(1 << 20, 1432, loss=0.6, target=1e-9)


def test_pyeclib_fragment_headers_do_not_depend_on_data():
    """We do not send pyeclib's 80-byte header; this is why that is safe."""
    for ec in fec.available_ec_types():
        drv = fec._driver(ec, 16, 4)
        a = drv.encode(os.urandom(16 * 1432))
        b = drv.encode(bytes(16 * 1432))
        assert [f[:-1432] for f in a] == [f[:-1432] for f in b], ec


@given(st.integers(1, 40), st.integers(0, 12), st.randoms(use_true_random=False))
@settings(max_examples=40, deadline=None)
def test_any_k_of_n_symbols_rebuild_the_block(k, m, rnd):
    S = 64
    ec = fec.default_ec_type()
    block = rnd.randbytes(k * S)
    parity = fec.encode_parity(ec, k, m, block)
    symbols = {i: block[i * S:(i + 1) * S] for i in range(k)}
    symbols.update({k + i: bytes(p) for i, p in enumerate(parity)})
    keep = rnd.sample(sorted(symbols), k)
    assert fec.decode_block(ec, k, m, S, {i: symbols[i] for i in keep}) == block


def test_decode_with_too_few_symbols_is_refused():
    with pytest.raises(BridgeError):
        fec.decode_block(fec.default_ec_type(), 4, 2, 8, {0: b"x" * 8})


def _manifest(**kw):
    base = dict(session=1, object_id=2, name="宗地图.pdf", kind="file", size=10,
                hash_name="sha256", digest="00" * 32, symbol_size=1432, blocks=1, parity=3,
                ec_type=fec.default_ec_type())
    base.update(kw)
    return Manifest(**base)


def test_manifest_signature_covers_every_field():
    key = HmacKey(os.urandom(32))
    m = _manifest().signed(key)
    back = Manifest.from_bytes(m.to_bytes())
    assert key.verify(back.body(), back.signature)
    for change in ({"size": 11}, {"name": "other.pdf"}, {"digest": "11" * 32}, {"parity": 2}):
        forged = Manifest(**{**back.__dict__, **change})
        assert not key.verify(forged.body(), forged.signature)
    assert not HmacKey(os.urandom(32)).verify(back.body(), back.signature)


def test_ed25519_and_sm3_signatures_verify():
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from bdchub.bridge.diode.manifest import Ed25519Signer, Ed25519Verifier

    priv = Ed25519PrivateKey.generate()
    m = _manifest().signed(Ed25519Signer(priv))
    assert Ed25519Verifier(priv.public_key()).verify(m.body(), m.signature)
    key = HmacKey(os.urandom(32), "hmac-sm3")
    m = _manifest(hash_name="sm3").signed(key)
    assert key.verify(m.body(), m.signature)


@pytest.mark.parametrize("raw", [b"", b"{", b'{"v": 1}', b'{"v": 2}', b"[1,2]",
                                 b'{"v":1,"session":"x"}'])
def test_malformed_manifests_are_integrity_errors(raw):
    with pytest.raises(IntegrityError_):
        Manifest.from_bytes(raw)


def test_manifest_with_impossible_plan_is_refused():
    m = _manifest(blocks=5, size=10)  # 5 blocks for 1 symbol
    with pytest.raises(IntegrityError_):
        Manifest.from_bytes(m.to_bytes())


@pytest.mark.parametrize("name", ["../etc/passwd", "a/b", "..", ".hidden", "x\x00y",
                                  "c:\\win", "", "a" * 300])
def test_unsafe_names_are_refused(name):
    with pytest.raises(BridgeError):
        safe_name(name)


def test_content_key_ignores_session_so_resends_resume():
    a = _manifest(session=1, object_id=1)
    b = _manifest(session=99, object_id=5, created=a.created + 100)
    assert a.content_key() == b.content_key()
    assert a.content_key() != _manifest(digest="11" * 32).content_key()


def test_gilbert_elliott_hits_its_mean_loss_in_bursts():
    from bdchub.bridge.diode.relay import GilbertElliott

    ge = GilbertElliott(0.02, 8, 0.8, random.Random(5))
    drops = [ge.drop() for _ in range(200_000)]
    assert sum(drops) / len(drops) == pytest.approx(0.02, rel=0.2)
    runs = sum(1 for a, b in zip(drops, drops[1:], strict=False) if b and not a)
    assert sum(drops) / runs > 2  # lost datagrams come in runs
