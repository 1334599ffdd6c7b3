"""Receiver-side staging: symbols land on disk as they arrive.

Per object (keyed by ``Manifest.content_key``) the staging folder holds::

    manifest.json   the verified manifest (so a restarted receiver resumes)
    data.part       the object, padded to whole symbols; source symbols are
                    written straight to their final place, so at zero loss
                    there is nothing left to decode
    parity.bin      parity symbols, B * m slots
    have.bin        one byte per symbol slot: 1 = stored
    done.bin        one byte per block: 1 = decoded

All four are memory-mapped: storing a symbol is a memcpy, memory stays
bounded by the page cache, and what a killed receiver had stored is in the
kernel's hands and survives it.

The object's hash is computed while it arrives (``catch_up``): the bytes of
each decoded block, in order, as soon as every block before it is decoded.
A decoded block is never written again (its symbols are dropped as
duplicates), so what was hashed is what is delivered; completing an object
then costs the hash of its last blocks, not a second read of all of it. Nothing here can send: this module is part of
the receiving path that a test scans for send calls.
"""

from __future__ import annotations

import json
import mmap
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bdchub.core.errors import BridgeError, IntegrityError_
from bdchub.core.fsutil import fsync_dir
from bdchub.core.i18n import _

from . import fec
from .manifest import Manifest, new_hash

NEW, DUPLICATE, DECODED, COMPLETE, INVALID = range(5)


@dataclass
class ObjectStats:
    received: int = 0  # unique symbols stored
    duplicates: int = 0
    fec_blocks: int = 0  # blocks that needed parity to decode
    hash_failures: int = 0
    first_seq: int = 0
    last_seq: int = 0
    session_count_at_first: int = 0


def _map(path: Path, size: int) -> mmap.mmap | None:
    """A shared read-write map of ``path`` grown (sparse) to ``size``."""
    if size == 0:
        return None
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if os.fstat(fd).st_size != size:
            os.ftruncate(fd, size)
        return mmap.mmap(fd, size)
    finally:
        os.close(fd)


