"""Import disc images: verify everything, refuse replays, quarantine failures, deliver atomically.

Per image, cheapest checks first, so a replayed or expired disc costs only its
tag files:

1. open the image with pycdlib (no mount), list the Joliet tree; names must be
   safe and the root must hold only the bag's tag files and ``data/``;
2. the signature over the tag manifest, with the importer's keys only;
3. the tag manifest over bagit.txt, bag-info.txt and the payload manifest;
   every manifest path safe;
4. bagit's reading of the bag (version, encoding, bag-info, manifests) must
   match ours; bag-info fields parsed (sender, sequence, expiry, set);
5. not expired, not created in the future, not in the ledger (replay);
6. the files on the disc are exactly those in the manifest, with the
   Payload-Oxum totals;
7. every payload byte hashed (and copied to staging in the same pass);
8. bagit's completeness check of the staged bag; messages parse as JSON
   objects; the receiver's ``item_check`` (if any: the ferry inbox's allowed
   types) accepts every item; the content policy (if any) accepts every file;
9. under the ledger's write lock: move the staged bag into the inbox in one
   rename, then record the batch. A crash between the two re-delivers on the
   next import (at-least-once), never loses.

Any failure of the disc (IntegrityError_, ReplayError, ExpiredError, PolicyError) moves what
was staged into the quarantine with ``reason.json`` and ``REASON.txt``; the
inbox never sees a partial batch.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from bdchub.core.audit import AuditLog
from bdchub.core.errors import (
    BridgeError,
    ExpiredError,
    HubError,
    IntegrityError_,
    PolicyError,
    ReplayError,
)
from bdchub.core.fsutil import fsync_dir
from bdchub.core.i18n import _

from ..metrics import bridge_metrics
from . import bag, fsutil, sign, spec, stream
from .image import DiscFile, DiscImage
from .ledger import BatchKey, Ledger, ranges
from .progress import NoProgress, Progress

DELIVERED = "delivered"
VERIFIED = "verified"
REFUSED = "refused"
FAILED = "failed"


class Verdict(Protocol):
    ok: bool
    reason: str
    kind: str


class ContentPolicyLike(Protocol):
    """``bridge.policy.ContentPolicy``: types by magic bytes, size and archive limits."""

    def inspect(self, path: Path) -> Verdict: ...


@dataclass(frozen=True)
class DeliveredItem:
    """One payload file that passed every check and now sits in the inbox."""

    path: Path
    relpath: str  # inside the bag, e.g. data/messages/result.json
    kind: str  # "message" or "file"
    size: int
    sha256: str
    batch_id: str
    sender: str
    sequence: int
    message: dict[str, Any] | None = None
    content_type: str | None = None  # the content policy's verdict kind, if a policy ran


@dataclass
class BatchResult:
    image: Path
    status: str = REFUSED
    batch_id: str | None = None
    sender: str | None = None
    sequence: int | None = None
    group_id: str | None = None
    disc: str | None = None  # "i of n"
    created: str | None = None
    expires: str | None = None
    reason: str | None = None
    error: str | None = None
    quarantine: Path | None = None
    delivered_to: Path | None = None
    items: list[DeliveredItem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    bytes_verified: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status in (DELIVERED, VERIFIED)


@dataclass
class ImportReport:
    batches: list[BatchResult] = field(default_factory=list)
    gaps: dict[str, list[int]] = field(default_factory=dict)  # sender -> missing sequences
    incomplete_sets: dict[str, list[int]] = field(default_factory=dict)  # group -> missing discs

    @property
    def ok(self) -> bool:
        return all(b.ok for b in self.batches)

    @property
    def delivered(self) -> list[BatchResult]:
        return [b for b in self.batches if b.status == DELIVERED]

    @property
    def refused(self) -> list[BatchResult]:
        return [b for b in self.batches if not b.ok]

    @property
    def items(self) -> list[DeliveredItem]:
        return [i for b in self.batches for i in b.items]

    @property
    def messages(self) -> list[DeliveredItem]:
        return [i for i in self.items if i.kind == spec.KIND_MESSAGE]

    def to_dict(self) -> dict[str, Any]:
        def plain(value: Any) -> Any:
            if isinstance(value, Path):
                return str(value)
            if isinstance(value, list):
                return [plain(v) for v in value]
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            if hasattr(value, "__dataclass_fields__"):
                return {k: plain(getattr(value, k)) for k in value.__dataclass_fields__}
            return value

        return {"ok": self.ok, "batches": plain(self.batches), "gaps": self.gaps,
                "incomplete_sets": self.incomplete_sets}


class FerryImporter:
    """Verify and import ferry disc images.

    ``import_images`` needs ``inbox``, ``quarantine`` and ``ledger``;
    ``verify_images`` needs none of them and changes nothing (a ledger, if
    given, is only read, to report replays).
    """

    def __init__(self, *, verifiers: list[sign.Verifier], audit: AuditLog,
                 inbox: str | os.PathLike[str] | None = None,
                 quarantine: str | os.PathLike[str] | None = None,
                 ledger: Ledger | str | os.PathLike[str] | None = None,
                 staging: str | os.PathLike[str] | None = None,
                 policy: ContentPolicyLike | None = None, progress: Progress | None = None,
                 now: Callable[[], datetime] = spec.utc_now,
                 clock_skew: timedelta = timedelta(hours=1), workers: int | None = None,
                 durable: bool = True,
                 item_check: Callable[[DeliveredItem], None] | None = None):
        if not verifiers:
            raise BridgeError(_("no ferry key given: pass the sender's key with --key"))
        self.verifiers = list(verifiers)
        self.audit = audit
        self.inbox = Path(inbox) if inbox else None
        self.quarantine = Path(quarantine) if quarantine else None
        self._ledger_arg = ledger
        self.staging = Path(staging) if staging else (
            self.inbox.with_name(f".{self.inbox.name}.staging") if self.inbox else None)
        self.policy = policy
        # What the receiving side will do with an item (the ferry inbox: the types it
        # may publish); a PolicyError refuses the disc like the content policy does.
        self.item_check = item_check
        self.progress = progress or NoProgress()
        self.now = now
        self.clock_skew = clock_skew
        self.workers = workers or max(1, min(4, os.cpu_count() or 1))
        self.durable = durable

    # -- public API --------------------------------------------------------

    def import_images(self, paths: Iterable[str | os.PathLike[str]]) -> ImportReport:
        if not (self.inbox and self.quarantine and self._ledger_arg is not None):
            raise BridgeError(_("importing needs an inbox, a quarantine and a ledger"))
        assert self.staging is not None
        try:
            for folder in (self.inbox, self.quarantine):
                folder.mkdir(parents=True, exist_ok=True)
            self.staging.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise BridgeError(_("cannot prepare {path}: {error}", path=str(exc.filename),
                                error=exc.strerror or exc)) from exc
        ledger = self._open_ledger(readonly=False)
        try:
            report = self._run(paths, ledger, deliver=True)
        finally:
            if ledger:
                ledger.close()
        bridge_metrics().ferry_imported(report)
        return report

    def verify_images(self, paths: Iterable[str | os.PathLike[str]]) -> ImportReport:
        ledger = self._open_ledger(readonly=True)
        try:
            return self._run(paths, ledger, deliver=False)
        finally:
            if ledger:
                ledger.close()

    # -- driving -----------------------------------------------------------

    def _open_ledger(self, readonly: bool) -> Ledger | None:
        arg = self._ledger_arg
        if arg is None:
            return None
        if isinstance(arg, Ledger):
            # The caller owns it; hand out a non-closing view of the same object.
            return _Borrowed(arg)  # type: ignore[return-value]
        if readonly and not Path(arg).exists():
            return None
        return Ledger(arg, readonly=readonly)

    def _run(self, paths: Iterable[str | os.PathLike[str]], ledger: Ledger | None,
             deliver: bool) -> ImportReport:
        report = ImportReport()
        try:
            for path in paths:
                report.batches.append(self._one(Path(path), ledger, deliver))
        finally:
            self.progress.stop()
        if ledger:
            for sender in sorted({b.sender for b in report.batches if b.sender}):
                missing = ledger.gaps(sender)
                if missing:
                    report.gaps[sender] = missing
            for group in sorted({b.group_id for b in report.batches if b.group_id}):
                seen, count = ledger.group(group)
                if count and len(seen) < count:
                    report.incomplete_sets[group] = [i for i in range(1, count + 1)
                                                     if i not in seen]
        return report

    def _one(self, path: Path, ledger: Ledger | None, deliver: bool) -> BatchResult:
        result = BatchResult(image=path)
        started = time.perf_counter()
        # Import stages beside the inbox (same file system: delivery is one rename);
        # verify only needs somewhere private for bagit to read the tag files.
        work = (self.staging / uuid.uuid4().hex) if deliver and self.staging else \
            Path(tempfile.gettempdir()) / f"ferry-verify-{uuid.uuid4().hex}"
        try:
            work.mkdir(mode=0o700)
            header = self._check(path, result, work, ledger, deliver)
            if deliver:
                assert ledger is not None
                self._deliver(result, work, ledger, header)
            else:
                result.status = VERIFIED
        except (IntegrityError_, ReplayError, ExpiredError, PolicyError) as exc:
            # Quarantine takes the staged files with it (import only).
            self._refuse(result, exc, work, deliver)
        except HubError as exc:
            result.status, result.reason, result.error = FAILED, str(exc), type(exc).__name__
            self._audit("refused", result, reason=result.reason, error=result.error)
        except OSError as exc:
            result.status, result.error = FAILED, type(exc).__name__
            result.reason = _("local file error, nothing delivered: {error}", error=exc)
            self._audit("refused", result, reason=result.reason, error=result.error)
        finally:
            shutil.rmtree(work, ignore_errors=True)
            result.seconds = time.perf_counter() - started
        return result

    # -- checks --------------------------------------------------------------

    def _check(self, path: Path, result: BatchResult, work: Path, ledger: Ledger | None,
               deliver: bool) -> bag.BagHeader:
        with DiscImage(path) as disc:
            tags = self._read_tags(disc)
            signature = sign.Signature.parse(tags[spec.SIGNATURE])
            sign.check(signature, tags[spec.TAGMANIFEST], self.verifiers)
            payload = bag.check_tag_files(tags)
            bag_dir = work / "bag"
            bag_dir.mkdir()
            for name, data in tags.items():
                fsutil.write_file(bag_dir / name, data, sync=deliver and self.durable)
            header, reader = bag.read_with_bagit(bag_dir, payload)
            result.batch_id, result.sender, result.sequence = (
                header.batch_id, header.sender, header.sequence)
            result.group_id = header.group_id
            result.disc = f"{header.disc_index} of {header.disc_count}"
            result.created = spec.format_time(header.created)
            result.expires = spec.format_time(header.expires)
            self._audit("imported", result, image=str(path), mode="import" if deliver else "verify",
                        signer=signature.key_id)
            self._check_fresh(header)
            if ledger:
                ledger.refuse_replay(header.key())
                result.notes.extend(self._sequence_notes(ledger, header.sender, header.sequence))
            files = self._match_disc(disc, payload, header)
            result.items = self._hash_all(disc, files, payload, bag_dir if deliver else None,
                                          header)
            result.bytes_verified = header.oxum_bytes
            if deliver:
                bag.validate_extracted(reader)
            self._read_messages(disc, files, result, bag_dir if deliver else None)
            if self.item_check is not None:
                for item in result.items:
                    self.item_check(item)
            if deliver and self.policy is not None:
                self._apply_policy(result, bag_dir)
            self._audit("verified", result, bytes=header.oxum_bytes, files=len(files),
                        mode="import" if deliver else "verify",
                        tagmanifest_sha256=hashlib.sha256(tags[spec.TAGMANIFEST]).hexdigest())
            return header

    def _read_tags(self, disc: DiscImage) -> dict[str, bytes]:
        for path in disc.files:
            top = path.split("/", 1)[0]
            if "/" in path and top == spec.PAYLOAD_DIR:
                continue
            if path not in spec.TAG_FILES:
                raise IntegrityError_(_("unexpected {path!r} on the disc: only the bag's tag "
                                        "files and data/ may be there", path=path))
        missing = [name for name in spec.TAG_FILES if name not in disc.files]
        if missing:
            raise IntegrityError_(_("{names} missing: not a ferry disc", names=", ".join(missing)))
        return {name: disc.read(disc.files[name]) for name in spec.TAG_FILES}

    def _check_fresh(self, header: bag.BagHeader) -> None:
        now = self.now()
        if now >= header.expires:
            raise ExpiredError(_("batch {batch} expired at {expires}; ask the sender to pack "
                                 "it again", batch=header.batch_id,
                                 expires=spec.format_time(header.expires)))
        if header.created > now + self.clock_skew:
            raise IntegrityError_(_("batch {batch} says it was made at {created}, in the future; "
                                    "check the clocks of both networks",
                                    batch=header.batch_id,
                                    created=spec.format_time(header.created)))

    @staticmethod
    def _sequence_notes(ledger: Ledger, sender: str, sequence: int) -> list[str]:
        seen = ledger.sequences(sender)
        if not seen:
            return []
        latest = seen[-1]
        if sequence < latest:
            return [_("out of order: sequence {sequence} arrives after {latest}",
                      sequence=sequence, latest=latest)]
        if sequence > latest + 1:
            return [_("gap: sequences {missing} not received yet",
                      missing=ranges(list(range(latest + 1, sequence))))]
        return []

    @staticmethod
    def _match_disc(disc: DiscImage, payload: dict[str, str],
                    header: bag.BagHeader) -> list[DiscFile]:
        on_disc = {p for p in disc.files if p.startswith(spec.PAYLOAD_DIR + "/")}
        extra = sorted(on_disc - set(payload))
        absent = sorted(set(payload) - on_disc)
        if extra or absent:
            raise IntegrityError_(_("the disc does not match its manifest: missing {missing}; "
                                    "not listed {extra}", missing=_names(absent),
                                    extra=_names(extra)))
        files = [disc.files[p] for p in payload]
        total = sum(f.size for f in files)
        if (total, len(files)) != (header.oxum_bytes, header.oxum_files):
            raise IntegrityError_(_("Payload-Oxum says {oxum} but the disc holds {found}",
                                    oxum=".".join(map(str, (header.oxum_bytes,
                                                            header.oxum_files))),
                                    found=".".join(map(str, (total, len(files))))))
        return files

    def _hash_all(self, disc: DiscImage, files: list[DiscFile], payload: dict[str, str],
                  bag_dir: Path | None, header: bag.BagHeader) -> list[DeliveredItem]:
        self.progress.start(disc.path.name, header.oxum_bytes)

        def one(f: DiscFile) -> tuple[DiscFile, str]:
            if bag_dir is None:
                return f, stream.digest(disc.fd, f.extents, None, self.progress.advance)
            target = bag_dir.joinpath(*f.path.split("/"))
            target.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
            try:
                if f.size:
                    try:
                        os.posix_fallocate(fd, 0, f.size)
                    except OSError:
                        pass  # not supported here; only a speed-up
                digest = stream.digest(disc.fd, f.extents, fd, self.progress.advance)
                if self.durable:
                    os.fsync(fd)
            finally:
                os.close(fd)
            return f, digest

        order = sorted(files, key=lambda f: f.size, reverse=True)
        if self.workers > 1 and len(order) > 1:
            with ThreadPoolExecutor(self.workers, thread_name_prefix="ferry-verify") as pool:
                done = list(pool.map(one, order))
        else:
            done = [one(f) for f in order]
        bad = sorted(f.path for f, digest in done if digest != payload[f.path])
        if bad:
            raise IntegrityError_(_("checksum mismatch in {n} file(s): {names}", n=len(bad),
                                    names=_names(bad)))
        by_path = {f.path: d for f, d in done}
        return [DeliveredItem(path=Path(f.path), relpath=f.path, kind=spec.kind_of(f.path),
                              size=f.size, sha256=by_path[f.path], batch_id=header.batch_id,
                              sender=header.sender, sequence=header.sequence)
                for f in files]

    @staticmethod
    def _read_messages(disc: DiscImage, files: list[DiscFile], result: BatchResult,
                       bag_dir: Path | None) -> None:
        by_path = {f.path: f for f in files}
        parsed: list[DeliveredItem] = []
        for item in result.items:
            if item.kind != spec.KIND_MESSAGE:
                parsed.append(item)
                continue
            if item.size > spec.MAX_MESSAGE:
                raise PolicyError(_("message {path} is larger than {limit} bytes",
                                    path=item.relpath, limit=spec.MAX_MESSAGE))
            if bag_dir is not None:
                raw = bag_dir.joinpath(*item.relpath.split("/")).read_bytes()
            else:
                raw = disc.read(by_path[item.relpath], spec.MAX_MESSAGE)
            if hashlib.sha256(raw).hexdigest() != item.sha256:
                raise IntegrityError_(_("{path} changed while it was being read",
                                        path=item.relpath))
            try:
                message = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as exc:
                raise PolicyError(_("message {path} is not valid UTF-8 JSON: {error}",
                                    path=item.relpath, error=exc)) from exc
            if not isinstance(message, dict):
                raise PolicyError(_("message {path} is not a JSON object", path=item.relpath))
            parsed.append(_replace(item, message=message))
        result.items = parsed

    def _apply_policy(self, result: BatchResult, bag_dir: Path) -> None:
        assert self.policy is not None
        checked: list[DeliveredItem] = []
        for item in result.items:
            verdict = self.policy.inspect(bag_dir.joinpath(*item.relpath.split("/")))
            if not verdict.ok:
                raise PolicyError(_("content policy refused {path}: {reason}",
                                    path=item.relpath, reason=verdict.reason))
            checked.append(_replace(item, content_type=verdict.kind))
        result.items = checked

    # -- outcomes --------------------------------------------------------------

    def _deliver(self, result: BatchResult, work: Path, ledger: Ledger,
                 header: bag.BagHeader) -> None:
        assert self.inbox is not None
        bag_dir = work / "bag"
        target = self.inbox / f"{header.sender}-{header.sequence:08d}-{header.batch_id[:8]}"
        tagmanifest = (bag_dir / spec.TAGMANIFEST).read_bytes()
        tag_sha = hashlib.sha256(tagmanifest).hexdigest()
        batch_key: BatchKey = header.key()
        with ledger.claim(batch_key):
            if target.exists():
                existing = target / spec.TAGMANIFEST
                if not existing.exists() or existing.read_bytes() != tagmanifest:
                    raise IntegrityError_(_("{path} already exists in the inbox with other "
                                            "content", path=str(target)))
                # Delivered before a crash, never recorded: record it now.
                result.notes.append(_("already in the inbox from an interrupted import"))
            else:
                if self.durable:
                    fsutil.tree_fsync(bag_dir)
                fsutil.move_dir(bag_dir, target)
                if self.durable:
                    fsync_dir(self.inbox)
            ledger.record(batch_key, tagmanifest_sha256=tag_sha,
                          image=str(result.image.resolve()), delivered_to=str(target.resolve()))
        result.status = DELIVERED
        result.delivered_to = target
        result.items = [_replace(i, path=target.joinpath(*i.relpath.split("/")))
                        for i in result.items]
        self._audit("delivered", result, inbox=str(target), items=len(result.items),
                    messages=sum(1 for i in result.items if i.kind == spec.KIND_MESSAGE),
                    notes=result.notes)

    def _refuse(self, result: BatchResult, exc: BridgeError, work: Path, deliver: bool) -> None:
        result.status = REFUSED
        result.reason = str(exc)
        result.error = type(exc).__name__
        result.items = []
        # An expired disc was never consumed: its expiry, not a replay, is the reason.
        expiry = {"expires": result.expires} if isinstance(exc, ExpiredError) else {}
        self._audit("refused", result, reason=result.reason, error=result.error,
                    mode="import" if deliver else "verify", **expiry)
        if not deliver:
            return
        assert self.quarantine is not None
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        qdir = self.quarantine / f"{stamp}-{result.image.stem[:60]}-{uuid.uuid4().hex[:6]}"
        reason = {
            "image": str(result.image), "error": result.error, "reason": result.reason,
            "batch_id": result.batch_id, "sender": result.sender, "sequence": result.sequence,
            "time": spec.format_time(spec.utc_now()), **expiry,
        }
        try:
            work.mkdir(mode=0o700, exist_ok=True)
            (work / "reason.json").write_text(json.dumps(reason, ensure_ascii=False, indent=2),
                                              encoding="utf-8")
            (work / "REASON.txt").write_text(
                _("Refused: {image}", image=str(result.image)) + "\n" + result.reason + "\n",
                encoding="utf-8")
            fsutil.move_dir(work, qdir)
        except OSError as err:
            result.notes.append(_("could not quarantine: {error}", error=err))
            return
        result.quarantine = qdir
        self._audit("quarantined", result, path=str(qdir), reason=result.reason)

    def _audit(self, event: str, result: BatchResult, **fields: object) -> None:
        object_id = result.batch_id or f"image:{result.image}"
        if result.sequence is not None:
            fields.setdefault("sequence", result.sequence)
            fields.setdefault("sender", result.sender)
        fields.setdefault("image", str(result.image))
        self.audit.record(event, object_id, **fields)


def _names(paths: list[str], limit: int = 5) -> str:
    if not paths:
        return "-"
    return ", ".join(paths[:limit]) + (f" (+{len(paths) - limit})" if len(paths) > limit else "")


def _replace(item: DeliveredItem, **changes: Any) -> DeliveredItem:
    return replace(item, **changes)


class _Borrowed:
    """A ledger passed in by the caller: usable, but closing it is the caller's job."""

    def __init__(self, ledger: Ledger):
        self._ledger = ledger

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ledger, name)

    def close(self) -> None:
        return None
