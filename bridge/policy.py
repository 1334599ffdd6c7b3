"""Content policy for objects entering the internal network (diode and ferry).

``ContentPolicy(config).inspect(path) -> Verdict(ok, reason, kind)`` decides
by content, never by the name alone: the type comes from magic bytes (and the
extension must agree with it), sizes are capped, archives are opened and
walked member by member (count, declared and actual uncompressed size,
compression ratio, path traversal, symlinks, encrypted or nested members,
incomplete shapefile sets), XML may not carry a DTD or entities (in whatever
encoding it is written: ``core.safexml``), and an optional external scanner
gets the last word. Whatever fails goes to quarantine with a reason file; every
verdict is audited.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shlex
import stat
import subprocess
import time
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path, PurePosixPath
from typing import Any

from bdchub.core.audit import AuditLog
from bdchub.core.errors import ConfigError, PolicyError
from bdchub.core.fsutil import fsync_dir
from bdchub.core.i18n import _
from bdchub.core.safexml import DtdScan

KINDS = ("zip", "pdf", "dxf", "dwg", "gml", "xml", "geojson", "json",
         "shp", "shx", "dbf", "png", "jpeg", "tiff")

# What a known extension promises; content of another kind is refused.
EXTENSION_KINDS: dict[str, frozenset[str]] = {
    ".zip": frozenset({"zip"}), ".pdf": frozenset({"pdf"}), ".dxf": frozenset({"dxf"}),
    ".dwg": frozenset({"dwg"}), ".gml": frozenset({"gml", "xml"}),
    ".xml": frozenset({"xml", "gml"}), ".geojson": frozenset({"geojson"}),
    ".json": frozenset({"json", "geojson"}), ".shp": frozenset({"shp"}),
    ".shx": frozenset({"shx"}), ".dbf": frozenset({"dbf"}), ".png": frozenset({"png"}),
    ".jpg": frozenset({"jpeg"}), ".jpeg": frozenset({"jpeg"}),
    ".tif": frozenset({"tiff"}), ".tiff": frozenset({"tiff"}),
}
# Small text companions of a shapefile set; allowed inside archives only.
SIDECAR_EXTENSIONS = frozenset({".prj", ".cpg", ".qix", ".sbn", ".sbx", ".txt", ".md"})
ARCHIVE_KINDS = frozenset({"zip"})
GEOJSON_TYPES = frozenset({"FeatureCollection", "Feature", "Point", "MultiPoint", "LineString",
                           "MultiLineString", "Polygon", "MultiPolygon", "GeometryCollection"})

_HEAD = 64 * 1024
_DXF_ASCII = re.compile(rb"^\s*(?:999\s*\r?\n[^\n]*\n\s*)*0\s*\r?\n\s*SECTION\b")
_DWG = re.compile(rb"^AC(?:10\d\d|1\.\d\d|2\.\d\d)")
_DBF_VERSIONS = frozenset({0x02, 0x03, 0x04, 0x05, 0x30, 0x31, 0x32, 0x43, 0x63, 0x83,
                           0x8B, 0x8E, 0xCB, 0xE5, 0xF5, 0xFB})
_RATIO_FLOOR = 1 << 20  # ratios of tiny members say nothing


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str
    kind: str

    def __bool__(self) -> bool:
        return self.ok


@dataclass(frozen=True)
class PolicyConfig:
    allowed_kinds: frozenset[str] = frozenset(KINDS)
    max_size: int = 4 << 30
    max_members: int = 10_000
    max_total_uncompressed: int = 8 << 30
    max_member_size: int = 4 << 30
    max_ratio: float = 100.0
    max_json_size: int = 256 << 20
    check_members: bool = True  # archive members must be allowed kinds too
    allow_nested_archives: bool = False
    scanner: tuple[str, ...] = ()
    scanner_timeout: float = 300.0
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> PolicyConfig:
        if not data:
            return cls()
        known = {f.name for f in fields(cls)} - {"extra"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(_("unknown content policy keys: {keys}", keys=", ".join(unknown)))
        values = dict(data)
        if "allowed_kinds" in values:
            kinds = frozenset(values["allowed_kinds"])
            bad = sorted(kinds - set(KINDS))
            if bad:
                raise ConfigError(_("unknown content kinds {kinds}; known: {known}",
                                    kinds=", ".join(bad), known=", ".join(KINDS)))
            values["allowed_kinds"] = kinds
        if isinstance(values.get("scanner"), str):
            values["scanner"] = tuple(shlex.split(values["scanner"]))
        elif "scanner" in values:
            values["scanner"] = tuple(values["scanner"] or ())
        return cls(**values)


class _Refuse(Exception):
    def __init__(self, reason: str, kind: str = ""):
        super().__init__(reason)
        self.reason, self.kind = reason, kind


def _sniff(head: bytes, ext: str) -> str:
    """Kind from the first bytes (plus the extension where magic is weak)."""
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if b"%PDF-" in head[:1024]:
        return "pdf"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if _DWG.match(head):
        return "dwg"
    if head.startswith(b"AutoCAD Binary DXF\r\n\x1a\x00") or _DXF_ASCII.match(head):
        return "dxf"
    if head[:4] == b"\x00\x00\x27\x0a" and len(head) >= 100:
        return "shx" if ext == ".shx" else "shp"
    if ext == ".dbf" and len(head) >= 32 and head[0] in _DBF_VERSIONS \
            and 1 <= head[2] <= 12 and 1 <= head[3] <= 31:
        return "dbf"
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    if text.startswith((b"{", b"[")):
        return "json"
    if text.startswith(b"<"):
        return "xml"
    return ""


def _describe(kind: str) -> str:
    return kind or _("unknown")


class ContentPolicy:
    """Decide whether a file may enter the internal network. Reusable by the
    diode and the ferry; ``inspect`` never raises for bad content."""

    def __init__(self, config: PolicyConfig | Mapping[str, Any] | None = None, *,
                 audit: AuditLog | None = None):
        self.config = config if isinstance(config, PolicyConfig) \
            else PolicyConfig.from_mapping(config)
        self.audit = audit

    # -- public --------------------------------------------------------------
    def inspect(self, path: str | os.PathLike[str], *, name: str | None = None,
                object_id: str = "") -> Verdict:
        p = Path(path)
        try:
            kind = self._inspect(p, name or p.name)
            verdict = Verdict(True, "", kind)
        except _Refuse as refusal:
            verdict = Verdict(False, refusal.reason, refusal.kind)
        if self.audit is not None:
            self.audit.record("filtered", object_id or (name or p.name), ok=verdict.ok,
                              kind=verdict.kind, reason=verdict.reason, name=name or p.name)
        return verdict

    def enforce(self, path: str | os.PathLike[str], **kwargs: Any) -> Verdict:
        """Like ``inspect`` but raise PolicyError when refused."""
        verdict = self.inspect(path, **kwargs)
        if not verdict.ok:
            raise PolicyError(_("content policy refused {name}: {reason}",
                                name=kwargs.get("name") or Path(path).name,
                                reason=verdict.reason))
        return verdict

    # -- checks --------------------------------------------------------------
    def _inspect(self, p: Path, name: str) -> str:
        cfg = self.config
        try:
            st = os.lstat(p)
        except OSError as exc:
            raise _Refuse(_("cannot read the file: {error}", error=exc.strerror)) from exc
        if stat.S_ISLNK(st.st_mode):
            raise _Refuse(_("symbolic links are not accepted"))
        if not stat.S_ISREG(st.st_mode):
            raise _Refuse(_("not a regular file"))
        if st.st_size == 0:
            raise _Refuse(_("empty file"))
        if st.st_size > cfg.max_size:
            raise _Refuse(_("file is {size} bytes, the limit is {limit}",
                            size=st.st_size, limit=cfg.max_size))
        ext = PurePosixPath(name).suffix.lower()
        with p.open("rb") as fh:
            head = fh.read(_HEAD)
        kind = _sniff(head, ext)
        kind = self._check_kind(kind, ext, head, p, st.st_size)
        if kind == "zip":
            self._check_zip(p, st.st_size)
        self._scan(p, kind)
        return kind

    def _check_kind(self, kind: str, ext: str, head: bytes, p: Path, size: int) -> str:
        cfg = self.config
        if kind == "json":
            kind = self._check_json(p, size)
        elif kind == "xml":
            kind = self._check_xml(p, head)
        if not kind:
            raise _Refuse(_("file type not recognised from its content"))
        if ext in EXTENSION_KINDS and kind not in EXTENSION_KINDS[ext]:
            raise _Refuse(_("extension {ext} does not match the content ({kind})",
                            ext=ext, kind=kind), kind)
        if kind not in cfg.allowed_kinds:
            raise _Refuse(_("file type {kind} is not allowed", kind=kind), kind)
        return kind

    def _check_json(self, p: Path, size: int) -> str:
        if size > self.config.max_json_size:
            raise _Refuse(_("JSON file is {size} bytes, the limit is {limit}",
                            size=size, limit=self.config.max_json_size), "json")
        try:
            with p.open("rb") as fh:
                data = json.loads(fh.read().decode("utf-8-sig"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise _Refuse(_("invalid JSON: {error}", error=str(exc)[:200]), "json") from exc
        if isinstance(data, dict) and data.get("type") in GEOJSON_TYPES:
            return "geojson"
        return "json"

    def _check_xml(self, p: Path, head: bytes) -> str:
        # A DTD can define entities (billion laughs) or point outside (XXE);
        # nothing we accept needs one, so look for it through the whole file.
        scan = DtdScan()
        with p.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                if scan.feed(chunk):
                    break
        if scan.close():
            raise _Refuse(_("XML with a DTD or entity declarations is not accepted"), "xml")
        return "gml" if b"http://www.opengis.net/gml" in head else "xml"

    def _check_zip(self, p: Path, size: int) -> None:
        cfg = self.config
        try:
            zf = zipfile.ZipFile(p)
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise _Refuse(_("corrupt archive: {error}", error=exc), "zip") from exc
        with zf:
            infos = zf.infolist()
            if len(infos) > cfg.max_members:
                raise _Refuse(_("archive has {count} members, the limit is {limit}",
                                count=len(infos), limit=cfg.max_members), "zip")
            declared = sum(i.file_size for i in infos)
            if declared > cfg.max_total_uncompressed:
                raise _Refuse(_("archive expands to {size} bytes, the limit is {limit}",
                                size=declared, limit=cfg.max_total_uncompressed), "zip")
            if declared > _RATIO_FLOOR and declared > cfg.max_ratio * size:
                raise _Refuse(_("archive compression ratio {ratio:.0f} exceeds {limit:.0f} "
                                "(zip bomb?)", ratio=declared / size, limit=cfg.max_ratio), "zip")
            stems: dict[str, set[str]] = {}
            for info in infos:
                self._check_member(info)
                if info.is_dir():
                    continue
                member = PurePosixPath(info.filename)
                stems.setdefault(str(member.with_suffix("")).lower(), set()).add(
                    member.suffix.lower())
            for stem, exts in sorted(stems.items()):
                if ".shp" in exts and not {".shx", ".dbf"} <= exts:
                    raise _Refuse(_("incomplete shapefile set {stem}.shp: needs .shx and .dbf",
                                    stem=stem), "zip")
            self._read_members(zf, infos)

    def _check_member(self, info: zipfile.ZipInfo) -> None:
        cfg = self.config
        name = info.filename
        parts = PurePosixPath(name.replace("\\", "/")).parts
        if ("\\" in name or name.startswith("/") or re.match(r"^[A-Za-z]:", name)
                or ".." in parts or "\x00" in name):
            raise _Refuse(_("archive member {name!r} escapes the target directory",
                            name=name), "zip")
        mode = info.external_attr >> 16
        if info.create_system == 3 and stat.S_ISLNK(mode):
            raise _Refuse(_("archive member {name!r} is a symbolic link", name=name), "zip")
        if info.flag_bits & 0x1:
            raise _Refuse(_("archive member {name!r} is encrypted and cannot be checked",
                            name=name), "zip")
        if info.file_size > cfg.max_member_size:
            raise _Refuse(_("archive member {name!r} is {size} bytes, the limit is {limit}",
                            name=name, size=info.file_size, limit=cfg.max_member_size), "zip")
        if info.file_size > _RATIO_FLOOR and \
                info.file_size > cfg.max_ratio * max(info.compress_size, 1):
            raise _Refuse(_("archive member {name!r} compression ratio exceeds {limit:.0f} "
                            "(zip bomb?)", name=name, limit=cfg.max_ratio), "zip")

    def _read_members(self, zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo]) -> None:
        """Decompress every member once: the headers may lie, the stream may not.
        zipfile stops at the declared size and checks the CRC, so a member that
        inflates beyond what it declared ends up as a corrupt archive."""
        cfg = self.config
        total = 0
        for info in infos:
            if info.is_dir():
                continue
            ext = PurePosixPath(info.filename).suffix.lower()
            head, scan = b"", DtdScan()
            try:
                with zf.open(info) as fh:
                    while chunk := fh.read(1 << 20):
                        if len(head) < 4096:
                            head += chunk[:4096 - len(head)]
                        scan.feed(chunk)
                        total += len(chunk)
                        if total > cfg.max_total_uncompressed:
                            raise _Refuse(_("archive expands beyond {limit} bytes",
                                            limit=cfg.max_total_uncompressed), "zip")
            except (zipfile.BadZipFile, OSError, EOFError, ValueError,
                    NotImplementedError) as exc:
                raise _Refuse(_("corrupt archive member {name!r}: {error}",
                                name=info.filename, error=exc), "zip") from exc
            if not cfg.check_members:
                continue
            kind = _sniff(head, ext)
            if kind in ARCHIVE_KINDS and not cfg.allow_nested_archives:
                raise _Refuse(_("nested archive {name!r} is not accepted",
                                name=info.filename), "zip")
            if kind == "xml" and scan.close():
                raise _Refuse(_("archive member {name!r}: XML with a DTD or entity "
                                "declarations is not accepted", name=info.filename), "zip")
            if ext in SIDECAR_EXTENSIONS:
                continue
            # Members are not parsed; the extension refines a text sniff.
            if kind == "json" and ext == ".geojson":
                kind = "geojson"
            elif kind == "xml" and (ext == ".gml" or b"http://www.opengis.net/gml" in head):
                kind = "gml"
            if not kind or kind not in cfg.allowed_kinds:
                raise _Refuse(_("archive member {name!r} has a type that is not allowed ({kind})",
                                name=info.filename, kind=_describe(kind)), "zip")
            if ext in EXTENSION_KINDS and kind not in EXTENSION_KINDS[ext]:
                raise _Refuse(_("archive member {name!r}: extension does not match the "
                                "content ({kind})", name=info.filename, kind=kind), "zip")

    def _scan(self, p: Path, kind: str) -> None:
        cfg = self.config
        if not cfg.scanner:
            return
        try:
            proc = subprocess.run([*cfg.scanner, str(p)], capture_output=True,
                                  timeout=cfg.scanner_timeout, check=False)
        except (OSError, subprocess.SubprocessError) as exc:
            # Fail closed: an object the scanner could not look at is not let in.
            raise _Refuse(_("scanner could not run: {error}", error=exc), kind) from exc
        if proc.returncode != 0:
            out = (proc.stdout or proc.stderr or b"").decode("utf-8", "replace").strip()
            raise _Refuse(_("scanner refused (exit {code}): {output}", code=proc.returncode,
                            output=out.splitlines()[0][:200] if out else "-"), kind)


def move_durably(src: str | os.PathLike[str], dest: str | os.PathLike[str]) -> None:
    """Rename ``src`` to ``dest`` so that after a crash either the old or the
    complete new file exists. Across file systems: copy, fsync, then rename."""
    src, dest = Path(src), Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(src, dest)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        tmp = dest.with_name(f".{dest.name}.part")
        with src.open("rb") as fin, tmp.open("wb") as fout:
            while chunk := fin.read(1 << 20):
                fout.write(chunk)
            fout.flush()
            os.fsync(fout.fileno())
        os.replace(tmp, dest)
        src.unlink()
    fsync_dir(dest.parent)


def unique_path(folder: Path, name: str, tag: str) -> Path:
    """``folder/name``, or ``folder/stem~tag.ext`` (then ~tag-2 …) if taken."""
    candidate = folder / name
    if not candidate.exists():
        return candidate
    stem, suffix = PurePosixPath(name).stem, PurePosixPath(name).suffix
    for i in range(1, 10_000):
        candidate = folder / f"{stem}~{tag}{'' if i == 1 else f'-{i}'}{suffix}"
        if not candidate.exists():
            return candidate
    raise PolicyError(_("no free name for {name} in {folder}", name=name, folder=str(folder)))


def quarantine(path: str | os.PathLike[str], reason: str | Verdict,
               quarantine_dir: str | os.PathLike[str], *, name: str | None = None,
               audit: AuditLog | None = None, object_id: str = "",
               meta: Mapping[str, Any] | None = None) -> Path:
    """Move a refused file into quarantine next to a ``.reason.json`` file."""
    src = Path(path)
    verdict = reason if isinstance(reason, Verdict) else Verdict(False, reason, "")
    qdir = Path(quarantine_dir)
    qdir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    dest = unique_path(qdir, f"{stamp}-{name or src.name}", object_id.replace("/", "-") or "q")
    info = {"reason": verdict.reason, "kind": verdict.kind, "name": name or src.name,
            "object": object_id, "time": time.time(), **(dict(meta or {}))}
    reason_file = dest.with_name(dest.name + ".reason.json")
    tmp = reason_file.with_name("." + reason_file.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        json.dump(info, fh, ensure_ascii=False, indent=2)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, reason_file)
    if src.exists() or src.is_symlink():
        move_durably(src, dest)
    if audit is not None:
        audit.record("quarantined", object_id or info["name"], reason=verdict.reason,
                     kind=verdict.kind, name=info["name"], path=str(dest))
    return dest
