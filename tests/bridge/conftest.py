"""Fixtures for the bridge tests: keys, a loopback diode rig with an optional
lossy relay between sender and receiver, bounded in time."""

from __future__ import annotations

import os
import random
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bdchub.bridge.diode.manifest import HmacKey
from bdchub.bridge.diode.receiver import DiodeReceiver, ReceiverOptions
from bdchub.bridge.diode.relay import LinkModel, LossyRelay
from bdchub.bridge.diode.rxsocket import open_receive_socket
from bdchub.bridge.diode.sender import DiodeSender, SendReport
from bdchub.bridge.diode.settings import DiodeSettings
from bdchub.bridge.policy import ContentPolicy
from bdchub.core.audit import AuditLog


@pytest.fixture
def diode_key() -> HmacKey:
    return HmacKey(secrets.token_bytes(32))


@pytest.fixture
def key_file(tmp_path: Path, diode_key: HmacKey) -> Path:
    path = tmp_path / "diode.key"
    path.write_text(diode_key.key.hex())
    return path


def pdf_bytes(size: int, seed: int = 0) -> bytes:
    """A payload the default content policy accepts (PDF magic + noise)."""
    noise = os.urandom(size) if seed == 0 else random.Random(seed).randbytes(size)
    return (b"%PDF-1.7\n" + noise)[:size]


@pytest.fixture
def make_file(tmp_path: Path):  # noqa: ANN201
    """make_file(name, size, seed) -> Path of a policy-acceptable file."""

    def make(name: str, size: int, seed: int = 1) -> Path:
        path = tmp_path / "out" / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(pdf_bytes(size, seed))
        return path

    return make


@dataclass
class ReceiverRun:
    receiver: DiodeReceiver
    thread: threading.Thread
    stop: threading.Event
    error: list[BaseException] = field(default_factory=list)

    def wait(self, timeout: float = 30.0) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "receiver did not finish in time"
        if self.error:
            raise self.error[0]


@dataclass
class DiodeRig:
    """Receiver (thread) <- optional LossyRelay <- sender, all on 127.0.0.1."""

    root: Path
    key: HmacKey
    audit: AuditLog
    relay: LossyRelay | None = None
    port: int = 0
    _runs: list[ReceiverRun] = field(default_factory=list)

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def staging(self) -> Path:
        return self.root / "staging"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    def start_receiver(self, *, max_objects: int | None = None, timeout: float = 30.0,
                       idle_timeout: float | None = None, policy: ContentPolicy | None = None,
                       verifier: HmacKey | None = None,
                       options: ReceiverOptions | None = None) -> ReceiverRun:
        sock = open_receive_socket("127.0.0.1", self.port)
        self.port = sock.getsockname()[1]
        receiver = DiodeReceiver(sock, self.inbox, verifier=verifier or self.key,
                                 staging=self.staging, quarantine_dir=self.quarantine,
                                 policy=policy or ContentPolicy(audit=self.audit),
                                 audit=self.audit, options=options)
        stop = threading.Event()
        run = ReceiverRun(receiver, threading.Thread(daemon=True), stop)

        def target() -> None:
            try:
                receiver.run(stop=stop, max_objects=max_objects, timeout=timeout,
                             idle_timeout=idle_timeout)
            except BaseException as exc:  # noqa: BLE001 - re-raised in wait()
                run.error.append(exc)
            finally:
                sock.close()

        run.thread = threading.Thread(target=target, name="diode-rx", daemon=True)
        run.thread.start()
        self._runs.append(run)
        return run

    def with_relay(self, model: LinkModel, gate=None) -> LossyRelay:  # noqa: ANN001
        assert self.port, "start the receiver first"
        self.relay = LossyRelay(("127.0.0.1", self.port), model, gate=gate).start()
        return self.relay

    def sender(self, settings: DiodeSettings | None = None, **kw: object) -> DiodeSender:
        target = self.relay.address if self.relay else ("127.0.0.1", self.port)
        return DiodeSender(target, kw.pop("signer", self.key),  # type: ignore[arg-type]
                           settings or DiodeSettings(rate_bps=80e6), audit=self.audit)

    def send_files(self, paths: list[Path], settings: DiodeSettings | None = None,
                   **kw: object) -> SendReport:
        with self.sender(settings, **kw) as tx:
            objs = [tx.prepare_file(p) for p in paths]
            try:
                return tx.send(objs)
            finally:
                for o in objs:
                    o.close()

    def events(self, event: str) -> list[dict]:
        return [r for r in self.audit.records() if r["event"] == event]

    def close(self) -> None:
        for run in self._runs:
            run.stop.set()
            run.thread.join(10)
        if self.relay is not None:
            self.relay.stop()


@pytest.fixture
def rig(tmp_path: Path, diode_key: HmacKey) -> Iterator[DiodeRig]:
    r = DiodeRig(tmp_path, diode_key, AuditLog(tmp_path / "audit.jsonl"))
    try:
        yield r
    finally:
        r.close()


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.02) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False
