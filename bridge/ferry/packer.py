"""Pack outbound items (review results as JSON messages, and files) onto disc images.

Items keep their order by path and fill discs one after another, so a result
and the attachments beside it usually travel on the same disc. A file is
never split across discs: each disc is a complete, signed bag that can be
verified and delivered alone (README.md here explains why). An item larger
than one disc is refused with the medium it needs.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from bdchub.core.audit import AuditLog
from bdchub.core.errors import BridgeError, PolicyError
from bdchub.core.i18n import _

from ..metrics import bridge_metrics
from . import bag, image, sign, spec
from .progress import NoProgress, Progress
from .sequence import SequenceFile


@dataclass(frozen=True)
class Item:
    source: Path
    path: str  # bag path: data/messages/… or data/files/…
    kind: str
    size: int


@dataclass(frozen=True)
class PackedDisc:
    image: Path
    batch_id: str
    sequence: int
    group_id: str
    disc_index: int
    disc_count: int
    items: int
    payload_bytes: int
    image_size: int
    tagmanifest_sha256: str


@dataclass
class PackReport:
    sender: str
    group_id: str
    medium_size: int
    capacity: int
    discs: list[PackedDisc] = field(default_factory=list)

    def to_dict(self) -> dict:
        out = asdict(self)
        for disc in out["discs"]:
            disc["image"] = str(disc["image"])
        return out


def _is_message(path: Path) -> bool:
    if path.suffix.lower() != ".json" or path.stat().st_size > spec.MAX_MESSAGE:
        return False
    try:
        with path.open("rb") as fh:
            return isinstance(json.load(fh), dict)
    except (OSError, ValueError):
        return False


def collect(sources: Iterable[str | os.PathLike[str]]) -> list[Item]:
    """Items from files and directories (walked, relative paths kept).

    A ``.json`` file holding a JSON object (up to 64 MiB) is a message
    (``data/messages/``); anything else is a file (``data/files/``). Symlinks and special files are
    refused rather than followed.
    """
    found: list[tuple[Path, str]] = []
    for source in map(Path, sources):
        if source.is_symlink() or not source.exists():
            raise BridgeError(_("cannot pack {path}: not found or a symbolic link",
                                path=str(source)))
        if source.is_file():
            found.append((source, source.name))
            continue
        for dirpath, dirnames, filenames in os.walk(source):
            dirnames.sort()
            for name in sorted(filenames):
                full = Path(dirpath, name)
                if full.is_symlink() or not full.is_file():
                    raise BridgeError(_("cannot pack {path}: only regular files are packed",
                                        path=str(full)))
                found.append((full, full.relative_to(source).as_posix()))
            for name in dirnames:
                if Path(dirpath, name).is_symlink():
                    raise BridgeError(_("cannot pack {path}: only regular files are packed",
                                        path=str(Path(dirpath, name))))
    items: list[Item] = []
    problems: list[str] = []
    seen: dict[str, Path] = {}
    for src, rel in found:
        kind = spec.KIND_MESSAGE if _is_message(src) else spec.KIND_FILE
        folder = spec.MESSAGES if kind == spec.KIND_MESSAGE else spec.FILES
        path = f"{spec.PAYLOAD_DIR}/{folder}/{rel}"
        try:
            spec.check_payload_path(path)
            if "%0a" in rel.lower() or "%0d" in rel.lower():
                raise PolicyError(_("unsafe path {path!r}: {reason}", path=path,
                                    reason=_("contains %0A or %0D")))
        except PolicyError as exc:
            problems.append(f"{src}: {exc}")
            continue
        if spec.fold(path) in seen:
            problems.append(_("{a} and {b} would have the same name on the disc",
                              a=str(seen[spec.fold(path)]), b=str(src)))
            continue
        seen[spec.fold(path)] = src
        items.append(Item(src, path, kind, src.stat().st_size))
    if problems:
        raise BridgeError(_("{n} items cannot be packed:", n=len(problems)) + "\n  "
                          + "\n  ".join(problems))
    if not items:
        raise BridgeError(_("nothing to pack"))
    return sorted(items, key=lambda i: i.path)


def _blocks(n: int) -> int:
    return math.ceil(n / spec.SECTOR) * spec.SECTOR


class FerryPacker:
    """Builds signed, numbered, expiring disc images from items."""

    def __init__(self, *, signer: sign.Signer, sender: str, sequence: SequenceFile,
                 audit: AuditLog, medium_size: int = spec.MEDIA["cd"],
                 headroom: float = spec.DEFAULT_HEADROOM, expires: timedelta = timedelta(days=7),
                 udf: bool = True, progress: Progress | None = None,
                 now: Callable[[], datetime] = spec.utc_now):
        self.signer = signer
        self.sender = spec.check_sender(sender)
        self.sequence = sequence
        self.audit = audit
        self.medium_size = int(medium_size)
        self.capacity = int(self.medium_size * (1 - headroom))
        self.expires = expires
        self.udf = udf
        self.progress = progress or NoProgress()
        self.now = now

    # -- planning --------------------------------------------------------

    def _tag_entries(self, items: list[Item]) -> list[image.Entry]:
        manifest = sum(64 + 2 + len(i.path.encode()) + 1 for i in items)
        return [image.Entry(spec.BAGIT_TXT, 64), image.Entry(spec.BAG_INFO, 4096),
                image.Entry(spec.MANIFEST, manifest), image.Entry(spec.TAGMANIFEST, 1024),
                image.Entry(spec.SIGNATURE, 1024)]

    def _exact_size(self, items: list[Item]) -> int:
        entries = [image.Entry(i.path, i.size) for i in items] + self._tag_entries(items)
        return image.size_of(image.build(entries, volume_id="SIZING", udf=self.udf))

    def _estimate(self, item: Item, dirs: set[str]) -> int:
        # Data blocks, a UDF file entry, directory records, a manifest line, and
        # for every new folder its ISO, Joliet and UDF extents.
        cost = _blocks(item.size) + (spec.SECTOR if self.udf else 0) + 512 + len(item.path) * 4
        parts = item.path.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            if "/".join(parts[:depth]) not in dirs:
                cost += spec.SECTOR * (4 if self.udf else 2) + 512
        return cost

    def plan(self, items: list[Item]) -> list[list[Item]]:
        """Split ``items`` (in path order) into discs that fit the capacity."""
        base = self._exact_size([])
        if base >= self.capacity:
            raise BridgeError(_("the medium ({size} bytes) is too small for even an empty disc",
                                size=self.medium_size))
        discs: list[list[Item]] = []
        current: list[Item] = []
        used, dirs = base, set()
        for item in items:
            cost = self._estimate(item, dirs)
            if base + self._estimate(item, set()) > self.capacity:
                raise BridgeError(_(
                    "{path} ({size} bytes) does not fit on one disc of {capacity} usable bytes; "
                    "use a larger medium (--medium dvd, dvd-dl or bd)", path=str(item.source),
                    size=item.size, capacity=self.capacity))
            if current and used + cost > self.capacity:
                discs.append(current)
                current, used, dirs = [], base, set()
                cost = self._estimate(item, dirs)
            current.append(item)
            used += cost
            parts = item.path.split("/")[:-1]
            dirs.update("/".join(parts[:d]) for d in range(1, len(parts) + 1))
        if current:
            discs.append(current)
        return self._settle(discs)

    def _settle(self, discs: list[list[Item]]) -> list[list[Item]]:
        """Check every planned disc with pycdlib's exact size; move overflow onward."""
        settled: list[list[Item]] = []
        pending = [list(d) for d in discs]
        while pending:
            disc = pending.pop(0)
            overflow: list[Item] = []
            size = self._exact_size(disc)
            while len(disc) > 1 and size > self.capacity:
                overflow.insert(0, disc.pop())
                size = self._exact_size(disc)
            if size > self.capacity:
                item = disc[0]
                raise BridgeError(_(
                    "{path} ({size} bytes) does not fit on one disc of {capacity} usable bytes; "
                    "use a larger medium (--medium dvd, dvd-dl or bd)", path=str(item.source),
                    size=item.size, capacity=self.capacity))
            settled.append(disc)
            if overflow:
                if pending:
                    pending[0] = overflow + pending[0]
                else:
                    pending.append(overflow)
        return settled

    # -- packing ---------------------------------------------------------

    def pack(self, items: list[Item], out_dir: str | os.PathLike[str]) -> PackReport:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        discs = self.plan(items)
        group_id = str(uuid.uuid4())
        created = self.now()
        expires = created + self.expires
        sequences = self.sequence.allocate(self.sender, len(discs))
        report = PackReport(self.sender, group_id, self.medium_size, self.capacity)
        work = out / f".ferry-pack-{group_id[:8]}"
        try:
            for index, (disc_items, seq) in enumerate(zip(discs, sequences, strict=True), 1):
                report.discs.append(self._pack_disc(
                    disc_items, work / f"disc-{index}", out, group_id=group_id, sequence=seq,
                    index=index, count=len(discs), created=created, expires=expires))
        finally:
            shutil.rmtree(work, ignore_errors=True)
            self.progress.stop()
        bridge_metrics().discs_packed.inc(len(report.discs))
        return report

    def _pack_disc(self, items: list[Item], bag_dir: Path, out: Path, *, group_id: str,
                   sequence: int, index: int, count: int, created: datetime,
                   expires: datetime) -> PackedDisc:
        batch_id = str(uuid.uuid4())
        target = out / f"{self.sender}-{sequence:08d}-{index}of{count}.iso"
        if target.exists():
            raise BridgeError(_("{path} already exists; not overwriting a disc image",
                                path=str(target)))
        for item in items:
            dst = bag_dir.joinpath(*item.path.split("/")[1:])
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(item.source, dst)
            except OSError:
                shutil.copyfile(item.source, dst)
        info = bag.header_info(sender=self.sender, batch_id=batch_id, sequence=sequence,
                               created=created, expires=expires, group_id=group_id,
                               disc_index=index, disc_count=count)
        tag_sha = bag.make(bag_dir, info, self.signer)
        entries = [image.Entry(p.relative_to(bag_dir).as_posix(), p.stat().st_size, p)
                   for p in sorted(bag_dir.rglob("*")) if p.is_file()]
        iso = image.build(entries, volume_id=f"FERRY{sequence:08d}D{index:02d}",
                          udf=self.udf)
        size = image.size_of(iso)
        if size > self.medium_size:
            iso.close()
            raise BridgeError(_("disc {index} would take {size} bytes, more than the medium's "
                                "{medium}", index=index, size=size, medium=self.medium_size))
        self.progress.start(_("writing {name}", name=target.name), size)
        last = [0]

        def advance(done: int, _total: int) -> None:
            self.progress.advance(done - last[0])
            last[0] = done

        written = image.write(iso, target, advance)
        payload = sum(i.size for i in items)
        self.audit.record("packed", batch_id, image=str(target), sender=self.sender,
                          sequence=sequence, group=group_id, disc=f"{index} of {count}",
                          items=len(items), payload_bytes=payload, image_bytes=written,
                          tagmanifest_sha256=tag_sha, expires=spec.format_time(expires))
        return PackedDisc(target, batch_id, sequence, group_id, index, count, len(items),
                          payload, written, tag_sha)
