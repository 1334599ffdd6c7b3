"""BagIt bags for the ferry: made with the ``bagit`` library, read strictly.

Packing uses ``bagit.make_bag`` (payload manifest, Payload-Oxum, tag
manifest), bumps ``bagit.txt`` to RFC 8493's version 1.0, regenerates the tag
manifest with ``Bag.save`` and adds the signature as a tag file.

Importing parses the tag files twice on purpose: once strictly here (every
manifest line must be well formed, every path safe, nothing listed twice),
once with ``bagit.Bag`` (the reference reading of version, encoding,
bag-info and manifests). The two readings must agree. Checksums are not
computed by bagit: the importer streams them (see ``stream``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import bagit

from bdchub.core.errors import BridgeError, IntegrityError_
from bdchub.core.i18n import _

from . import sign, spec
from .ledger import BatchKey

logging.getLogger("bagit").setLevel(logging.ERROR)

_LINE = re.compile(r"^([0-9A-Fa-f]{64})[ \t]+\*?(.+)$")
_ENCODED = re.compile(r"%0[AaDd]")


@dataclass(frozen=True)
class BagHeader:
    """The fields of bag-info.txt the ferry relies on, parsed and checked."""

    sender: str
    batch_id: str
    sequence: int
    created: datetime
    expires: datetime
    group_id: str
    disc_index: int
    disc_count: int
    oxum_bytes: int
    oxum_files: int

    def key(self) -> BatchKey:
        return BatchKey(self.batch_id, self.sender, self.sequence, self.group_id,
                        self.disc_index, self.disc_count)

    @classmethod
    def from_info(cls, info: dict[str, object]) -> BagHeader:
        values: dict[str, str] = {}
        for name in spec.REQUIRED_INFO:
            value = info.get(name)
            if value is None:
                raise IntegrityError_(_("bag-info.txt lacks {field}", field=name))
            if not isinstance(value, str):
                raise IntegrityError_(_("bag-info.txt lists {field} more than once", field=name))
            values[name] = value.strip()
        try:
            if values[spec.F_FORMAT] != spec.FORMAT:
                raise ValueError(spec.F_FORMAT)
            sender = values[spec.F_SENDER]
            if not spec.SENDER_RE.match(sender):
                raise ValueError(spec.F_SENDER)
            for field in (spec.F_BATCH, spec.F_GROUP):
                if not spec.UUID_RE.match(values[field]):
                    raise ValueError(field)
            m = re.fullmatch(r"(\d{1,4}) of (\d{1,4})", values[spec.F_COUNT])
            if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
                raise ValueError(spec.F_COUNT)
            o = re.fullmatch(r"(\d{1,15})\.(\d{1,9})", values[spec.F_OXUM])
            if not o:
                raise ValueError(spec.F_OXUM)
            if not re.fullmatch(r"[1-9]\d{0,17}", values[spec.F_SEQUENCE]):
                raise ValueError(spec.F_SEQUENCE)
            created = spec.parse_time(values[spec.F_CREATED])
            expires = spec.parse_time(values[spec.F_EXPIRES])
        except ValueError as exc:
            field = str(exc) if str(exc) in spec.REQUIRED_INFO else "Ferry-Created/Ferry-Expires"
            raise IntegrityError_(_("bag-info.txt has an invalid {field}", field=field)) from exc
        if expires <= created:
            raise IntegrityError_(_("bag-info.txt expires before it was created"))
        return cls(sender=sender, batch_id=values[spec.F_BATCH],
                   sequence=int(values[spec.F_SEQUENCE]), created=created, expires=expires,
                   group_id=values[spec.F_GROUP], disc_index=int(m.group(1)),
                   disc_count=int(m.group(2)), oxum_bytes=int(o.group(1)),
                   oxum_files=int(o.group(2)))


def header_info(*, sender: str, batch_id: str, sequence: int, created: datetime,
                expires: datetime, group_id: str, disc_index: int, disc_count: int
                ) -> dict[str, str]:
    """bag-info.txt fields for one disc (bagit adds Payload-Oxum and Bagging-Date)."""
    return {
        spec.F_FORMAT: spec.FORMAT,
        spec.F_SENDER: sender,
        spec.F_BATCH: batch_id,
        spec.F_SEQUENCE: str(sequence),
        spec.F_CREATED: spec.format_time(created),
        spec.F_EXPIRES: spec.format_time(expires),
        spec.F_GROUP: group_id,
        spec.F_COUNT: f"{disc_index} of {disc_count}",
        "Source-Organization": sender,
        "External-Identifier": batch_id,
        "Bagging-Date": created.date().isoformat(),
        "Bag-Software-Agent": f"bdc-hub ferry ({spec.FORMAT}; bagit.py {bagit.VERSION})",
    }


def make(bag_dir: Path, info: dict[str, str], signer: sign.Signer) -> str:
    """Turn ``bag_dir`` (holding messages/ and files/) into a signed bag.

    Returns the SHA-256 of the tag manifest, which identifies the bag's content.
    """
    try:
        bagit.make_bag(str(bag_dir), dict(info), processes=1, checksums=["sha256"])
        (bag_dir / spec.BAGIT_TXT).write_text(
            f"BagIt-Version: {spec.BAGIT_VERSION}\nTag-File-Character-Encoding: UTF-8\n",
            encoding="utf-8")
        bagit.Bag(str(bag_dir)).save()
    except (bagit.BagError, OSError, RuntimeError) as exc:
        raise BridgeError(_("cannot make the bag in {path}: {error}", path=str(bag_dir),
                            error=exc)) from exc
    return sign_bag(bag_dir, signer)


def sign_bag(bag_dir: Path, signer: sign.Signer) -> str:
    """(Re)write the signature tag file over the bag's tag manifest."""
    tagmanifest = (bag_dir / spec.TAGMANIFEST).read_bytes()
    (bag_dir / spec.SIGNATURE).write_bytes(sign.sign(signer, tagmanifest).render())
    return hashlib.sha256(tagmanifest).hexdigest()


