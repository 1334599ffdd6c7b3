"""The internal business network (业务内网) as flow g of config.yaml meets it.

Not an HTTP endpoint: the extranet reaches the internal network only through
the one-way optical gate, and hears from it only by disc. ``InternalNetwork``
is the far side of both, on loopback, under one folder:

- the gate's output: a diode receiver (``bridge.diode.receiver``, content
  policy on) delivering into ``inbox/``;
- the review desk: for every application whose manifest (kind
  ``spatial_materials``, ``bridge.diode.materials``) and files have all
  arrived, a review result (schema ``review_result``) listing the SHA-256 of
  each file it received;
- the burner: each result packed on a signed ferry disc (Ed25519, the private
  key stays here) and handed over into the hub's arrivals folder in one rename.

It also keeps the extranet's material store (``materials/``, files named by
their SHA-256: ``deposit``) and the keys, and ``environ()`` gives the
variables that switch config.yaml's bridge on against it.

Knobs (``set(**knobs)``, ``clear()``), each for the reviews from then on:

| knob | default | effect |
|---|---|---|
| ``result`` | ``"approved"`` | ``"rejected"``: the review says no (with ``opinion``) |
| ``opinion`` | ``"宗地界址、面积与地籍数据库一致"`` | the review's opinion |
| ``receipt`` | ``"all"`` | ``"none"``: lists nothing received; ``"other"``: lists a hash that was not sent |
| ``tamper`` | False | flip a byte of the next disc after signing (the hub must quarantine it) |
| ``hold`` | False | review nothing until cleared (the materials wait in the inbox) |
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import threading
from pathlib import Path
from typing import Any

from bdchub.bridge.diode.inbound import DeliveredObject, InboxWatcher
from bdchub.bridge.diode.manifest import HmacKey
from bdchub.bridge.diode.materials import KIND
from bdchub.bridge.diode.receiver import DiodeReceiver
from bdchub.bridge.diode.rxsocket import open_receive_socket
from bdchub.bridge.ferry import sign
from bdchub.bridge.ferry.packer import FerryPacker, collect
from bdchub.bridge.ferry.sequence import SequenceFile
from bdchub.bridge.ferry.testing import patch_file
from bdchub.bridge.policy import ContentPolicy
from bdchub.core.audit import AuditLog
from bdchub.core.i18n import _

DEFAULT_KNOBS: dict[str, Any] = {"result": "approved", "opinion": "宗地界址、面积与地籍数据库一致",
                                 "receipt": "all", "tamper": False, "hold": False}
ORGANISATION = {"name": "海门市自然资源和规划局地籍管理科", "division_code": "320684"}


class InternalNetwork:
    """See the module docstring. ``start()`` binds the gate's output on a free
    loopback UDP port; ``stop()`` is idempotent and never raises."""

    def __init__(self, root: str | os.PathLike[str], *, tenant: str = "320684",
                 sender: str = "internal-320684", host: str = "127.0.0.1",
                 interval: float = 0.1):
        self.root = Path(root)
        self.tenant, self.sender, self.host, self.interval = tenant, sender, host, interval
        for name in ("materials", "arrivals", "inbox", "outbox", "discs"):
            (self.root / name).mkdir(parents=True, exist_ok=True)
        key_file = self.root / "diode.key"
        if not key_file.exists():
            key_file.write_text(os.urandom(32).hex() + "\n", encoding="ascii")
        self.diode_key = bytes.fromhex(key_file.read_text(encoding="ascii").strip())
        if not (self.root / "ferry.pem").exists():
            sign.generate(sign.ED25519, self.root / "ferry")
        self.audit = AuditLog(self.root / "audit.jsonl")
        self.port = 0
        self.knobs: dict[str, Any] = dict(DEFAULT_KNOBS)
        self.reviews: list[dict[str, Any]] = []
        self.discs: list[Path] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sock: Any = None

    # -- where things are --------------------------------------------------------
    @property
    def materials(self) -> Path:
        """The extranet's material store the hub's gate reads."""
        return self.root / "materials"

    @property
    def arrivals(self) -> Path:
        """Where discs are handed to the hub (its ``bridge.ferry_inbox.path``)."""
        return self.root / "arrivals"

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    def environ(self) -> dict[str, str]:
        """config.yaml's variables for a hub whose bridge is this network."""
        return {"HUB_BRIDGE_ENABLED": "true", "HUB_DIODE_HOST": self.host,
                "HUB_DIODE_PORT": str(self.port), "HUB_DIODE_KEY": self.diode_key.hex(),
                "HUB_DIODE_RATE": "200M", "HUB_MATERIALS_DIR": str(self.materials),
                "HUB_FERRY_ARRIVALS": str(self.arrivals),
                "HUB_FERRY_KEY": str(self.root / "ferry.pub.pem"),
                "HUB_FERRY_POLL_SECONDS": "0.1"}

    def deposit(self, data: bytes) -> str:
        """Put a file into the material store as a platform would; its SHA-256."""
        sha = hashlib.sha256(data).hexdigest()
        tmp = self.materials / f".{sha}.part"
        tmp.write_bytes(data)
        os.replace(tmp, self.materials / sha)
        return sha

    # -- knobs -------------------------------------------------------------------
    def set(self, **knobs: Any) -> None:
        unknown = sorted(set(knobs) - set(DEFAULT_KNOBS))
        if unknown:
            raise TypeError(_("unknown internal network knob(s): {names}",
                              names=", ".join(unknown)))
        with self._lock:
            self.knobs.update(knobs)

    def clear(self) -> None:
        with self._lock:
            self.knobs = dict(DEFAULT_KNOBS)

    # -- life cycle --------------------------------------------------------------
    def start(self) -> InternalNetwork:
        if self._threads:
            return self
        self._sock = open_receive_socket(self.host, 0)
        self.port = self._sock.getsockname()[1]
        receiver = DiodeReceiver(self._sock, self.inbox, verifier=HmacKey(self.diode_key),
                                 staging=self.root / "staging",
                                 quarantine_dir=self.root / "quarantine",
                                 policy=ContentPolicy(audit=self.audit), audit=self.audit)
        self._stop.clear()
        self._threads = [
            threading.Thread(target=self._receive, args=(receiver,), name="internal-gate",
                             daemon=True),
            threading.Thread(target=self._desk, name="internal-desk", daemon=True)]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)
        self._threads = []
        if self._sock is not None:
            with contextlib.suppress(Exception):
                self._sock.close()
            self._sock = None
        # Its closing checkpoint now, not at interpreter exit: the caller may remove
        # the folder right after (an audit log closed later recreates it).
        with contextlib.suppress(OSError):
            self.audit.close()

    def __enter__(self) -> InternalNetwork:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _receive(self, receiver: DiodeReceiver) -> None:
        try:
            receiver.run(stop=self._stop)
        except Exception as exc:  # noqa: BLE001 - reported to the test, not raised in a thread
            self.errors.append(f"receiver: {exc}")

    def _desk(self) -> None:
        watcher = InboxWatcher(self.inbox)
        while not self._stop.wait(self.interval):
            try:
                self.review_pending(watcher)
            except Exception as exc:  # noqa: BLE001 - the desk keeps going
                self.errors.append(f"desk: {exc}")

    # -- the review desk -----------------------------------------------------------
    def review_pending(self, watcher: InboxWatcher | None = None) -> int:
        """Answer every application whose manifest and files have all arrived."""
        watcher = watcher or InboxWatcher(self.inbox)
        with self._lock:
            knobs = dict(self.knobs)
        if knobs["hold"]:
            return 0
        delivered = watcher.poll()
        files = {o.digest: o for o in delivered if o.kind != "batch"}
        done = 0
        for obj in delivered:
            manifest = _manifest_of(obj)
            if manifest is None:
                continue
            listed = [m for m in manifest.get("materials") or [] if isinstance(m, dict)]
            got = [files[m["sha256"]] for m in listed if m.get("sha256") in files]
            if len(got) < len(listed):
                continue  # the rest is still on its way through the gate
            self._answer(manifest, listed, knobs)
            for o in [*got, obj]:
                watcher.ack(o)
            done += 1
        return done

    def _answer(self, manifest: dict[str, Any], listed: list[dict[str, Any]],
                knobs: dict[str, Any]) -> None:
        business_no = str(manifest.get("business_no") or "")
        received = [{"name": m.get("object") or m.get("name") or m["sha256"],
                     "sha256": m["sha256"], "size": m.get("size", 0)} for m in listed]
        if knobs["receipt"] == "none":
            received = []
        elif knobs["receipt"] == "other" and received:
            received[0] = {**received[0], "sha256": hashlib.sha256(b"other").hexdigest()}
        review = {"kind": "review_result", "business_no": business_no,
                  "tenant": str(manifest.get("tenant") or self.tenant),
                  "result": knobs["result"], "opinion": knobs["opinion"],
                  "reviewed_at": _now(), "organisation": dict(ORGANISATION),
                  "received": received}
        self.burn(review, tamper=bool(knobs["tamper"]))
        if knobs["tamper"]:
            self.set(tamper=False)
        self.reviews.append(review)

    # -- the burner ------------------------------------------------------------------
    def burn(self, message: dict[str, Any], *, tamper: bool = False) -> Path:
        """Pack ``message`` on a signed disc and hand it to the hub; the image."""
        folder = self.root / "outbox" / f"disc-{len(self.discs) + 1:04d}"
        folder.mkdir(parents=True)
        name = f"review-{message.get('business_no') or 'result'}.json"
        (folder / name).write_text(json.dumps(message, ensure_ascii=False), encoding="utf-8")
        packer = FerryPacker(signer=sign.load_signer(self.root / "ferry.pem"),
                             sender=self.sender, sequence=SequenceFile(self.root / "sequence.json"),
                             audit=self.audit, medium_size=64 * 1024 * 1024)
        (disc,) = packer.pack(collect([folder]), self.root / "discs").discs
        shutil.rmtree(folder, ignore_errors=True)
        image = Path(disc.image)
        if tamper:
            patch_file(image, f"data/messages/{name}",
                       lambda data: data[:10] + bytes([data[10] ^ 1]) + data[11:])
        # Copied under a dot-name the hub never takes, then handed over in one rename.
        hidden = self.arrivals / f".{image.name}.part"
        shutil.copyfile(image, hidden)
        os.replace(hidden, self.arrivals / image.name)
        self.discs.append(image)
        return image


def _manifest_of(obj: DeliveredObject) -> dict[str, Any] | None:
    if obj.kind != "batch":
        return None
    try:
        data = obj.messages()
    except Exception:  # noqa: BLE001 - not a manifest
        return None
    return data if isinstance(data, dict) and data.get("kind") == KIND else None


def _now() -> str:
    from datetime import datetime, timedelta, timezone

    return datetime.now(timezone(timedelta(hours=8))).isoformat(timespec="seconds")
