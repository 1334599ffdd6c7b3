"""The receiving side (internal network): datagrams in, verified objects out.

One thread receives and stores symbols (the hot path: recv_into into a
preallocated buffer, CRC, memcpy into a memory-mapped staging file, decode
when a block has k symbols). A second thread finishes complete objects:
hash, content policy, delivery or quarantine, audit. Hashing and file I/O
release the GIL, so finishing a big object does not starve the receiving
loop. This module, like the rest of the receiving path, has no send call:
the socket it is given can only receive.
"""

from __future__ import annotations

import json
import logging
import queue
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bdchub.core.audit import AuditLog
from bdchub.core.errors import BridgeError, HubError, IntegrityError_
from bdchub.core.i18n import _

from ..metrics import bridge_metrics
from ..policy import ContentPolicy, quarantine
from . import fec, wire
from .inbound import deliver
from .manifest import Manifest, Verifier, safe_name
from .rxsocket import BATCH_BUFFER, RecvOnlySocket
from .staging import COMPLETE, StagedObject, Staging

log = logging.getLogger("bdc.bridge.diode")

PENDING_LIMIT = 4096  # datagrams kept while their manifest is still missing
_DONE = object()  # (session, object) finished or being finished: drop its datagrams
_REJECTED = object()  # manifest refused: drop its datagrams


@dataclass
class SessionState:
    session: int
    first_seq: int
    max_seq: int = 0
    received: int = 0
    last_seen: float = 0.0
    sender: str = ""
    heartbeat: dict[str, Any] = field(default_factory=dict)
    ended: bool = False
    checked_upto: int = 0
    trusted: bool = False  # a manifest of this session verified: its heartbeats count
    silent_reported: bool = False

    @property
    def loss_estimate(self) -> float:
        span = self.max_seq - self.first_seq + 1
        return max(0.0, 1.0 - self.received / span) if span > 0 else 0.0


@dataclass
class ReceiverStats:
    datagrams: int = 0
    malformed: int = 0  # bad magic, length or CRC: corrupt in transit or not ours
    bad_manifests: int = 0
    delivered: int = 0
    quarantined: int = 0
    rejected: int = 0
    incomplete: int = 0
    pending_dropped: int = 0


@dataclass(frozen=True)
class ReceiverOptions:
    max_age: float = 7 * 86400.0  # older manifests are replays; matches the tombstone window
    max_object_size: int | None = None  # None: the policy's max_size
    silence: float = 10.0  # seconds without datagrams before a session counts as gone
    forget_after: float = 600.0  # idle sessions are dropped from memory after this
    min_free_bytes: int = 256 << 20  # keep this much disk free in the staging area


