"""Signing the tag manifest: the one place the ferry touches cryptography.

The signature covers ``tagmanifest-sha256.txt``, which covers ``bagit.txt``,
``bag-info.txt`` (sender, sequence, expiry) and ``manifest-sha256.txt``
(every payload file), so one signature vouches for the whole disc. It is
stored as the tag file ``ferry-signature.txt``::

    Algorithm: ed25519            (or hmac-sha256)
    Key-Id: 3f9a0c5e1d2b7a44
    Signed-File: tagmanifest-sha256.txt
    Signature: <base64>

The signed bytes are a domain tag plus the tag manifest, so a signature made
for something else can never be replayed as a ferry signature. The algorithm
a verifier uses is the one of its key, never the one the disc names.

Two schemes: HMAC-SHA256 with a shared secret (both sides hold the file) and
Ed25519 (the internal network holds the private key, the extranet only the
public one, so a compromised importer cannot forge discs). An SM2/SM3
provider can be added here behind the same Signer/Verifier shapes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from bdchub.core.errors import BridgeError, IntegrityError_
from bdchub.core.i18n import _

from . import spec

HMAC = "hmac-sha256"
ED25519 = "ed25519"
DOMAIN = spec.FORMAT.encode() + b"\x00tagmanifest\x00"
MIN_SECRET = 32


def _signed_bytes(tagmanifest: bytes) -> bytes:
    return DOMAIN + tagmanifest


class Signer(Protocol):
    algorithm: str
    key_id: str

    def sign(self, tagmanifest: bytes) -> bytes: ...


class Verifier(Protocol):
    algorithm: str
    key_id: str

    def verify(self, tagmanifest: bytes, signature: bytes) -> bool: ...


class HmacKey:
    """Shared secret: signs and verifies."""

    algorithm = HMAC

    def __init__(self, secret: bytes):
        if len(secret) < MIN_SECRET:
            raise BridgeError(_("the shared ferry key must be at least {n} bytes", n=MIN_SECRET))
        self._secret = secret
        self.key_id = hmac.new(secret, b"bdc-hub ferry key id", hashlib.sha256).hexdigest()[:16]

    def sign(self, tagmanifest: bytes) -> bytes:
        return hmac.new(self._secret, _signed_bytes(tagmanifest), hashlib.sha256).digest()

    def verify(self, tagmanifest: bytes, signature: bytes) -> bool:
        return hmac.compare_digest(self.sign(tagmanifest), signature)


def _ed25519_key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


class Ed25519Verifier:
    algorithm = ED25519

    def __init__(self, public: Ed25519PublicKey):
        self._public = public
        self.key_id = _ed25519_key_id(public)

    def verify(self, tagmanifest: bytes, signature: bytes) -> bool:
        try:
            self._public.verify(signature, _signed_bytes(tagmanifest))
        except InvalidSignature:
            return False
        return True


class Ed25519Signer:
    algorithm = ED25519

    def __init__(self, private: Ed25519PrivateKey):
        self._private = private
        self.key_id = _ed25519_key_id(private.public_key())

    def sign(self, tagmanifest: bytes) -> bytes:
        return self._private.sign(_signed_bytes(tagmanifest))

    def verifier(self) -> Ed25519Verifier:
        return Ed25519Verifier(self._private.public_key())


@dataclass(frozen=True)
class Signature:
    algorithm: str
    key_id: str
    signed_file: str
    value: bytes

    def render(self) -> bytes:
        return (f"Algorithm: {self.algorithm}\nKey-Id: {self.key_id}\n"
                f"Signed-File: {self.signed_file}\n"
                f"Signature: {base64.b64encode(self.value).decode()}\n").encode("ascii")

    @classmethod
    def parse(cls, raw: bytes) -> Signature:
        fields: dict[str, str] = {}
        try:
            for line in raw.decode("ascii").splitlines():
                if line.strip():
                    name, sep, value = line.partition(":")
                    if not sep or name.strip() in fields:
                        raise ValueError(line)
                    fields[name.strip()] = value.strip()
            value = base64.b64decode(fields["Signature"], validate=True)
            return cls(fields["Algorithm"], fields["Key-Id"], fields["Signed-File"], value)
        except (UnicodeDecodeError, ValueError, KeyError, binascii.Error) as exc:
            raise IntegrityError_(_("the signature file {name} is malformed",
                                    name=spec.SIGNATURE)) from exc


def sign(signer: Signer, tagmanifest: bytes) -> Signature:
    return Signature(signer.algorithm, signer.key_id, spec.TAGMANIFEST, signer.sign(tagmanifest))


def check(signature: Signature, tagmanifest: bytes, verifiers: list[Verifier]) -> Verifier:
    """Return the verifier that accepts ``signature``; raise IntegrityError_ otherwise."""
    if signature.signed_file != spec.TAGMANIFEST:
        raise IntegrityError_(_("the signature covers {name}, not the tag manifest",
                                name=signature.signed_file))
    candidates = [v for v in verifiers
                  if v.algorithm == signature.algorithm and v.key_id == signature.key_id]
    if not candidates:
        raise IntegrityError_(_("signed with an unknown key ({algorithm} {key_id}); "
                                "import with the sender's key",
                                algorithm=signature.algorithm, key_id=signature.key_id))
    for verifier in candidates:
        if verifier.verify(tagmanifest, signature.value):
            return verifier
    raise IntegrityError_(_("bad signature: the tag manifest was altered or signed with another key"))


def _read_key_file(path: Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise BridgeError(_("cannot read key file {path}: {error}", path=str(path),
                            error=exc.strerror or exc)) from exc


def load_signer(path: str | os.PathLike[str]) -> Signer:
    """An Ed25519 private key (PEM) or a shared HMAC secret file."""
    raw = _read_key_file(Path(path))
    if b"-----BEGIN" in raw:
        if b"PRIVATE KEY" not in raw:
            raise BridgeError(_("{path} is a public key; packing needs the private key or the "
                                "shared secret", path=str(path)))
        return Ed25519Signer(_load_private(raw, Path(path)))
    return HmacKey(raw.strip())


def load_verifier(path: str | os.PathLike[str]) -> Verifier:
    """An Ed25519 public or private key (PEM) or a shared HMAC secret file."""
    raw = _read_key_file(Path(path))
    if b"-----BEGIN" not in raw:
        return HmacKey(raw.strip())
    if b"PRIVATE KEY" in raw:
        return Ed25519Signer(_load_private(raw, Path(path))).verifier()
    try:
        public = serialization.load_pem_public_key(raw)
    except ValueError as exc:
        raise BridgeError(_("{path} is not a valid PEM key", path=str(path))) from exc
    if not isinstance(public, Ed25519PublicKey):
        raise BridgeError(_("{path} is not an Ed25519 key", path=str(path)))
    return Ed25519Verifier(public)


def _load_private(raw: bytes, path: Path) -> Ed25519PrivateKey:
    try:
        private = serialization.load_pem_private_key(raw, password=None)
    except (ValueError, TypeError) as exc:
        raise BridgeError(_("{path} is not a valid PEM key", path=str(path))) from exc
    if not isinstance(private, Ed25519PrivateKey):
        raise BridgeError(_("{path} is not an Ed25519 key", path=str(path)))
    return private


def _write_secret(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise BridgeError(_("{path} already exists; not overwriting a key", path=str(path))) from exc
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def generate(kind: str, prefix: str | os.PathLike[str]) -> list[Path]:
    """Write new key files; ``hmac`` -> PREFIX.key, ``ed25519`` -> PREFIX.pem + PREFIX.pub.pem."""
    base = Path(prefix)
    if kind == HMAC or kind == "hmac":
        target = base.with_name(base.name + ".key")
        _write_secret(target, os.urandom(32).hex().encode() + b"\n")
        return [target]
    if kind == ED25519:
        private = Ed25519PrivateKey.generate()
        secret = base.with_name(base.name + ".pem")
        public = base.with_name(base.name + ".pub.pem")
        _write_secret(secret, private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        public.write_bytes(private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        return [secret, public]
    raise BridgeError(_("unknown key type {kind}: use hmac or ed25519", kind=kind))
