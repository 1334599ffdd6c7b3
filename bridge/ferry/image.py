"""Disc images with pycdlib: build them sized to the medium, read them without mounting.

Layout: ISO 9660 (interchange level 4, so payload trees may nest deeper than
8 levels) + Joliet level 3 + UDF 2.60. Joliet and UDF carry the real names
(Chinese included; Joliet allows 64 UTF-16 units per name, which the path
rules enforce); the plain ISO 9660 names are generated (``F000001``) because
level-1 names cannot hold them. Rock Ridge is left out: it would only add
symlinks and permissions, which the ferry never wants from a disc.

The importer reads the Joliet tree and each file's byte extents through
pycdlib, then streams the bytes itself (``stream``).
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pycdlib
from pycdlib.pycdlibexception import PyCdlibException

from bdchub.core.errors import BridgeError, IntegrityError_, PolicyError
from bdchub.core.fsutil import fsync_dir
from bdchub.core.i18n import _

from . import spec

_ISO_TAG_NAMES = {
    spec.BAGIT_TXT: "BAGIT.TXT",
    spec.BAG_INFO: "BAGINFO.TXT",
    spec.MANIFEST: "MANIFEST.TXT",
    spec.TAGMANIFEST: "TAGMAN.TXT",
    spec.SIGNATURE: "SIGNATUR.TXT",
}


@dataclass(frozen=True)
class Entry:
    """One file to put on a disc: its bag path, size, and where its bytes are."""

    path: str
    size: int
    source: Path | None = None  # None: only for sizing, never written


def build(entries: Iterable[Entry], *, volume_id: str, udf: bool = True) -> pycdlib.PyCdlib:
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=4, joliet=3, udf="2.60" if udf else None,
            vol_ident=volume_id[:16], app_ident_str="bdc-hub ferry",
            sys_ident="BDC-HUB")
    dirs: dict[str, str] = {"": "/"}
    counters: dict[str, int] = {}

    def iso_name(parent: str, prefix: str) -> str:
        counters[parent] = counters.get(parent, 0) + 1
        return f"{prefix}{counters[parent]:06d}"

    def ensure_dir(path: str) -> str:
        if path in dirs:
            return dirs[path]
        parent, _sep, _name = path.rpartition("/")
        parent_iso = ensure_dir(parent)
        iso_path = parent_iso.rstrip("/") + "/" + iso_name(parent_iso, "D")
        kw = {"udf_path": "/" + path} if udf else {}
        iso.add_directory(iso_path, joliet_path="/" + path, **kw)
        dirs[path] = iso_path
        return iso_path

    for entry in sorted(entries, key=lambda e: e.path):
        parent, _sep, name = entry.path.rpartition("/")
        parent_iso = ensure_dir(parent)
        short = _ISO_TAG_NAMES.get(entry.path) or iso_name(parent_iso, "F")
        iso_path = parent_iso.rstrip("/") + "/" + short + ";1"
        kw = {"udf_path": "/" + entry.path} if udf else {}
        if entry.source is None:
            iso.add_fp(io.BytesIO(), entry.size, iso_path, joliet_path="/" + entry.path, **kw)
        else:
            iso.add_file(str(entry.source), iso_path, joliet_path="/" + entry.path, **kw)
    return iso


def size_of(iso: pycdlib.PyCdlib) -> int:
    """Exact size in bytes the image will have when written."""
    iso.force_consistency()
    return int(iso.pvd.space_size) * int(iso.logical_block_size)


def write(iso: pycdlib.PyCdlib, out: Path,
          progress: Callable[[int, int], None] | None = None) -> int:
    """Master ``iso`` to ``out`` atomically (temporary name, fsync, rename); return its size."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial")
    cb = (lambda done, total, _opaque: progress(done, total)) if progress else None
    try:
        with open(tmp, "wb") as fh:
            iso.write_fp(fh, blocksize=4 * 1024 * 1024, progress_cb=cb)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, out)
        fsync_dir(out.parent)
    except (OSError, PyCdlibException) as exc:
        tmp.unlink(missing_ok=True)
        raise BridgeError(_("cannot write image {path}: {error}", path=str(out),
                            error=exc)) from exc
    finally:
        iso.close()
    return out.stat().st_size