def parse_manifest(raw: bytes, name: str) -> dict[str, str]:
    """Strict reading of a BagIt manifest: ``{path: sha256}`` in file order."""
    entries: dict[str, str] = {}
    folded: set[str] = set()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise IntegrityError_(_("{name} is not UTF-8", name=name)) from exc
    if text.startswith("\ufeff"):
        raise IntegrityError_(_("{name} starts with a byte-order mark", name=name))
    for lineno, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        m = _LINE.match(line)
        if not m:
            raise IntegrityError_(_("{name} line {line}: not 'checksum path'", name=name,
                                    line=lineno))
        path = _ENCODED.sub(lambda x: {"a": "\n", "d": "\r"}[x.group(0)[2].lower()], m.group(2))
        key = spec.fold(path)
        if path in entries or key in folded:
            raise IntegrityError_(_("{name} lists {path!r} twice (names differing only in "
                                    "case count as one)", name=name, path=path))
        entries[path] = m.group(1).lower()
        folded.add(key)
    return entries


def check_tag_files(tags: dict[str, bytes]) -> dict[str, str]:
    """Check the tag manifest against the tag files; return the payload manifest."""
    listed = parse_manifest(tags[spec.TAGMANIFEST], spec.TAGMANIFEST)
    if set(listed) != spec.COVERED_TAG_FILES:
        raise IntegrityError_(_("the tag manifest must cover exactly {names}; it lists {listed}",
                                names=", ".join(sorted(spec.COVERED_TAG_FILES)),
                                listed=", ".join(sorted(listed)) or "-"))
    for name, digest in listed.items():
        if hashlib.sha256(tags[name]).hexdigest() != digest:
            raise IntegrityError_(_("{name} was altered: its checksum does not match the tag "
                                    "manifest", name=name))
    payload = parse_manifest(tags[spec.MANIFEST], spec.MANIFEST)
    for path in payload:
        spec.check_payload_path(path)
    return payload


def read_with_bagit(bag_dir: Path, payload: dict[str, str]) -> tuple[BagHeader, bagit.Bag]:
    """Let bagit read the tag files in ``bag_dir``; its reading must match ours."""
    try:
        bag = bagit.Bag(str(bag_dir))
    except Exception as exc:  # bagit parsing signed but untrusted text: any failure refuses
        raise IntegrityError_(_("not a valid BagIt bag: {error}", error=exc)) from exc
    if bag.version_info != (1, 0) or bag.encoding.upper() != "UTF-8":
        raise IntegrityError_(_("unsupported bag: BagIt {version}, encoding {encoding}",
                                version=".".join(map(str, bag.version_info)),
                                encoding=bag.encoding))
    if bag.algorithms != ["sha256"]:
        raise IntegrityError_(_("unsupported manifests: {algorithms} (only sha256 is used)",
                                algorithms=", ".join(bag.algorithms)))
    theirs = {p.replace(os.sep, "/"): h["sha256"].lower()
              for p, h in bag.payload_entries().items()}
    if theirs != payload:
        raise IntegrityError_(_("the payload manifest has entries bagit reads differently"))
    header = BagHeader.from_info(bag.info)
    if header.oxum_files != len(payload):
        raise IntegrityError_(_("Payload-Oxum counts {n} files but the manifest lists {m}",
                                n=header.oxum_files, m=len(payload)))
    return header, bag


def validate_extracted(bag: bagit.Bag) -> None:
    """bagit's own structure, Payload-Oxum and completeness check, once the payload is staged."""
    try:
        bag.validate(completeness_only=True)
    except (bagit.BagError, ValueError, UnicodeError) as exc:
        raise IntegrityError_(_("bag incomplete after extraction: {error}", error=exc)) from exc
