"""The per-object manifest: what the object is, how it was coded, and proof of
who sent it.

The manifest is compact JSON in one datagram, sent several times per pass.
It is signed with a shared HMAC key (HMAC-SHA256 or HMAC-SM3) or an Ed25519
key pair; the receiver drops unsigned or wrongly signed manifests before it
allocates anything, so forged traffic cannot fill the staging disk.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bdchub.core.errors import BridgeError, ConfigError, IntegrityError_
from bdchub.core.i18n import _

from .fec import Plan

MANIFEST_VERSION = 1
HASHES = ("sha256", "sm3")
MAX_NAME_BYTES = 255


def new_hash(name: str) -> Any:
    """A hashlib-style object (update/digest/hexdigest) for ``name``."""
    if name == "sha256":
        return hashlib.sha256()
    if name == "sm3":
        if "sm3" in hashlib.algorithms_available:
            return hashlib.new("sm3")
        return _CryptographyHash("sm3")
    raise ConfigError(_("unknown hash algorithm {name}; use one of {names}",
                        name=name, names=", ".join(HASHES)))


class _CryptographyHash:
    """SM3 through ``cryptography`` when the OpenSSL under hashlib lacks it."""

    def __init__(self, name: str):
        from cryptography.hazmat.primitives import hashes

        self._h = hashes.Hash(hashes.SM3())

    def update(self, data: bytes | memoryview) -> None:
        self._h.update(bytes(data))

    def hexdigest(self) -> str:
        return self._h.finalize().hex()


def hash_file(path: str | os.PathLike[str], name: str, chunk: int = 1 << 20) -> str:
    h = new_hash(name)
    with open(path, "rb", buffering=0) as fh:
        buf = bytearray(chunk)
        view = memoryview(buf)
        while n := fh.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


def safe_name(name: str) -> str:
    """The object's name as the receiver may use it: one path component,
    no control characters, no leading dot. Raises BridgeError otherwise."""
    clean = unicodedata.normalize("NFC", name)
    bad = (not clean or clean in (".", "..") or "/" in clean or "\\" in clean
           or "\x00" in clean or clean.startswith(".")
           or any(unicodedata.category(c) == "Cc" for c in clean)
           or len(clean.encode("utf-8")) > MAX_NAME_BYTES)
    if bad:
        raise BridgeError(_("object name {name!r} is not a plain file name", name=name))
    return clean


@dataclass(frozen=True)
class Manifest:
    session: int
    object_id: int
    name: str
    kind: str  # "file" or "batch"
    size: int
    hash_name: str
    digest: str
    symbol_size: int
    blocks: int
    parity: int
    ec_type: str
    created: float = field(default_factory=time.time)
    sender: str = ""
    signature: dict[str, str] = field(default_factory=dict)

    @property
    def plan(self) -> Plan:
        return Plan(self.size, self.symbol_size, self.blocks, self.parity, self.ec_type)

    @property
    def ref(self) -> str:
        """Audit id: session and object, as the sender logs it too."""
        return f"{self.session:016x}/{self.object_id}"

    def content_key(self) -> str:
        """Staging key. Deliberately without session and time: the same object
        re-sent by a restarted sender resumes the symbols already staged."""
        ident = json.dumps([self.name, self.kind, self.size, self.hash_name, self.digest,
                            self.symbol_size, self.blocks, self.parity, self.ec_type],
                           ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(ident.encode()).hexdigest()[:40]

    def body(self) -> bytes:
        """The signed bytes: canonical JSON of every field but the signature."""
        data = asdict(self)
        data.pop("signature")
        data["v"] = MANIFEST_VERSION
        return json.dumps(data, ensure_ascii=False, sort_keys=True,
                          separators=(",", ":")).encode("utf-8")

    def to_bytes(self) -> bytes:
        data = json.loads(self.body())
        data["signature"] = self.signature
        return json.dumps(data, ensure_ascii=False, sort_keys=True,
                          separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_bytes(cls, raw: bytes | memoryview) -> Manifest:
        try:
            data = json.loads(bytes(raw))
            if data.pop("v") != MANIFEST_VERSION:
                raise ValueError("version")
            m = cls(**data)
            for name, typ in (("session", int), ("object_id", int), ("size", int),
                              ("symbol_size", int), ("blocks", int), ("parity", int),
                              ("name", str), ("kind", str), ("digest", str),
                              ("hash_name", str), ("ec_type", str)):
                if not isinstance(getattr(m, name), typ) or isinstance(getattr(m, name), bool):
                    raise ValueError(name)
            if m.hash_name not in HASHES or m.kind not in ("file", "batch"):
                raise ValueError("hash/kind")
            if not isinstance(m.signature, dict):
                raise ValueError("signature")
            m.plan.validate()
        except (ValueError, TypeError, KeyError, AttributeError, BridgeError) as exc:
            raise IntegrityError_(_("malformed manifest: {error}", error=exc)) from exc
        return m

    def signed(self, signer: Signer) -> Manifest:
        return Manifest(**{**asdict(self), "signature": signer.sign(self.body())})


class Signer(Protocol):
    def sign(self, body: bytes) -> dict[str, str]: ...


class Verifier(Protocol):
    def verify(self, body: bytes, signature: dict[str, str]) -> bool: ...


def _hmac(key: bytes, alg: str, body: bytes) -> bytes:
    if alg == "hmac-sha256":
        return hmac.new(key, body, hashlib.sha256).digest()
    if alg == "hmac-sm3":
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives import hmac as chmac

        h = chmac.HMAC(key, hashes.SM3())
        h.update(body)
        return h.finalize()
    raise ConfigError(_("unknown signature algorithm {name}", name=alg))


class HmacKey:
    """Shared secret on both sides of the diode. Signs and verifies."""

    def __init__(self, key: bytes, alg: str = "hmac-sha256"):
        if len(key) < 16:
            raise ConfigError(_("the diode key must be at least 16 bytes"))
        _hmac(key, alg, b"")  # fail early on a bad algorithm name
        self.key, self.alg = key, alg
        self.key_id = hashlib.sha256(b"bdc-diode-key-id" + key).hexdigest()[:16]

    def sign(self, body: bytes) -> dict[str, str]:
        return {"alg": self.alg, "kid": self.key_id, "value": _hmac(self.key, self.alg, body).hex()}

    def verify(self, body: bytes, signature: dict[str, str]) -> bool:
        if signature.get("alg") != self.alg:
            return False
        try:
            value = bytes.fromhex(signature.get("value", ""))
        except ValueError:
            return False
        return hmac.compare_digest(value, _hmac(self.key, self.alg, body))


class Ed25519Signer:
    def __init__(self, private_key: Any):
        self._key = private_key

    def sign(self, body: bytes) -> dict[str, str]:
        return {"alg": "ed25519", "value": self._key.sign(body).hex()}


class Ed25519Verifier:
    def __init__(self, public_key: Any):
        self._key = public_key

    def verify(self, body: bytes, signature: dict[str, str]) -> bool:
        from cryptography.exceptions import InvalidSignature

        if signature.get("alg") != "ed25519":
            return False
        try:
            self._key.verify(bytes.fromhex(signature.get("value", "")), body)
        except (InvalidSignature, ValueError):
            return False
        return True


def read_hmac_key(path: str | os.PathLike[str], alg: str = "hmac-sha256") -> HmacKey:
    """A key file holds the secret as hex (64 chars from ``bridge keygen``) or raw bytes."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(_("cannot read key file {path}: {error}", path=str(path),
                            error=exc.strerror)) from exc
    text = raw.strip()
    try:
        key = bytes.fromhex(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        key = raw
    return HmacKey(key, alg)


def load_ed25519(path: str | os.PathLike[str], private: bool) -> Any:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    try:
        data = Path(path).read_bytes()
        key = (serialization.load_pem_private_key(data, password=None) if private
               else serialization.load_pem_public_key(data))
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(_("cannot load Ed25519 key {path}: {error}", path=str(path),
                            error=exc)) from exc
    expected = ed25519.Ed25519PrivateKey if private else ed25519.Ed25519PublicKey
    if not isinstance(key, expected):
        raise ConfigError(_("{path} is not an Ed25519 key", path=str(path)))
    return key


def make_signer(key_file: str | None = None, ed25519_key: str | None = None,
                alg: str = "hmac-sha256") -> Signer:
    if ed25519_key:
        return Ed25519Signer(load_ed25519(ed25519_key, private=True))
    if key_file:
        return read_hmac_key(key_file, alg)
    raise ConfigError(_("the diode needs a key: give --key-file (shared HMAC key) "
                        "or --sign-key (Ed25519 private key)"))


def make_verifier(key_file: str | None = None, ed25519_pub: str | None = None,
                  alg: str = "hmac-sha256") -> Verifier:
    if ed25519_pub:
        return Ed25519Verifier(load_ed25519(ed25519_pub, private=False))
    if key_file:
        return read_hmac_key(key_file, alg)
    raise ConfigError(_("the diode needs a key: give --key-file (shared HMAC key) "
                        "or --verify-key (Ed25519 public key)"))