class StagedObject:
    def __init__(self, folder: Path, manifest: Manifest):
        self.folder = folder
        self.manifest = manifest
        self.plan = plan = manifest.plan
        self.key = manifest.content_key()
        self.stats = ObjectStats()
        self.n_max = plan.k_hi + plan.parity if plan.blocks else 0
        self.S = plan.symbol_size
        self._k = [plan.k_of(b) for b in range(plan.blocks)]
        self._off = [plan.block_offset(b) for b in range(plan.blocks)]
        self.sessions: set[tuple[int, int]] = set()
        self._open_maps()

    def _restart_digest(self) -> None:
        self._hash = new_hash(self.manifest.hash_name)
        self._hashed = 0  # bytes of the object fed to the hash
        self._hashed_blocks = 0  # blocks 0..n-1 are in it
        self._synced = 0  # bytes of the hashed prefix known to be on disk

    # -- files ---------------------------------------------------------------
    def _open_maps(self) -> None:
        plan = self.plan
        f = self.folder
        self.data = _map(f / "data.part", plan.padded_size)
        self.parity = _map(f / "parity.bin", plan.blocks * plan.parity * self.S)
        self.have = _map(f / "have.bin", plan.blocks * self.n_max)
        self.done = _map(f / "done.bin", plan.blocks)
        self.count = [0] * plan.blocks
        self.done_blocks = 0
        self._restart_digest()
        if self.have is not None and self.done is not None:
            n = self.n_max
            for b in range(plan.blocks):
                self.count[b] = self.have[b * n:(b + 1) * n].count(1)
            self.done_blocks = self.done[:].count(1)
            self.stats.received = sum(self.count)

    @property
    def complete(self) -> bool:
        return self.done_blocks == self.plan.blocks

    @property
    def progress(self) -> float:
        if not self.plan.blocks:
            return 1.0
        got = sum(min(c, k) for c, k in zip(self.count, self._k, strict=True))
        return got / self.plan.source_symbols

    def missing(self) -> dict[str, int]:
        """What is still needed: blocks not decoded and symbols they lack."""
        blocks = symbols = 0
        for b in range(self.plan.blocks):
            if self.done is not None and not self.done[b]:
                blocks += 1
                symbols += max(0, self._k[b] - self.count[b])
        return {"blocks": blocks, "symbols": symbols, "of_blocks": self.plan.blocks}

    # -- hot path --------------------------------------------------------------
    def put(self, block: int, symbol: int, payload: memoryview) -> int:
        """Store one symbol; decode its block once k symbols are there."""
        plan = self.plan
        if block >= plan.blocks or len(payload) != self.S:
            return INVALID
        k = self._k[block]
        if symbol >= k + plan.parity:
            return INVALID
        if self.done[block]:  # type: ignore[index]
            self.stats.duplicates += 1
            return DUPLICATE
        slot = block * self.n_max + symbol
        have = self.have
        if have[slot]:  # type: ignore[index]
            self.stats.duplicates += 1
            return DUPLICATE
        S = self.S
        if symbol < k:
            off = self._off[block] + symbol * S
            self.data[off:off + S] = payload  # type: ignore[index]
        else:
            off = (block * plan.parity + symbol - k) * S
            self.parity[off:off + S] = payload  # type: ignore[index]
        have[slot] = 1  # type: ignore[index]
        self.stats.received += 1
        c = self.count[block] + 1
        self.count[block] = c
        if c < k:
            return NEW
        self._decode(block)
        return COMPLETE if self.complete else DECODED

    def _decode(self, block: int) -> None:
        plan, S, k = self.plan, self.S, self._k[block]
        base = block * self.n_max
        have = self.have
        assert have is not None and self.data is not None and self.done is not None
        off = self._off[block]
        if have[base:base + k].count(1) < k:
            symbols: dict[int, Any] = {}
            for j in range(k + plan.parity):
                if not have[base + j]:
                    continue
                if j < k:
                    symbols[j] = self.data[off + j * S:off + (j + 1) * S]
                else:
                    p = (block * plan.parity + j - k) * S
                    symbols[j] = self.parity[p:p + S]  # type: ignore[index]
                if len(symbols) == k:
                    break
            try:
                out = fec.decode_block(plan.ec_type, k, plan.parity, S, symbols)
            except BridgeError:
                # Cannot happen with an MDS code and CRC-checked symbols; if it
                # does, forget the block and let the next pass fill it again.
                have[base:base + self.n_max] = bytes(self.n_max)
                self.count[block] = 0
                return
            self.data[off:off + k * S] = out
            self.stats.fec_blocks += 1
        self.done[block] = 1
        self.done_blocks += 1

    # -- digest while receiving ----------------------------------------------
    def catch_up(self, buffer: bytearray, *, sync_every: int = 8 << 20) -> int:
        """Hash the decoded blocks that now follow the hashed prefix, and push
        that prefix to disk every ``sync_every`` bytes so that the fsync
        before delivery has little left. Called by one thread only (the
        receiver's finisher); the receiving thread only ever sets ``done``
        after a block's bytes are final. Returns the bytes hashed so far."""
        done = self.done
        blocks = self.plan.blocks
        b = self._hashed_blocks
        if done is None or b >= blocks or not done[b]:
            return self._hashed
        while b < blocks and done[b]:
            b += 1
        end = self._off[b] if b < blocks else self.manifest.size
        end = min(end, self.manifest.size)
        fd = os.open(self.folder / "data.part", os.O_RDONLY)
        try:
            self._feed(fd, end, buffer)
            self._hashed_blocks = b
            if self._hashed - self._synced >= sync_every:
                os.fdatasync(fd)
                self._synced = self._hashed
        finally:
            os.close(fd)
        return self._hashed

    def _feed(self, fd: int, end: int, buffer: bytearray) -> None:
        """Hash bytes [hashed, end) of the data file (read and hashed without
        the GIL, beside the receiving thread)."""
        view = memoryview(buffer)
        while self._hashed < end:
            n = os.preadv(fd, [view[:min(len(buffer), end - self._hashed)]], self._hashed)
            if n <= 0:
                raise IntegrityError_(_("{name}: the staged data is shorter than announced",
                                        name=self.manifest.name))
            self._hash.update(view[:n])
            self._hashed += n

    # -- completion ------------------------------------------------------------
    def close_maps(self) -> None:
        for name in ("data", "parity", "have", "done"):
            m = getattr(self, name, None)
            if m is not None:
                m.flush()
                m.close()
            setattr(self, name, None)

    def finish(self) -> Path:
        """Flush, cut to size, fsync and check the hash. Returns the data file.
        On a mismatch the object is reset (the next pass fills it again) and
        IntegrityError_ is raised: nothing truncated or corrupt goes further."""
        m = self.manifest
        part = self.folder / "data.part"
        self.close_maps()
        fd = os.open(part, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            os.ftruncate(fd, m.size)
            os.fsync(fd)
            self._feed(fd, m.size, bytearray(1 << 20))  # what catch_up had not reached
        finally:
            os.close(fd)
        digest = self._hash.hexdigest()
        if digest != m.digest:
            self.stats.hash_failures += 1
            self.reset()
            raise IntegrityError_(_("{name}: {alg} of the reassembled object does not match "
                                    "the manifest", name=m.name, alg=m.hash_name))
        return part

    def reset(self) -> None:
        self.close_maps()
        for name in ("have.bin", "done.bin", "data.part", "parity.bin"):
            (self.folder / name).unlink(missing_ok=True)
        self._open_maps()

    def discard(self) -> None:
        self.close_maps()
        shutil.rmtree(self.folder, ignore_errors=True)


class Staging:
    """The staging area: partially received objects and delivery tombstones."""

    def __init__(self, root: str | os.PathLike[str], *, tombstone_days: float = 30.0):
        self.root = Path(root)
        self.objects_dir = self.root / "objects"
        self.delivered_dir = self.root / "delivered"
        self.objects_dir.mkdir(parents=True, exist_ok=True)
        self.delivered_dir.mkdir(parents=True, exist_ok=True)
        self.tombstone_days = tombstone_days

    def open(self, manifest: Manifest) -> StagedObject:
        folder = self.objects_dir / manifest.content_key()
        fresh = not (folder / "manifest.json").exists()
        folder.mkdir(parents=True, exist_ok=True)
        if fresh:
            tmp = folder / "manifest.json.tmp"
            tmp.write_bytes(manifest.to_bytes())
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, folder / "manifest.json")
            fsync_dir(folder)
        return StagedObject(folder, manifest)

    def resume(self) -> list[StagedObject]:
        """Objects a previous run had started; unreadable leftovers are removed."""
        found = []
        for folder in sorted(self.objects_dir.iterdir()):
            try:
                manifest = Manifest.from_bytes((folder / "manifest.json").read_bytes())
                if manifest.content_key() != folder.name:
                    raise IntegrityError_("key")
                found.append(StagedObject(folder, manifest))
            except (OSError, BridgeError, ValueError):
                shutil.rmtree(folder, ignore_errors=True)
        return found

    def is_delivered(self, key: str) -> bool:
        return (self.delivered_dir / key).exists()

    def mark_delivered(self, key: str, info: dict[str, Any]) -> None:
        path = self.delivered_dir / key
        path.write_text(json.dumps(info, ensure_ascii=False), encoding="utf-8")

    def prune(self) -> int:
        """Drop tombstones older than the replay window; returns how many."""
        limit = time.time() - self.tombstone_days * 86400
        dropped = 0
        for path in self.delivered_dir.iterdir():
            try:
                if path.stat().st_mtime < limit:
                    path.unlink()
                    dropped += 1
            except OSError:
                continue
        return dropped