@dataclass(frozen=True)
class DiscFile:
    """A file found on the disc: bag path and the byte runs holding its data."""

    path: str
    size: int
    extents: tuple[tuple[int, int], ...]


class DiscImage:
    """An image opened read-only; ``files`` maps bag paths (Joliet names) to DiscFile."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.files: dict[str, DiscFile] = {}
        self._iso = pycdlib.PyCdlib()
        try:
            self.fd = os.open(self.path, os.O_RDONLY)
        except OSError as exc:
            raise BridgeError(_("cannot open image {path}: {error}", path=str(self.path),
                                error=exc.strerror or exc)) from exc
        try:
            self.size = os.lseek(self.fd, 0, os.SEEK_END)
            self._fh = open(self.path, "rb")  # closed in close()
            # Parsing untrusted bytes: any exception pycdlib lets out means "not a valid image".
            try:
                self._iso.open_fp(self._fh)
            except Exception as exc:
                raise IntegrityError_(_("{path} is not a readable ISO 9660 image: {error}",
                                        path=str(self.path), error=exc)) from exc
            if not self._iso.has_joliet():
                raise IntegrityError_(_("{path} has no Joliet names: not a ferry disc",
                                        path=str(self.path)))
            self._scan("")
        except BaseException:
            self.close()
            raise

    def _scan(self, folder: str) -> None:
        seen: set[str] = set()
        try:
            children = list(self._iso.list_children(joliet_path="/" + folder))
        except Exception as exc:  # untrusted directory structure
            raise IntegrityError_(_("cannot read folder {folder!r} on the disc: {error}",
                                    folder=folder or "/", error=exc)) from exc
        for child in children:
            if child is None or child.is_dot() or child.is_dotdot():
                continue
            try:
                name = child.file_identifier().decode("utf-16-be")
            except UnicodeDecodeError as exc:
                raise PolicyError(_("a name in {folder!r} on the disc is not valid UTF-16",
                                    folder=folder or "/")) from exc
            path = f"{folder}/{name}" if folder else name
            problem = spec.check_component(name)
            if problem:
                raise PolicyError(_("unsafe name {path!r} on the disc: {reason}",
                                    path=path, reason=problem))
            if spec.fold(name) in seen:
                raise PolicyError(_("the disc holds {path!r} twice", path=path))
            seen.add(spec.fold(name))
            if child.is_dir():
                self._scan(path)
                continue
            try:
                extents = tuple(self._iso.get_file_byte_extents(joliet_path="/" + path))
            except Exception as exc:
                raise IntegrityError_(_("cannot locate {path!r} on the disc: {error}",
                                        path=path, error=exc)) from exc
            for offset, length in extents:
                if offset < 0 or length < 0 or offset + length > self.size:
                    raise IntegrityError_(_("{path!r} lies beyond the end of the image: the "
                                            "image is truncated or forged", path=path))
            self.files[path] = DiscFile(path, sum(n for _o, n in extents), extents)

    def read(self, f: DiscFile, limit: int = spec.MAX_TAG_FILE) -> bytes:
        if f.size > limit:
            raise IntegrityError_(_("{path} is too large ({size} bytes)", path=f.path,
                                    size=f.size))
        out = bytearray()
        for offset, length in f.extents:
            data = os.pread(self.fd, length, offset)
            if len(data) != length:
                raise IntegrityError_(_("the image ends inside a file: it is truncated"))
            out += data
        return bytes(out)

    def close(self) -> None:
        try:
            self._iso.close()
        except Exception:  # closing a half-parsed image
            pass
        if getattr(self, "_fh", None):
            self._fh.close()
        if getattr(self, "fd", None) is not None:
            os.close(self.fd)
            self.fd = None  # type: ignore[assignment]

    def __enter__(self) -> DiscImage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
