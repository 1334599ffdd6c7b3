"""``type: diode`` — a connector that sends through the one-way gate.

``call("send", payload)`` sends a file (a path, or ``{"path": …, "name": …}``)
or a JSON message batch (a list or dict) across and returns the object's
receipt. ``call("send_materials", application)`` sends an application's
materials from the material store (``materials_dir``, files named by their
SHA-256; ``bridge.diode.materials``) with a manifest tying them to the case.
There is no reply channel: success means "sent with the configured FEC and
passes", and the receiver's audit log says what arrived; that the internal
side has them only the internal side can say (by disc: docs/flows.md, "The
bridge in the flows"). Idle heartbeats keep the receiver informed that the
sender is alive.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from bdchub.connectors.base import CallContext, Connector, Health
from bdchub.core.audit import AuditLog, Rotation
from bdchub.core.errors import (
    BridgeError,
    ConfigError,
    ConnectorError,
    PermanentError,
    RecoverableError,
)
from bdchub.core.i18n import _

from .manifest import HmacKey, make_signer
from .materials import MaterialsBatch
from .sender import DiodeSender, Outgoing, SendReport
from .settings import DiodeSettings, parse_rate

OPERATIONS = ("send", "send_materials")


def gate_audit(block: Mapping[str, Any], resolve: Callable[[str], Path]) -> AuditLog | None:
    """The connector's own audit log (``audit_log``, keyed by ``audit_key_file``), or
    None without one; ``resolve`` places a configured path. It rotates and is kept as
    the hub's log is by default (daily or at 64 MiB, 400 days), so it stays one chain
    across its files: the connector is built from its own block and never sees the
    config's ``audit:`` section. The console's audit page reads it through here too."""
    if not block.get("audit_log"):
        return None
    key = None
    if block.get("audit_key_file"):
        key = bytes.fromhex(resolve(block["audit_key_file"]).read_text().strip())
    return AuditLog(resolve(block["audit_log"]), key=key, rotation=Rotation())


class DiodeConnector(Connector):
    type_name: ClassVar[str] = "diode"
    config_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "host": {"type": "string", "description": "receiver address (the diode's input)"},
            "port": {"type": "integer", "minimum": 1, "maximum": 65535},
            "rate": {"type": ["string", "number"], "description": "bit rate, e.g. 200M"},
            "key_file": {"type": "string", "description": "shared HMAC key (hex)"},
            "key": {"type": "string", "pattern": "^([0-9a-fA-F]{2}){16,}$", "secret": True,
                    "description": "the shared HMAC key itself, in hex (at least 16 bytes), "
                                   "for a ${VAR} in place of key_file"},
            "materials_dir": {"type": "string", "minLength": 1,
                              "description": "the material store send_materials reads: the "
                                             "applicants' files named by their SHA-256"},
            "sign_key": {"type": "string", "description": "Ed25519 private key (PEM)"},
            "sig_alg": {"enum": ["hmac-sha256", "hmac-sm3"]},
            "loss": {"type": "number", "minimum": 0, "exclusiveMaximum": 0.5},
            "target": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
            "overhead": {"type": "number", "minimum": 0, "maximum": 10},
            "passes": {"type": "integer", "minimum": 1, "maximum": 100},
            "datagram_size": {"type": "integer", "minimum": 1024, "maximum": 65507},
            "k_max": {"type": "integer", "minimum": 1, "maximum": 254},
            "hash": {"enum": ["sha256", "sm3"]},
            "heartbeat_interval": {"type": "number", "exclusiveMinimum": 0},
            "audit_log": {"type": "string"},
            "audit_key_file": {"type": "string"},
        },
        "required": ["host", "port"],
        "anyOf": [{"required": ["key_file"]}, {"required": ["sign_key"]},
                  {"required": ["key"]}],
    }

    def __init__(self, name: str, config: dict[str, Any], *,
                 base_dir: str | Path | None = None):
        super().__init__(name, config, base_dir=base_dir)
        c = config
        self.settings = DiodeSettings(
            rate_bps=parse_rate(c.get("rate", "200M")),
            datagram_size=int(c.get("datagram_size", 1472)),
            loss_rate=float(c.get("loss", 0.02)), target_failure=float(c.get("target", 1e-9)),
            overhead=c.get("overhead"), passes=int(c.get("passes", 1)),
            k_max=int(c.get("k_max", 64)), hash_name=c.get("hash", "sha256"),
            heartbeat_interval=float(c.get("heartbeat_interval", 0.5)))
        self._sender: DiodeSender | None = None
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        return f"udp://{self.config.get('host')}:{self.config.get('port')}"

    def operations(self) -> list[str]:
        return list(OPERATIONS)

    @classmethod
    def config_check(cls, name: str, block: Any, base_dir: Any) -> _OperationCheck:
        return _OperationCheck(name)

    def open(self) -> None:
        if self._sender is not None:
            return
        c = self.config
        audit = gate_audit(c, self.resolve_path)
        if c.get("key") and not c.get("sign_key"):
            signer: Any = HmacKey(bytes.fromhex(c["key"]), c.get("sig_alg", "hmac-sha256"))
        else:
            signer = make_signer(self._path("key_file"), self._path("sign_key"),
                                 c.get("sig_alg", "hmac-sha256"))
        self._sender = DiodeSender((c["host"], int(c["port"])), signer, self.settings,
                                   audit=audit, sender_name=f"hub:{self.name}").open()
        self._stop.clear()
        self._beat = threading.Thread(target=self._heartbeats, name=f"diode-hb-{self.name}",
                                      daemon=True)
        self._beat.start()

    def _path(self, key: str) -> Any:
        """A file named in the config, relative to the config file's folder."""
        value = self.config.get(key)
        return self.resolve_path(value) if value else None

    def _heartbeats(self) -> None:
        while not self._stop.wait(self.settings.heartbeat_interval):
            sender = self._sender
            if sender is None:
                return
            try:
                sender.idle_heartbeat()
            except BridgeError:
                pass

    def call(self, operation: str, payload: Any, context: CallContext | None = None) -> Any:
        if operation not in OPERATIONS:
            raise PermanentError(_("the diode connector offers {ops}, not {op!r}",
                                   ops=", ".join(OPERATIONS), op=operation),
                                 connector=self.name, operation=operation)
        if self._sender is None:
            self.open()
        sender = self._sender
        assert sender is not None
        if operation == "send_materials":
            made: list[MaterialsBatch] = []

            def materials() -> list[Outgoing]:
                made.append(self._materials(sender, payload, context))
                return made[0].objects

            _objects, report = self._transfer(sender, materials)
            return made[0].receipt(report, self.settings.passes)
        (obj,), report = self._transfer(sender,
                                        lambda: [self._prepare(sender, payload, context)])
        m = obj.manifest
        return {"ref": m.ref, "name": m.name, "kind": m.kind, "size": m.size,
                "hash": f"{m.hash_name}:{m.digest}", "overhead": round(m.plan.overhead, 4),
                "datagrams": report.datagrams, "seconds": round(report.seconds, 3)}

    def _transfer(self, sender: DiodeSender, prepare: Callable[[], list[Outgoing]]
                  ) -> tuple[list[Outgoing], SendReport]:
        """Prepare objects and send them all, closing them after; the bridge's and
        the system's failures classified."""
        try:
            objects = prepare()
            try:
                report = sender.send(objects)
            finally:
                for obj in objects:
                    obj.close()
        except ConnectorError:
            raise
        except (BridgeError, OSError) as exc:
            raise self.classify(exc) from exc
        return objects, report

    def _materials(self, sender: DiodeSender, payload: Any,
                   context: CallContext | None) -> MaterialsBatch:
        if not self.config.get("materials_dir"):
            raise PermanentError(_("connector {name} has no materials_dir to send materials "
                                   "from", name=self.name), connector=self.name,
                                 operation="send_materials")
        return MaterialsBatch.prepare(sender, self._path("materials_dir"), payload,
                                      connector=self.name,
                                      business_no=context.business_no if context else "")

    def _prepare(self, sender: DiodeSender, payload: Any, context: CallContext | None) -> Any:
        if isinstance(payload, (str, os.PathLike)):
            return sender.prepare_file(payload)
        if isinstance(payload, dict) and set(payload) <= {"path", "name"} and "path" in payload:
            return sender.prepare_file(payload["path"], payload.get("name"))
        if isinstance(payload, (list, dict)):
            ident = (context.message_id if context and context.message_id else uuid.uuid4().hex)
            data = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
            return sender.prepare_bytes(data, f"batch-{ident}.json")
        raise PermanentError(_("diode payload must be a file path or a JSON batch, not {type}",
                               type=type(payload).__name__), connector=self.name,
                             operation="send")

    def close(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=5)
            self._beat = None
        sender, self._sender = self._sender, None
        if sender is not None:
            try:
                sender.close()
            except Exception:  # noqa: BLE001 - close must never raise
                pass

    def health(self) -> Health:
        up = self._sender is not None
        return Health(up=up, detail=_("one-way link to {endpoint}: the receiver cannot be "
                                      "probed; see its audit log", endpoint=self.endpoint))

    def classify(self, exc: BaseException) -> ConnectorError:
        if isinstance(exc, ConnectorError):
            return exc
        if isinstance(exc, ConfigError):
            return PermanentError(str(exc), connector=self.name, operation="send")
        cause = exc.__cause__
        if isinstance(cause, (FileNotFoundError, IsADirectoryError, PermissionError)):
            return PermanentError(str(exc), connector=self.name, operation="send")
        if isinstance(exc, OSError) or (isinstance(exc, BridgeError)
                                        and isinstance(exc.__cause__, OSError)):
            return RecoverableError(str(exc), connector=self.name, operation="send")
        return PermanentError(str(exc) or type(exc).__name__, connector=self.name,
                              operation="send")


class _OperationCheck:
    """``hub check``'s view of a diode block: the operations it offers (a typo in
    a route's ``operation:`` is reported at its line, not at the first send)."""

    def __init__(self, name: str):
        self.name = name

    def call(self, operation: str, payload_keys: list[str]) -> list[Any]:
        from bdchub.connectors.registry import CallProblem
        from bdchub.core.suggest import did_you_mean

        if operation in OPERATIONS:
            return []
        return [CallProblem(("operation",), _(
            "connector '{connector}' has no operation '{op}'{hint}; it has: {ops}",
            connector=self.name, op=operation, hint=did_you_mean(operation, OPERATIONS),
            ops=", ".join(OPERATIONS)))]

    def vendor_operations(self) -> list[str]:
        return list(OPERATIONS)
