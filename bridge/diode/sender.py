"""The sending side (extranet): objects in, paced FEC-coded datagrams out.

One session per sender run. Within a pass, each object goes out as: a few
manifest copies, then its blocks in windows of ``interleave_blocks``; inside a
window symbol j of every block is sent before symbol j + 1 of any, so a burst
of lost datagrams hits many blocks once instead of one block many times.
Manifest copies are sprinkled in (a receiver that starts late or restarts
learns the object quickly) and heartbeats go out on a timer, also while idle.
Repeat passes go over the whole batch again, for time diversity against long
outages.
"""

from __future__ import annotations

import json
import mmap
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bdchub.core.audit import AuditLog
from bdchub.core.errors import BridgeError
from bdchub.core.i18n import _

from ..metrics import bridge_metrics
from . import fec, wire
from .batch import DatagramBatch
from .manifest import Manifest, Signer, hash_file, new_hash, safe_name
from .pacing import Pacer
from .settings import DiodeSettings

SNDBUF = 8 << 20


@dataclass
class Outgoing:
    """One object ready to send: its signed manifest and a view of its bytes."""

    manifest: Manifest
    source: Any  # mmap.mmap or bytes, at least manifest.size long
    path: str = ""

    @property
    def plan(self) -> fec.Plan:
        return self.manifest.plan

    def close(self) -> None:
        if isinstance(self.source, mmap.mmap):
            self.source.close()


@dataclass
class SendReport:
    session: str
    objects: int
    bytes: int
    datagrams: int
    seconds: float

    @property
    def goodput_bps(self) -> float:
        return self.bytes * 8 / self.seconds if self.seconds > 0 else 0.0


