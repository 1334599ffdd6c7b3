"""Test rig for the ferry: keys, a packer and an importer in one folder, and disc tampering.

Used by tests/bridge/test_ferry_*.py and bench/bridge_ferry.py; handy for
integration tests that need a real disc image without a burner.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bdchub.core.audit import AuditLog

from . import bag, image, sign, spec
from .image import DiscImage
from .importer import FerryImporter
from .packer import FerryPacker, PackReport, collect
from .sequence import SequenceFile


class FerryRig:
    """Everything a pack -> import round trip needs, under ``root``."""

    def __init__(self, root: Path, scheme: str = sign.HMAC, sender: str = "county-320684"):
        self.root = root
        self.src = root / "src"
        self.out = root / "out"
        self.inbox = root / "inbox"
        self.quarantine = root / "quarantine"
        self.ledger_path = root / "ledger.sqlite3"
        self.sender = sender
        self.audit = AuditLog(root / "audit.jsonl")
        self.sequence = SequenceFile(root / "sequence.json")
        self.src.mkdir(parents=True, exist_ok=True)
        if scheme == sign.ED25519:
            private = Ed25519PrivateKey.generate()
            self.signer: sign.Signer = sign.Ed25519Signer(private)
            self.verifier: sign.Verifier = sign.Ed25519Signer(private).verifier()
        else:
            key = sign.HmacKey(os.urandom(32))
            self.signer, self.verifier = key, key

    def write(self, relpath: str, data: bytes | str) -> Path:
        path = self.src / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        return path

    def packer(self, **kw: Any) -> FerryPacker:
        kw.setdefault("medium_size", 4 * 1024 * 1024)
        return FerryPacker(signer=kw.pop("signer", self.signer), sender=kw.pop("sender", self.sender),
                           sequence=self.sequence, audit=self.audit, **kw)

    def pack(self, *sources: Path, **kw: Any) -> PackReport:
        out = kw.pop("out", self.out)
        return self.packer(**kw).pack(collect(sources or (self.src,)), out)

    def importer(self, **kw: Any) -> FerryImporter:
        kw.setdefault("verifiers", [self.verifier])
        kw.setdefault("durable", False)
        return FerryImporter(audit=self.audit, inbox=self.inbox, quarantine=self.quarantine,
                             ledger=self.ledger_path, **kw)

    def inbox_entries(self) -> list[Path]:
        return sorted(self.inbox.iterdir()) if self.inbox.exists() else []

    def staging_entries(self) -> list[Path]:
        staging = self.inbox.with_name(f".{self.inbox.name}.staging")
        return sorted(staging.iterdir()) if staging.exists() else []


def patch_file(image_path: Path, bag_path: str, transform: Callable[[bytes], bytes]) -> None:
    """Rewrite one file's bytes inside an image in place (same length), as an attacker would."""
    with DiscImage(image_path) as disc:
        f = disc.files[bag_path]
        old = disc.read(f)
    new = transform(old)
    if len(new) != len(old):
        raise ValueError("patch must keep the length")
    fd = os.open(image_path, os.O_RDWR)
    try:
        pos = 0
        for offset, length in f.extents:
            os.pwrite(fd, new[pos:pos + length], offset)
            pos += length
    finally:
        os.close(fd)


def rewrite_tag_manifest(bag_dir: Path) -> None:
    """Recompute the tag manifest over the covered tag files (what a forger without the key can do)."""
    lines = [f"{hashlib.sha256((bag_dir / n).read_bytes()).hexdigest()} {n}\n"
             for n in sorted(spec.COVERED_TAG_FILES)]
    (bag_dir / spec.TAGMANIFEST).write_text("".join(lines), encoding="utf-8")


def image_bag_dir(bag_dir: Path, out: Path, udf: bool = True) -> Path:
    """Master any folder as a ferry-style image, names exactly as they are on disk."""
    entries = [image.Entry(p.relative_to(bag_dir).as_posix(), p.stat().st_size, p)
               for p in sorted(bag_dir.rglob("*")) if p.is_file()]
    image.write(image.build(entries, volume_id="CRAFTED", udf=udf), out)
    return out


def resign(bag_dir: Path, signer: sign.Signer) -> None:
    rewrite_tag_manifest(bag_dir)
    bag.sign_bag(bag_dir, signer)


def unpack(image_path: Path, dest: Path) -> Path:
    """Copy every file of an image into ``dest`` without any checking (test use only)."""
    with DiscImage(image_path) as disc:
        for path, f in disc.files.items():
            target = dest.joinpath(*path.split("/"))
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(disc.read(f, limit=1 << 40))
    return dest


def manifest_line(path: str, data: bytes) -> str:
    return f"{hashlib.sha256(data).hexdigest()}  {path}\n"
