"""The connector contract: every endpoint type the hub can talk to.

A connector is the hub's hand on one endpoint (a department's REST API, a
legacy SOAP service, another broker). Its whole contract is this class:

- ``config_schema``: JSON Schema of the keys its YAML block may hold (besides
  the common ``type``/``timeout``/``retry``/``breaker``/``limits`` keys, which
  ``connectors.registry.COMMON_SCHEMA`` describes). Checked at load time.
- ``open()`` / ``call(operation, payload, context)`` / ``close()``.
  ``close`` is idempotent and never raises.
- ``health()``: a cheap probe for ``hub check --ping`` and the ops screen;
  it reports, it does not raise.
- ``classify(exc)``: translate a library error into the hub's tree
  (``RecoverableError`` or ``PermanentError``), so retry policies never look
  at library types. Raise from the translated error (``raise err from exc``).
- ``context.deadline`` (a ``time.monotonic()`` value) bounds every socket
  operation of one call: use ``context.remaining(self.timeout)``.

Retries, the circuit breaker and the limits are not a type's business:
``connectors.build(name, block)`` wraps every type in
``connectors.resilience.ResilientConnector``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from bdchub.core.errors import ConnectorError, PermanentError


@dataclass(frozen=True)
class CallContext:
    """What a call knows about the message that caused it."""

    message_id: str = ""
    business_no: str = ""
    tenant: str = ""
    idempotency_key: str = ""
    deadline: float | None = None  # time.monotonic() value
    headers: dict[str, str] = field(default_factory=dict)

    def remaining(self, default: float) -> float:
        if self.deadline is None:
            return default
        return max(0.0, min(default, self.deadline - time.monotonic()))


@dataclass(frozen=True)
class Health:
    up: bool
    latency_ms: float = 0.0
    detail: str = ""
    circuit: str = "closed"


class Connector:
    """Base class of every connector type. Subclasses set ``type_name`` and
    ``config_schema`` and implement ``call``; the rest has safe defaults."""

    type_name: ClassVar[str] = ""
    config_schema: ClassVar[dict[str, Any]] = {"type": "object"}
    #: ``call`` may run on the inbound server's event loop (``core.greenloop``):
    #: it waits only through ``greenloop``. Otherwise the loop hands it to a thread.
    loop_ready: ClassVar[bool] = False

    def __init__(self, name: str, config: dict[str, Any], *, base_dir: str | Path | None = None):
        self.name = name
        self.config = config
        # Folder of the config file: relative paths in the block are resolved against it.
        self.base_dir = Path(base_dir) if base_dir is not None else None

    @property
    def timeout(self) -> float:
        """Seconds one attempt may take when the context carries no deadline."""
        return float(self.config.get("timeout", 10.0))

    def resolve_path(self, path: str | Path) -> Path:
        """``path`` from the config, relative to the config file's folder."""
        path = Path(path).expanduser()
        if not path.is_absolute() and self.base_dir is not None:
            path = self.base_dir / path
        return path

    @property
    def endpoint(self) -> str:
        """Where it points, for tables and logs (no secrets)."""
        return str(self.config.get("base_url") or self.config.get("wsdl")
                   or self.config.get("url") or "")

    def operations(self) -> list[str]:
        """Names of the operations this connector offers, if known at load time."""
        return sorted((self.config.get("operations") or {}).keys())

    def open(self) -> None:
        """Acquire sessions, sockets, WSDLs. Called once before the first call."""

    def call(self, operation: str, payload: Any, context: CallContext | None = None) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        """Release everything. Idempotent; must never raise."""

    def health(self) -> Health:
        return Health(up=True, detail="no probe")

    def classify(self, exc: BaseException) -> ConnectorError:
        """Map a library error to the hub's tree. Default: permanent."""
        if isinstance(exc, ConnectorError):
            return exc
        return PermanentError(str(exc) or type(exc).__name__,
                              connector=self.name)

    def __enter__(self) -> Connector:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
