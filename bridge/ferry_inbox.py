"""The ferry inbox watch: discs that arrive in a folder are imported and published.

What came across from the internal network is dropped into one folder
(``bridge.ferry_inbox.path``): disc images as ``hub ferry pack`` wrote them, or
unpacked bags (a disc's files copied into a folder of their own). ``hub run``
watches the folder and takes each arrival through these steps:

1. it waits until the arrival looks the same on two looks in a row (names,
   sizes and modification times), so a copy still being written is left
   alone; names starting with ``.`` are never taken (copy under one and
   rename to hand over at once);
2. it claims the arrival by moving it under ``.importing/``; an unpacked bag
   is first mastered there into an image of exactly its files, so both kinds
   go through the one importer and the one set of checks;
3. ``FerryImporter`` imports it: signature, manifests, sequence, expiry,
   replay ledger and content policy, everything ``hub ferry import`` checks,
   and the types its messages would be published as: only those of
   ``event_types`` (default ``FERRY_EVENT_TYPES``), so a signed disc cannot
   publish the hub's own events past the ``owns`` rule of the inbound API;
4. a delivered batch is published onto the hub (``BridgePublisher``) and the
   image moves to ``.processed/`` (or is deleted); a refused one is moved into
   the quarantine, beside the importer's ``reason.json``.

At-least-once: an image stays under ``.importing/`` until its messages are
published. When publishing fails (the broker is down), the delivered folders
are noted in ``<image>.delivered.json`` and published on a later pass; when
the process died between delivery and that note, the ledger says the image
was delivered and where (found by a verify-only pass, which changes
nothing). Message ids derive from the batch and the item, so publishing
again never makes a second message.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bdchub.core.audit import AuditLog, rotation_from
from bdchub.core.errors import BridgeError, HubError, PolicyError
from bdchub.core.i18n import _

from .ferry import image, sign, spec
from .ferry.importer import DELIVERED, REFUSED, BatchResult, FerryImporter
from .ferry.ledger import BatchKey, Ledger
from .publish import (
    FERRY_EVENT_TYPES,
    BridgePublisher,
    Watch,
    event_type_check,
    ferry_event_types,
    read_delivered_bag,
)

log = logging.getLogger("bdchub.bridge.ferry_inbox")

IMPORTING = ".importing"
PROCESSED = ".processed"
JOURNAL = ".delivered.json"
DEFAULT_INTERVAL = 2.0

@dataclass
class FerryPass:
    """What one look at the folder did."""

    delivered: int = 0  # batches delivered and published
    messages: int = 0
    refused: int = 0
    waiting: int = 0  # arrivals still changing (or not yet seen twice)
    error: str | None = None  # the last local failure; what it hit is tried again


def _place(config: Mapping[str, Any], data_dir: str | os.PathLike[str], key: str,
           default: str) -> Path:
    """A path of the ``bridge.ferry_inbox`` block: relative to the config file, or
    ``default`` under ``ferry/`` in the data folder."""
    value = ((config.get("bridge") or {}).get("ferry_inbox") or {}).get(key)
    if not value:
        return Path(data_dir) / "ferry" / default
    path = Path(str(value)).expanduser()
    return path if path.is_absolute() else Path(config.get("__dir__") or os.getcwd()) / path


class FerryWatch(Watch):
    """Imports and publishes what arrives in ``folder``; see the module docstring.

    ``scan`` is one pass; ``start``/``stop`` run passes from a thread every
    ``interval`` seconds for as long as the hub runs. Stopping waits for the
    pass under way; one cut short (the hub killed, a crash) is safe: the importer
    stages, delivers in one rename, and the claimed image waits in
    ``.importing/``."""

    thread_name = "ferry-inbox"

    def __init__(self, folder: str | os.PathLike[str], *, verifiers: list[sign.Verifier],
                 publisher: BridgePublisher, inbox: str | os.PathLike[str],
                 quarantine: str | os.PathLike[str], ledger: str | os.PathLike[str],
                 audit: AuditLog, policy: Any = None, keep_processed: bool = True,
                 interval: float = DEFAULT_INTERVAL,
                 event_types: Iterable[str] = FERRY_EVENT_TYPES):
        self.folder = Path(folder)
        self.inbox = Path(inbox)
        self.quarantine = Path(quarantine)
        self.ledger = Path(ledger)
        self.audit = audit
        self.importer = FerryImporter(verifiers=verifiers, audit=audit, inbox=self.inbox,
                                      quarantine=self.quarantine, ledger=self.ledger,
                                      policy=policy, item_check=event_type_check(event_types))
        self.publisher = publisher
        self.keep_processed = keep_processed
        self.interval = interval
        self._seen: dict[str, Any] = {}
        # Claimed by this process: known never delivered unless noted below, so a
        # retry imports at once instead of asking the ledger first.
        self._mine: set[str] = set()
        self._delivered: dict[str, list[BatchResult]] = {}
        super().__init__()

    @staticmethod
    def audit_path(config: Mapping[str, Any], data_dir: str | os.PathLike[str]) -> Path | None:
        """Where the watch of ``config`` keeps its audit log; None without a watch."""
        block = (config.get("bridge") or {}).get("ferry_inbox")
        if not block or not block.get("enabled", True):
            return None
        return _place(config, data_dir, "audit", "audit.jsonl")

    @classmethod
    def from_config(cls, config: Mapping[str, Any], hub: Any,
                    data_dir: str | os.PathLike[str]) -> FerryWatch | None:
        """``bridge.ferry_inbox`` of ``config``, publishing through ``hub``; None when
        absent or disabled. Paths in the block are relative to the config file;
        the defaults lie under ``ferry/`` in ``data_dir`` (the hub's data folder)."""
        block = (config.get("bridge") or {}).get("ferry_inbox")
        if not block or not block.get("enabled", True):
            return None
        base = Path(config.get("__dir__") or os.getcwd())

        def where(key: str, default: str) -> Path:
            return _place(config, data_dir, key, default)

        keys = block["key"]
        keys = [keys] if isinstance(keys, str) else list(keys)
        verifiers = []
        for key in keys:
            path = Path(str(key)).expanduser()
            verifiers.append(sign.load_verifier(path if path.is_absolute() else base / path))
        # Keyed like the hub's own audit log, so ``hub audit verify`` checks both.
        audit = AuditLog(where("audit", "audit.jsonl"), key=hub.audit_key(),
                         rotation=rotation_from(config))  # rotated and kept as the hub's
        policy = None
        if block.get("policy", True):
            from .policy import ContentPolicy

            policy = ContentPolicy(audit=audit)
        return cls(where("path", "arrivals"), verifiers=verifiers,
                   publisher=BridgePublisher.for_hub(hub), inbox=where("inbox", "inbox"),
                   quarantine=where("quarantine", "quarantine"),
                   ledger=where("ledger", "ledger.sqlite3"), audit=audit, policy=policy,
                   keep_processed=bool(block.get("keep_processed", True)),
                   interval=float(block.get("poll_interval", DEFAULT_INTERVAL)),
                   event_types=ferry_event_types(config))

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BridgeError(_("cannot watch {path}: {error}", path=str(self.folder),
                                error=exc.strerror or exc)) from exc
        super().start()

    def run(self, stop: threading.Event) -> None:
        """Passes until ``stop`` is set. No pass after it: a disc is not begun while
        the hub shuts down."""
        while not stop.is_set():
            try:
                self.scan()
            except Exception:  # noqa: BLE001 - a long-running watch must survive
                log.exception("ferry inbox %s: unexpected failure; tried again next pass",
                              self.folder)
            stop.wait(self.interval)

    # -- one pass ----------------------------------------------------------------

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the passes, then write the audit log's closing checkpoint: a watch
        that stopped cleanly is told apart from one that died."""
        super().stop(timeout)
        self.audit.close()

    def scan(self) -> FerryPass:
        """Claim what has settled, then import and publish every claimed image
        in name order; a publishing failure ends the pass, so batches are
        published in the order they were imported."""
        result = FerryPass()
        if not self.folder.is_dir():
            return result
        self._claim_settled(result)
        for entry in self._claimed():
            if not self._handle(entry, result):
                break
        return result

    def _claim_settled(self, result: FerryPass) -> None:
        seen: dict[str, Any] = {}
        for entry in sorted(self.folder.iterdir()):
            if entry.name.startswith("."):
                continue
            try:
                look = _look(entry)
            except OSError:  # gone or unreadable while we looked: next pass
                result.waiting += 1
                continue
            if self._seen.get(entry.name) != look:
                seen[entry.name] = look
                result.waiting += 1
                continue
            try:
                self._claim(entry, result)
            except HubError as exc:  # e.g. no room to master a bag: tried again
                seen[entry.name] = look
                result.error = str(exc)
                log.warning("ferry inbox %s: %s", self.folder, exc)
        self._seen = seen

    def _claim(self, entry: Path, result: FerryPass) -> None:
        importing = self.folder / IMPORTING
        importing.mkdir(exist_ok=True)
        if entry.is_dir() and not entry.is_symlink():
            target = _free(importing, f"{entry.name}.iso")
            try:
                _master(entry, target)
            except PolicyError as exc:
                self._refuse_arrival(entry, str(exc))
                result.refused += 1
                return
            shutil.rmtree(entry, ignore_errors=True)
        elif entry.is_file() and not entry.is_symlink():
            target = _free(importing, entry.name)
            os.rename(entry, target)
        else:
            self._refuse_arrival(entry, _("{name} is neither a disc image nor a folder",
                                          name=entry.name))
            result.refused += 1
            return
        self._mine.add(target.name)

    def _claimed(self) -> list[Path]:
        importing = self.folder / IMPORTING
        if not importing.is_dir():
            return []
        return sorted(p for p in importing.iterdir()
                      if p.is_file() and not p.name.startswith(".")
                      and not p.name.endswith(JOURNAL))

    def _handle(self, entry: Path, result: FerryPass) -> bool:
        """Import (or resume) one claimed image. False when publishing failed."""
        name = entry.name
        journal = entry.with_name(name + JOURNAL)
        try:
            batches = self._delivered.get(name)
            if batches is None and journal.exists():
                folders = json.loads(journal.read_text(encoding="utf-8"))["delivered_to"]
                batches = [read_delivered_bag(f) for f in folders]
            if batches is None and name not in self._mine:
                batches = self._delivered_before(entry)
        except (HubError, OSError, ValueError, KeyError) as exc:
            result.error = str(exc)
            log.error("ferry inbox: %s was delivered but cannot be published: %s", entry, exc)
            return True
        if batches is None:
            batch = self.importer.import_images([entry]).batches[0]
            if batch.status == REFUSED:
                self._to_quarantine(entry, batch)
                result.refused += 1
                return True
            if batch.status != DELIVERED:
                # Local trouble (a full disk, a locked ledger), not the disc's fault.
                self._mine.add(name)
                result.error = batch.reason
                log.warning("ferry inbox: %s not imported, tried again next pass: %s", entry,
                            batch.reason)
                return True
            batches = [batch]
            self._delivered[name] = batches
            try:
                journal.write_text(json.dumps({"delivered_to": [
                    str(b.delivered_to) for b in batches]}), encoding="utf-8")
            except OSError as exc:  # the ledger still knows; see _delivered_before
                log.warning("ferry inbox: cannot note the delivery of %s: %s", entry, exc)
        try:
            sent = self.publisher.publish_import(batches, self.inbox)
        except (HubError, OSError) as exc:
            result.error = str(exc) or type(exc).__name__
            log.warning("ferry inbox: %s delivered but not published, published next pass: %s",
                        entry, result.error)
            return False
        result.delivered += len(batches)
        result.messages += len(sent)
        self._finish(entry, journal)
        return True

    def _delivered_before(self, entry: Path) -> list[BatchResult] | None:
        """The batch of ``entry`` if the ledger says this very image was delivered
        (the process stopped before publishing it), else None."""
        batch = self.importer.verify_images([entry]).batches[0]
        if not batch.batch_id or not self.ledger.exists():
            return None
        ledger = Ledger(self.ledger, readonly=True)
        try:
            consumed = ledger.find(BatchKey(batch.batch_id, batch.sender or "",
                                            batch.sequence or 0, "", 0, 0))
        finally:
            ledger.close()
        if consumed is None or Path(consumed.image) != entry.resolve():
            return None
        return [read_delivered_bag(consumed.delivered_to)]

    # -- where things go -----------------------------------------------------------

    def _finish(self, entry: Path, journal: Path) -> None:
        if self.keep_processed:
            processed = self.folder / PROCESSED
            processed.mkdir(exist_ok=True)
            os.rename(entry, _free(processed, entry.name))
        else:
            entry.unlink()
        journal.unlink(missing_ok=True)
        self._forget(entry.name)

    def _to_quarantine(self, entry: Path, batch: BatchResult) -> None:
        """The refused image joins the importer's quarantine folder (its reason files)."""
        folder = batch.quarantine or self._quarantine_folder(entry.name, batch.reason or "")
        shutil.move(entry, folder / entry.name)
        entry.with_name(entry.name + JOURNAL).unlink(missing_ok=True)
        self._forget(entry.name)
        log.warning("ferry inbox: %s refused and quarantined in %s: %s", entry.name, folder,
                    batch.reason)

    def _refuse_arrival(self, entry: Path, reason: str) -> None:
        """An arrival the importer cannot even be given (a link, a bag folder no disc
        can hold): quarantined as it is, with the reason, and audited."""
        self.audit.record("refused", f"arrival:{entry.name}", image=str(entry), reason=reason,
                          error="PolicyError")
        folder = self._quarantine_folder(entry.name, reason)
        shutil.move(entry, folder / entry.name)
        self.audit.record("quarantined", f"arrival:{entry.name}", path=str(folder),
                          reason=reason)
        log.warning("ferry inbox: %s refused and quarantined in %s: %s", entry.name, folder,
                    reason)

    def _quarantine_folder(self, name: str, reason: str) -> Path:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        folder = self.quarantine / f"{stamp}-{name[:60]}-{uuid.uuid4().hex[:6]}"
        folder.mkdir(parents=True)
        (folder / "reason.json").write_text(json.dumps(
            {"image": name, "reason": reason, "time": spec.format_time(spec.utc_now())},
            ensure_ascii=False, indent=2), encoding="utf-8")
        (folder / "REASON.txt").write_text(_("Refused: {image}", image=name) + "\n" + reason
                                           + "\n", encoding="utf-8")
        return folder

    def _forget(self, name: str) -> None:
        self._mine.discard(name)
        self._delivered.pop(name, None)


def _look(entry: Path) -> Any:
    """What must stay the same between two looks for an arrival to count as complete."""
    st = entry.lstat()
    if not stat.S_ISDIR(st.st_mode):
        return (st.st_mode, st.st_size, st.st_mtime_ns)
    files = []
    for root, dirs, names in os.walk(entry):
        for name in sorted(dirs + names):
            sub = os.lstat(os.path.join(root, name))
            files.append((os.path.relpath(os.path.join(root, name), entry), sub.st_mode,
                          sub.st_size, sub.st_mtime_ns))
    return tuple(sorted(files))


def _free(folder: Path, name: str) -> Path:
    """``folder/name``, or ``name`` with a counter when that is taken (the same disc
    copied in twice must not overwrite the first)."""
    target = folder / name
    stem, dot, suffix = name.rpartition(".") if "." in name else (name, "", "")
    n = 1
    while target.exists():
        target = folder / (f"{stem}-{n}{dot}{suffix}" if dot else f"{name}-{n}")
        n += 1
    return target


def _master(folder: Path, target: Path) -> None:
    """Master the unpacked bag in ``folder`` into the image ``target``, exactly its
    regular files. A link or a special file is refused: what the importer then
    checks must be what arrived, and nothing outside it."""
    entries: list[image.Entry] = []
    for root, dirs, names in os.walk(folder):
        for name in dirs + names:
            path = Path(root, name)
            mode = path.lstat().st_mode
            if stat.S_ISDIR(mode):
                continue
            relpath = path.relative_to(folder).as_posix()
            if not stat.S_ISREG(mode):
                raise PolicyError(_("{path} in the unpacked bag is a link or a special file",
                                    path=relpath))
            entries.append(image.Entry(relpath, path.lstat().st_size, path))
    try:
        iso = image.build(entries, volume_id="FERRY", udf=False)
    except Exception as exc:  # noqa: BLE001 - names no disc can hold: the bag's fault
        raise PolicyError(_("the unpacked bag cannot be read as a disc: {error}",
                            error=exc)) from exc
    image.write(iso, target)