class DiodeReceiver:
    def __init__(self, sock: RecvOnlySocket, inbox: str | Path, *, verifier: Verifier,
                 staging: str | Path, quarantine_dir: str | Path,
                 policy: ContentPolicy | None = None, audit: AuditLog | None = None,
                 options: ReceiverOptions | None = None):
        self.sock = sock
        self.inbox = Path(inbox)
        self.verifier = verifier
        self.staging = Staging(staging, tombstone_days=(options or ReceiverOptions()).max_age
                               / 86400)
        self.quarantine_dir = Path(quarantine_dir)
        self.audit = audit
        self.policy = policy or ContentPolicy(audit=audit)
        if self.policy.audit is None and audit is not None:
            self.policy.audit = audit
        self.options = options or ReceiverOptions()
        self.stats = ReceiverStats()
        self.sessions: dict[int, SessionState] = {}
        self._targets: dict[tuple[int, int], Any] = {}
        self._by_key: dict[str, StagedObject] = {}
        self._finishing: dict[str, StagedObject] = {}  # handed to the finisher thread
        self._pending: dict[tuple[int, int], list[tuple[int, int, int, bytes]]] = {}
        self._pending_count = 0
        self._pending_since: dict[tuple[int, int], float] = {}
        self._reported: set[tuple[int, int]] = set()
        self._work: queue.Queue[StagedObject | None] = queue.Queue()
        self._results: queue.Queue[tuple[StagedObject, str]] = queue.Queue()
        self._finished = 0
        self._finisher: threading.Thread | None = None
        self.delivered: list[Path] = []
        for obj in self.staging.resume():
            self._by_key[obj.key] = obj
            self._targets[(obj.manifest.session, obj.manifest.object_id)] = obj
            self._record("resumed", obj.manifest, progress=round(obj.progress, 4),
                         symbols=obj.stats.received)
            if obj.complete:
                self._complete(obj)

    # -- audit helper --------------------------------------------------------
    def _record(self, event: str, m: Manifest | None, ref: str = "", **fields: Any) -> None:
        if self.audit is None:
            return
        if m is not None:
            fields = {"name": m.name, "size": m.size, **fields}
        try:
            self.audit.record(event, m.ref if m else ref, **fields)
        except OSError as exc:  # the audit disk failing must be loud
            raise BridgeError(_("cannot write the audit log: {error}", error=exc)) from exc

    # -- main loop -----------------------------------------------------------
    def run(self, *, stop: threading.Event | None = None, max_objects: int | None = None,
            timeout: float | None = None, idle_timeout: float | None = None) -> ReceiverStats:
        """Receive until ``stop`` is set, ``max_objects`` objects were finished
        (delivered or quarantined), ``timeout`` seconds passed, or nothing
        arrived for ``idle_timeout`` seconds. Every exit is bounded."""
        self._finisher = threading.Thread(target=self._finish_loop, name="diode-finish",
                                          daemon=True)
        self._finisher.start()
        sock = self.sock
        sock.settimeout(0.2)
        batches = sock.enable_batches()
        buf = bytearray(BATCH_BUFFER if batches else wire.MAX_DATAGRAM + 1)
        view = memoryview(buf)
        unpack = wire.HEADER.unpack_from
        crc32 = wire.crc32
        hsize, crc_off = wire.HEADER_SIZE, wire.HEADER_SIZE - 4
        magic, version = wire.MAGIC, wire.VERSION
        data_kind = wire.DATA
        targets = self._targets
        sessions = self.sessions
        stats = self.stats
        start = last_rx = time.monotonic()
        next_house = start + 0.2
        try:
            while True:
                try:
                    if batches:
                        total, size = sock.recv_batch(buf)
                    else:
                        total = size = sock.recv_into(buf)
                except TimeoutError:
                    total = size = -1
                now = time.monotonic()
                if size == 0:  # empty, or longer than the buffer: not ours
                    stats.datagrams += 1
                    stats.malformed += 1
                    total = -1
                for o in range(0, total, size) if total > 0 else ():
                    n = min(o + size, total)  # this datagram is view[o:n]
                    last_rx = now
                    stats.datagrams += 1
                    if n - o >= hsize:
                        (mg, ver, kind, flags, session, seq, oid, block, symbol, length,
                         crc) = unpack(view, o)
                    else:
                        mg = b""
                    if (mg != magic or ver != version or hsize + length != n - o
                            or crc32(view[o + hsize:n], crc32(view[o:o + crc_off])) != crc):
                        stats.malformed += 1
                        continue
                    st = sessions.get(session)
                    if st is None:
                        st = sessions[session] = SessionState(session, seq)
                    st.received += 1
                    if seq > st.max_seq:
                        st.max_seq = seq
                    st.last_seen = now
                    if kind == data_kind:
                        target = targets.get((session, oid))
                        if target is None:
                            self._park(session, oid, seq, block, symbol, view[o + hsize:n])
                        elif isinstance(target, StagedObject):
                            if not target.stats.first_seq:
                                target.stats.first_seq = seq
                                target.stats.session_count_at_first = st.received
                            target.stats.last_seq = seq
                            if target.put(block, symbol, view[o + hsize:n]) == COMPLETE:
                                self._complete(target)
                    elif kind == wire.MANIFEST:
                        if (session, oid) not in targets:
                            self._on_manifest(session, oid, view[o + hsize:n])
                    elif kind == wire.HEARTBEAT:
                        self._on_heartbeat(st, flags, view[o + hsize:n])
                if now >= next_house:
                    next_house = now + 0.2
                    self._drain_results()
                    self._housekeeping(now)
                    if max_objects is not None and self._finished >= max_objects:
                        break
                    if stop is not None and stop.is_set():
                        break
                    if timeout is not None and now - start >= timeout:
                        break
                    if idle_timeout is not None and now - last_rx >= idle_timeout \
                            and self._work.empty():
                        break
        finally:
            self._work.put(None)
            self._finisher.join(timeout=60)
            self._drain_results()
            for obj in self._by_key.values():
                obj.close_maps()
        return stats

    def _park(self, session: int, oid: int, seq: int, block: int, symbol: int,
              payload: memoryview) -> None:
        """Keep a few datagrams whose manifest has not come yet (bounded)."""
        if self._pending_count >= PENDING_LIMIT:
            self.stats.pending_dropped += 1
            return
        key = (session, oid)
        if key not in self._pending:
            self._pending_since[key] = time.monotonic()
        self._pending.setdefault(key, []).append((seq, block, symbol, bytes(payload)))
        self._pending_count += 1

    # -- manifests -----------------------------------------------------------
    def _refuse(self, session: int, oid: int, m: Manifest | None, reason: str) -> None:
        self._targets[(session, oid)] = _REJECTED
        self._drop_pending(session, oid)
        self.stats.rejected += 1
        self._record("rejected", m, ref=f"{session:016x}/{oid}", reason=reason)
        log.warning("diode: refused %016x/%d: %s", session, oid, reason)

    def _drop_pending(self, session: int, oid: int) -> list[tuple[int, int, int, bytes]]:
        parked = self._pending.pop((session, oid), [])
        self._pending_since.pop((session, oid), None)
        self._pending_count -= len(parked)
        return parked

    def _housekeeping(self, now: float) -> None:
        """Bound what unauthenticated traffic can pin in memory, and report
        senders that went quiet without saying goodbye."""
        for key, since in list(self._pending_since.items()):
            if now - since > 30.0:
                self.stats.pending_dropped += len(self._drop_pending(*key))
        for sid, st in list(self.sessions.items()):
            idle = now - st.last_seen
            if st.trusted and not st.ended and not st.silent_reported \
                    and idle > self.options.silence:
                st.silent_reported = True
                self._record("sender_silent", None, ref=f"{sid:016x}", sender=st.sender,
                             seconds=round(idle, 1), session_loss=round(st.loss_estimate, 4))
                for (s_id, oid), target in list(self._targets.items()):
                    if s_id == sid and isinstance(target, StagedObject):
                        self._report_if_incomplete(st, oid)
            if idle > self.options.forget_after:
                del self.sessions[sid]

    def _on_manifest(self, session: int, oid: int, payload: memoryview) -> None:
        try:
            m = Manifest.from_bytes(payload)
        except IntegrityError_:
            self.stats.bad_manifests += 1
            return
        if m.session != session or m.object_id != oid:
            self.stats.bad_manifests += 1
            return
        if not self.verifier.verify(m.body(), m.signature):
            # Not audited per datagram: forged traffic must not flood the log.
            self.stats.bad_manifests += 1
            if self.stats.bad_manifests in (1, 10, 100, 1000) or \
                    self.stats.bad_manifests % 10000 == 0:
                self._record("rejected", None, ref=f"{session:016x}/{oid}",
                             reason=_("manifest signature does not verify"),
                             count=self.stats.bad_manifests)
            return
        if m.created < time.time() - self.options.max_age:
            self._refuse(session, oid, m, _("manifest is older than the replay window"))
            return
        try:
            safe_name(m.name)
        except BridgeError as exc:
            self._refuse(session, oid, m, str(exc))
            return
        limit = self.options.max_object_size or self.policy.config.max_size
        if m.size > limit:
            self._refuse(session, oid, m, _("object is {size} bytes, the limit is {limit}",
                                              size=m.size, limit=limit))
            return
        if m.blocks and (m.ec_type not in fec.available_ec_types()
                         or m.symbol_size + wire.HEADER_SIZE > wire.MAX_DATAGRAM):
            self._refuse(session, oid, m, _("FEC parameters cannot be decoded here"))
            return
        sess = self.sessions.get(session)
        if sess is not None:
            sess.trusted = True
            sess.sender = sess.sender or m.sender
        key = m.content_key()
        if self.staging.is_delivered(key):
            self._targets[(session, oid)] = _DONE
            self._drop_pending(session, oid)
            self._record("duplicate", m, reason=_("already delivered"))
            return
        busy = self._finishing.get(key)
        if busy is not None:
            # Complete and being checked: if the check fails, this session's
            # datagrams will be routed to it again (see _drain_results).
            busy.sessions.add((session, oid))
            self._targets[(session, oid)] = _DONE
            self._drop_pending(session, oid)
            self._record("duplicate", m, reason=_("already complete, being delivered"))
            return
        obj = self._by_key.get(key)
        if obj is None:
            need = m.plan.padded_size + m.blocks * m.parity * m.symbol_size
            free = shutil.disk_usage(self.staging.root).free
            if free - need < self.options.min_free_bytes:
                self._refuse(session, oid, m, _("not enough space in the staging area: "
                                                  "{need} bytes needed, {free} free",
                                                  need=need, free=free))
                return
            obj = self.staging.open(m)
            self._by_key[key] = obj
            self._record("announced", m, hash=f"{m.hash_name}:{m.digest}", blocks=m.blocks,
                         parity=m.parity, symbol_size=m.symbol_size, sender=m.sender)
        obj.sessions.add((session, oid))
        self._targets[(session, oid)] = obj
        for seq, block, symbol, data in self._drop_pending(session, oid):
            if not obj.stats.first_seq:
                obj.stats.first_seq = seq
            obj.stats.last_seq = max(obj.stats.last_seq, seq)
            if obj.put(block, symbol, memoryview(data)) == COMPLETE:
                break
        if obj.complete:
            self._complete(obj)

    # -- heartbeats and loss reports -----------------------------------------
    def _on_heartbeat(self, st: SessionState, flags: int, payload: memoryview) -> None:
        try:
            info = json.loads(bytes(payload))
            done = int(info.get("done", 0))
        except (ValueError, TypeError, AttributeError):
            self.stats.bad_manifests += 1
            return
        if flags & wire.FLAG_END:
            st.ended = True
        if not st.trusted:
            # Anyone can compute a CRC: only a session that has shown a signed
            # manifest may make us write loss reports.
            return
        st.heartbeat = info
        # Objects the sender has finished (all passes) and we have not: report
        # once, a bounded number per heartbeat.
        for oid in range(st.checked_upto + 1, min(done, st.checked_upto + 256) + 1):
            self._report_if_incomplete(st, oid)
            st.checked_upto = oid

    def _report_if_incomplete(self, st: SessionState, oid: int) -> None:
        key = (st.session, oid)
        target = self._targets.get(key)
        if target is _DONE or target is _REJECTED or key in self._reported:
            return
        self._reported.add(key)
        self.stats.incomplete += 1
        ref = f"{st.session:016x}/{oid}"
        if target is None:
            self._record("incomplete", None, ref=ref, reason=_("manifest never received"),
                         parked=len(self._pending.get(key, [])),
                         session_loss=round(st.loss_estimate, 4))
            log.warning("diode: object %s lost: manifest never received", ref)
            return
        missing = target.missing()
        self._record("incomplete", target.manifest,
                     reason=_("sender finished but symbols are missing; staged for resume"),
                     progress=round(target.progress, 4), missing=missing,
                     session_loss=round(st.loss_estimate, 4))
        log.warning("diode: object %s incomplete: %s", ref, missing)

    # -- finishing -----------------------------------------------------------
    def _complete(self, obj: StagedObject) -> None:
        for key in obj.sessions | {(obj.manifest.session, obj.manifest.object_id)}:
            self._targets[key] = _DONE
        self._by_key.pop(obj.key, None)
        self._finishing[obj.key] = obj
        st = obj.stats
        sess = self.sessions.get(obj.manifest.session)
        span = st.last_seq - st.first_seq + 1
        got = (sess.received - st.session_count_at_first + 1) if sess and st.first_seq else 0
        loss = max(0.0, 1.0 - got / span) if span > 0 and got else 0.0
        if st.fec_blocks:
            bridge_metrics().diode_repairs.inc(st.fec_blocks)
        self._record("received", obj.manifest, symbols=st.received, duplicates=st.duplicates,
                     fec_blocks=st.fec_blocks, blocks=obj.plan.blocks,
                     loss_estimate=round(loss, 4))
        self._work.put(obj)

    def _finish_loop(self) -> None:
        buffer = bytearray(1 << 20)
        while True:
            try:
                # While objects arrive, look at them often: their hash follows
                # reception a few milliseconds behind.
                obj = self._work.get(timeout=0.02 if self._by_key else 0.25)
            except queue.Empty:
                self._catch_up(buffer)
                continue
            if obj is None:
                return
            try:
                outcome = self._finish(obj)
            except HubError as exc:
                outcome = "error:" + str(exc)
            except OSError as exc:
                outcome = "error:" + str(exc)
            self._results.put((obj, outcome))

    def _catch_up(self, buffer: bytearray) -> None:
        """Hash (and write back) what the objects in progress have decoded, on
        this thread while the receiving thread goes on: hashing and file I/O
        release the GIL, so this uses the second core."""
        for obj in list(self._by_key.values()):
            try:
                obj.catch_up(buffer)
            except (OSError, IntegrityError_) as exc:
                # The finish step hashes whatever is left and decides then.
                log.debug("diode: %s: hashing ahead stopped: %s", obj.manifest.ref, exc)

    def _finish(self, obj: StagedObject) -> str:
        m = obj.manifest
        try:
            part = obj.finish()
        except IntegrityError_ as exc:
            self._record("rejected", m, reason=str(exc))
            return "retry"
        if not self.verifier.verify(m.body(), m.signature):  # checked on arrival; belt and braces
            self._record("rejected", m, reason=_("manifest signature does not verify"))
            obj.discard()
            return "rejected"
        self._record("verified", m, hash=f"{m.hash_name}:{m.digest}",
                     signature=m.signature.get("alg", ""))
        named = obj.folder / safe_name(m.name)
        part.rename(named)
        verdict = self.policy.inspect(named, name=m.name, object_id=m.ref)
        meta = {"ref": m.ref, "name": m.name, "kind": m.kind, "size": m.size,
                "hash": m.hash_name, "digest": m.digest, "sender": m.sender,
                "created": m.created, "received": time.time(), "policy_kind": verdict.kind,
                "manifest": json.loads(m.to_bytes())}
        tag = f"{m.session:016x}-{m.object_id}"
        if verdict.ok:
            dest = deliver(named, self.inbox, m.name, meta, tag)
            self._record("delivered", m, path=str(dest), kind=verdict.kind)
            outcome = "delivered:" + str(dest)
        else:
            dest = quarantine(named, verdict, self.quarantine_dir, name=m.name,
                              audit=self.audit, object_id=m.ref, meta=meta)
            outcome = "quarantined:" + str(dest)
        self.staging.mark_delivered(obj.key, {"ref": m.ref, "name": m.name, "outcome": outcome})
        obj.discard()
        return outcome

    def _drain_results(self) -> None:
        while True:
            try:
                obj, outcome = self._results.get_nowait()
            except queue.Empty:
                return
            self._finishing.pop(obj.key, None)
            if outcome == "retry":
                # Hash mismatch: the object was reset; the next pass refills it.
                self._by_key[obj.key] = obj
                for key in obj.sessions | {(obj.manifest.session, obj.manifest.object_id)}:
                    self._targets[key] = obj
                obj.stats.first_seq = 0
                continue
            if outcome.startswith("delivered:"):
                self.stats.delivered += 1
                bridge_metrics().diode_moved("received", 1, obj.manifest.size)
                self.delivered.append(Path(outcome.split(":", 1)[1]))
            elif outcome.startswith("quarantined:"):
                self.stats.quarantined += 1
                bridge_metrics().diode_quarantined.inc()
            else:
                self.stats.rejected += 1
                log.error("diode: %s: %s", obj.manifest.ref, outcome)
            self._finished += 1

    # -- status --------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        return {
            "stats": self.stats.__dict__.copy(),
            "sessions": {f"{s:016x}": {"sender": st.sender, "loss": round(st.loss_estimate, 4),
                                       "received": st.received, "ended": st.ended}
                         for s, st in self.sessions.items()},
            "in_progress": {obj.manifest.ref: {"name": obj.manifest.name,
                                               "progress": round(obj.progress, 4)}
                            for obj in self._by_key.values()},
        }