class DiodeSender:
    def __init__(self, target: tuple[str, int], signer: Signer,
                 settings: DiodeSettings | None = None, *, audit: AuditLog | None = None,
                 sender_name: str = "", bind: tuple[str, int] | None = None):
        self.target = target
        self.signer = signer
        self.settings = settings or DiodeSettings()
        self.audit = audit
        self.sender_name = sender_name or socket.gethostname()
        self.bind = bind
        self.session = secrets.randbits(63) or 1
        self._seq = 0
        self._next_object = 1
        self._last_announced = 0
        self._done_upto = 0
        self._active = 0
        self._pass = 0
        self._sock: socket.socket | None = None
        self._addr: tuple[Any, ...] | None = None
        self._batch: DatagramBatch | None = None
        self._buf = bytearray(wire.MAX_DATAGRAM)
        self._lock = threading.RLock()
        self._next_heartbeat = 0.0
        self._pacer = Pacer(self.settings.rate_bps)
        self.datagrams = 0
        self._ec_type = self.settings.ec_type or fec.default_ec_type()

    # -- socket --------------------------------------------------------------
    def open(self) -> DiodeSender:
        if self._sock is not None:
            return self
        host, port = self.target
        try:
            info = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
            sock = socket.socket(info[0], socket.SOCK_DGRAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SNDBUF)
            except OSError:
                pass
            if self.bind:
                sock.bind(self.bind)
        except OSError as exc:
            raise BridgeError(_("cannot open the diode socket towards {host}:{port}: {error}",
                                host=host, port=port, error=exc)) from exc
        self._sock, self._addr = sock, info[4]
        self._batch = DatagramBatch(sock, info[4], self.settings.datagram_size, self.target)
        self._pacer.reset()
        return self

    def close(self, end_session: bool = True) -> None:
        with self._lock:
            if self._sock is None:
                return
            try:
                if end_session:
                    for _i in range(3):
                        self.heartbeat(end=True)
            except BridgeError:
                pass
            self._sock.close()
            self._sock = None

    def __enter__(self) -> DiodeSender:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _emit(self, kind: int, payload: bytes | memoryview, *, flags: int = 0,
              object_id: int = 0, block: int = 0, symbol: int = 0) -> None:
        self._seq += 1
        n = wire.pack_into(self._buf, kind, flags, self.session, self._seq, object_id,
                           block, symbol, payload)
        self._send(n)

    def _send(self, n: int) -> None:
        assert self._batch is not None
        self._batch.send_one(memoryview(self._buf)[:n])
        self.datagrams += 1
        self._pacer.pace(n)

    # -- heartbeats ----------------------------------------------------------
    def heartbeat(self, *, end: bool = False) -> None:
        """Tell the receiver we are alive and which objects exist / are finished."""
        with self._lock:
            if self._sock is None:
                raise BridgeError(_("the diode sender is not open"))
            body = json.dumps({"t": round(time.time(), 3), "sender": self.sender_name,
                               "last": self._last_announced, "done": self._done_upto,
                               "active": self._active, "pass": self._pass,
                               "passes": self.settings.passes},
                              separators=(",", ":")).encode()
            self._emit(wire.HEARTBEAT, body, flags=wire.FLAG_END if end else 0)
            self._next_heartbeat = time.monotonic() + self.settings.heartbeat_interval

    def idle_heartbeat(self) -> bool:
        """Beat unless an object is going out (the send loop beats itself then)."""
        if not self._lock.acquire(blocking=False):
            return False
        try:
            if self._sock is None:
                return False
            self.heartbeat()
            return True
        finally:
            self._lock.release()

    def _maybe_heartbeat(self) -> None:
        if time.monotonic() >= self._next_heartbeat:
            self.heartbeat()

    # -- preparing objects ----------------------------------------------------
    def _manifest(self, name: str, kind: str, size: int, digest: str) -> Manifest:
        s = self.settings
        plan = fec.plan_object(size, s.symbol_size, loss=s.loss_rate, target=s.target_failure,
                               k_max=s.k_max, overhead=s.overhead, ec_type=self._ec_type)
        oid = self._next_object
        self._next_object += 1
        m = Manifest(session=self.session, object_id=oid, name=safe_name(name), kind=kind,
                     size=size, hash_name=s.hash_name, digest=digest,
                     symbol_size=plan.symbol_size, blocks=plan.blocks, parity=plan.parity,
                     ec_type=plan.ec_type, sender=self.sender_name)
        signed = m.signed(self.signer)
        if len(signed.to_bytes()) > s.symbol_size:
            raise BridgeError(_("the manifest of {name} does not fit into one datagram; "
                                "use a shorter name or a larger datagram size", name=name))
        return signed

    def prepare_file(self, path: str | os.PathLike[str], name: str | None = None) -> Outgoing:
        p = Path(path)
        try:
            size = p.stat().st_size
            if not p.is_file():
                raise BridgeError(_("{path} is not a regular file", path=str(p)))
            digest = hash_file(p, self.settings.hash_name)
            with p.open("rb") as fh:
                source: Any = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        except OSError as exc:
            raise BridgeError(_("cannot read {path}: {error}", path=str(p),
                                error=exc.strerror or exc)) from exc
        if len(source) != size:
            raise BridgeError(_("{path} changed while it was being read", path=str(p)))
        return Outgoing(self._manifest(name or p.name, "file", size, digest), source, str(p))

    def prepare_bytes(self, data: bytes, name: str, kind: str = "batch") -> Outgoing:
        h = new_hash(self.settings.hash_name)
        h.update(data)
        return Outgoing(self._manifest(name, kind, len(data), h.hexdigest()), bytes(data))

    # -- sending -------------------------------------------------------------
    def send(self, objects: list[Outgoing]) -> SendReport:
        """Send ``objects`` (all passes). Blocks until the last datagram is out."""
        with self._lock:
            if self._sock is None:
                self.open()
            start = time.perf_counter()
            first_dgram = self.datagrams
            self._last_announced = max([self._last_announced]
                                       + [o.manifest.object_id for o in objects])
            self.heartbeat()
            passes = self.settings.passes
            for p in range(1, passes + 1):
                self._pass = p
                for obj in objects:
                    self._active = obj.manifest.object_id
                    self._send_pass(obj)
                    if p == passes:
                        self._done_upto = max(self._done_upto, obj.manifest.object_id)
            self._active = 0
            self.heartbeat()
            seconds = time.perf_counter() - start
            total = sum(o.manifest.size for o in objects)
            report = SendReport(f"{self.session:016x}", len(objects), total,
                                self.datagrams - first_dgram, seconds)
            bridge_metrics().diode_moved("sent", len(objects), total)
            if self.audit:
                for o in objects:
                    m = o.manifest
                    self.audit.record("sent", m.ref, name=m.name, kind=m.kind, size=m.size,
                                      hash=f"{m.hash_name}:{m.digest}", blocks=m.blocks,
                                      parity=m.parity, symbol_size=m.symbol_size,
                                      overhead=round(m.plan.overhead, 4), passes=passes,
                                      rate_bps=self.settings.rate_bps, path=o.path)
            return report

    def _send_manifest(self, raw: bytes, oid: int) -> None:
        self._emit(wire.MANIFEST, raw, object_id=oid)

    def _send_pass(self, obj: Outgoing) -> None:
        s = self.settings
        m = obj.manifest
        plan = m.plan
        raw = m.to_bytes()
        oid = m.object_id
        for _i in range(s.manifest_copies):
            self._send_manifest(raw, oid)
        if not plan.blocks:
            return
        S = plan.symbol_size
        src_view = memoryview(obj.source)
        # Hot loop: bind everything local. Data datagrams are written side by
        # side into the batch buffer and leave in one system call per batch;
        # what remains per datagram is a copy, four header fields and a CRC.
        batch = self._batch
        assert batch is not None
        D = wire.HEADER_SIZE + S
        if batch.size != D:  # a settings object with another datagram size
            batch = self._batch = DatagramBatch(batch.sock, batch.addr, D, self.target)
        buf, cap = batch.buf, batch.capacity
        hsize, crc_off = wire.HEADER_SIZE, wire.HEADER_SIZE - 4
        # Per slot of the batch: the constant header fields written once, and
        # views of the parts that change (no slicing per datagram).
        offsets = [i * D for i in range(cap)]
        for o in offsets:
            wire.HEADER.pack_into(buf, o, wire.MAGIC, wire.VERSION, wire.DATA, 0, self.session,
                                  0, oid, 0, 0, S, 0)
        payloads = [batch.view[o + hsize:o + D] for o in offsets]
        heads = [batch.view[o:o + crc_off] for o in offsets]
        varying = [o + wire.VARYING_OFFSET for o in offsets]
        crcs = [o + crc_off for o in offsets]
        pack = wire.VARYING.pack_into
        crc32 = wire.crc32
        crc_pack = wire._CRC.pack_into
        pacer = self._pacer
        filled = 0
        seq = self._seq
        next_manifest = seq + s.manifest_every
        next_heartbeat_check = seq + 256
        for w0 in range(0, plan.blocks, s.interleave_blocks):
            window = []
            for b in range(w0, min(plan.blocks, w0 + s.interleave_blocks)):
                k = plan.k_of(b)
                off = plan.block_offset(b)
                if off + k * S <= m.size:
                    block = src_view[off:off + k * S]
                else:  # the tail block: pad with zeros to whole symbols
                    block = memoryview(bytes(src_view[off:m.size]).ljust(k * S, b"\0"))
                parity = fec.encode_parity(plan.ec_type, k, plan.parity, bytes(block))
                window.append((b, [block[i * S:(i + 1) * S] for i in range(k)] + parity))
            n_max = max(len(syms) for _b, syms in window)
            for j in range(n_max):
                for b, syms in window:
                    if j >= len(syms):
                        continue
                    sym = syms[j]
                    seq += 1
                    payloads[filled][:] = sym
                    pack(buf, varying[filled], seq, oid, b, j)
                    crc_pack(buf, crcs[filled], crc32(sym, crc32(heads[filled])))
                    filled += 1
                    if filled == cap:
                        batch.send(filled)
                        self.datagrams += filled
                        pacer.pace(filled * D, filled)
                        filled = 0
                    if seq >= next_manifest:
                        self._seq = seq
                        self._send_manifest(raw, oid)
                        seq = self._seq
                        next_manifest = seq + s.manifest_every
                    if seq >= next_heartbeat_check:
                        self._seq = seq
                        self._maybe_heartbeat()
                        seq = self._seq
                        next_heartbeat_check = seq + 256
        if filled:
            batch.send(filled)
            self.datagrams += filled
            pacer.pace(filled * D, filled)
        self._seq = seq
