"""An application's materials as diode objects: the files from the material
store, and a manifest that ties them to the case.

The one-window platforms keep the files applicants upload; the canonical
application carries only each material's name, type, size and SHA-256
(``common.schema.json#/$defs/material``). The hub reaches the files through a
*material store*: a folder the platforms write (a shared NAS, an object
store's mount) where each file is named by its SHA-256 in lower-case hex. The
hash is the key and the check at once: a file is sent only when its bytes
hash to what the application declared, so the internal side reviews exactly
what the applicant submitted.

``MaterialsBatch.prepare(sender, store, payload)`` makes one diode object per
distinct file (named ``<business no>-<nn>-<material name>``) and, last, the
manifest (``<business no>-materials.json``, kind ``batch``)::

    {"kind": "spatial_materials", "business_no": …, "tenant": …, …,
     "materials": [{"name", "type", "sha256", "size", "media_type", "object"}]}

The manifest holds no time and no session, so the same application sent
again (a retry after a crash, a replayed dead letter) makes the same bytes:
the internal side recognises a second copy by its hash.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from bdchub.core.errors import PermanentError, RecoverableError
from bdchub.core.i18n import _

from .manifest import MAX_NAME_BYTES
from .sender import DiodeSender, Outgoing

KIND = "spatial_materials"
SHA256 = re.compile(r"^[0-9a-f]{64}$")

# Where a material's name has no extension, its media type gives one, so the
# internal side (and its content policy) sees what the file claims to be.
EXTENSIONS = {
    "application/pdf": ".pdf", "image/vnd.dxf": ".dxf", "image/vnd.dwg": ".dwg",
    "application/zip": ".zip", "application/x-zip-compressed": ".zip",
    "application/gml+xml": ".gml", "application/geo+json": ".geojson",
    "image/tiff": ".tif", "image/png": ".png", "image/jpeg": ".jpg",
}
# The material fields the manifest repeats (the rest of a material is the
# platform's business).
FIELDS = ("name", "type", "sha256", "size", "media_type")


def object_name(business_no: str, index: int, name: Any, media_type: Any) -> str:
    """A plain file name for the material: one path component, no control
    characters, no leading dot, within the diode's name limit. Applicants
    name their materials; nothing of that name may become a path."""
    clean = unicodedata.normalize("NFC", str(name or ""))
    clean = "".join("_" if c in "/\\" or unicodedata.category(c) in ("Cc", "Cf") else c
                    for c in clean).strip().lstrip(".") or "material"
    suffix = PurePosixPath(clean).suffix
    if not suffix and isinstance(media_type, str) and media_type.lower() in EXTENSIONS:
        suffix = EXTENSIONS[media_type.lower()]
        clean += suffix
    head = f"{_plain(business_no)}-{index:02d}-"
    room = MAX_NAME_BYTES - len(head.encode()) - len(suffix.encode())
    stem = clean[: len(clean) - len(suffix)] if suffix else clean
    while len(stem.encode()) > room:
        stem = stem[:-1]
    return head + stem + suffix


def _plain(business_no: str) -> str:
    return re.sub(r"[^0-9A-Za-z_-]", "_", business_no)[:64] or "case"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb", buffering=0) as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class MaterialsBatch:
    """The objects of one application's materials, ready to send (close them after)."""

    business_no: str
    objects: list[Outgoing] = field(default_factory=list)
    listed: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def prepare(cls, sender: DiodeSender, store: Path, payload: Any, *, connector: str,
                business_no: str = "") -> MaterialsBatch:
        if not isinstance(payload, Mapping) or not isinstance(payload.get("materials"), list) \
                or not payload["materials"]:
            raise PermanentError(_("send_materials needs a payload with a non-empty list "
                                   "'materials'"), connector=connector, operation="send_materials")
        no = str(payload.get("business_no") or business_no or "")
        batch = cls(no)
        try:
            batch._files(sender, store, payload["materials"], connector)
            manifest = {**{k: v for k, v in payload.items() if k != "materials"},
                        "kind": KIND, "business_no": no, "materials": batch.listed}
            data = json.dumps(manifest, ensure_ascii=False, sort_keys=True,
                              separators=(",", ":")).encode("utf-8")
            batch.objects.append(sender.prepare_bytes(data, f"{_plain(no)}-materials.json"))
        except BaseException:
            batch.close()
            raise
        return batch

    def _files(self, sender: DiodeSender, store: Path, materials: list[Any],
               connector: str) -> None:
        seen: set[str] = set()
        for material in materials:
            sha = material.get("sha256") if isinstance(material, Mapping) else None
            if not isinstance(sha, str) or not SHA256.match(sha):
                raise PermanentError(_("material {name!r} has no SHA-256 to find it by",
                                       name=_name_of(material)), connector=connector,
                                     operation="send_materials")
            if sha in seen:  # the same file under two names crosses once
                continue
            seen.add(sha)
            path = store / sha
            if not path.is_file():
                # The platform may still be copying it in: worth another try later.
                raise RecoverableError(_("material {name!r} ({sha}) is not in the material "
                                         "store {store}", name=_name_of(material), sha=sha,
                                         store=str(store)), connector=connector,
                                       operation="send_materials")
            size = path.stat().st_size
            declared = material.get("size")
            if isinstance(declared, int) and declared != size:
                raise PermanentError(_("material {name!r}: the stored file has {size} bytes, the "
                                       "application declares {declared}",
                                       name=_name_of(material), size=size, declared=declared),
                                     connector=connector, operation="send_materials")
            name = object_name(self.business_no, len(self.listed) + 1, material.get("name"),
                               material.get("media_type"))
            obj = sender.prepare_file(path, name)
            self.objects.append(obj)
            m = obj.manifest
            actual = m.digest if m.hash_name == "sha256" else _sha256(path)
            if actual != sha:
                raise PermanentError(_("material {name!r}: the stored file's SHA-256 is {actual}, "
                                       "the application declares {declared}",
                                       name=_name_of(material), actual=actual, declared=sha),
                                     connector=connector, operation="send_materials")
            self.listed.append({**{k: material[k] for k in FIELDS if k in material},
                                "size": size, "object": m.name})

    def receipt(self, report: Any, passes: int) -> dict[str, Any]:
        """What the route keeps of the transfer: every object's reference, size and
        hash, and the FEC overhead it went with."""
        manifest = self.objects[-1].manifest
        refs = {o.manifest.name: o.manifest.ref for o in self.objects}
        return {
            "business_no": self.business_no,
            "materials": [{**m, "ref": refs[m["object"]]} for m in self.listed],
            "manifest": {"name": manifest.name, "ref": manifest.ref, "size": manifest.size,
                         "hash": f"{manifest.hash_name}:{manifest.digest}"},
            "objects": len(self.objects), "bytes": report.bytes,
            "datagrams": report.datagrams, "seconds": round(report.seconds, 3),
            "overhead": round(max(o.manifest.plan.overhead for o in self.objects), 4),
            "passes": passes,
        }

    def close(self) -> None:
        for obj in self.objects:
            obj.close()


def _name_of(material: Any) -> str:
    return str(material.get("name") or "?") if isinstance(material, Mapping) else "?"
