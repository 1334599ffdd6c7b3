"""One exception tree for the whole hub.

Library errors (yaml, jsonschema, requests, zeep, kombu, sqlalchemy, OS errors)
are translated where they cross into hub code, with ``raise ... from exc`` so
the cause stays chained. Callers only ever catch these::

    HubError                       root; the CLI prints "错误: …" / "Error: …"
    ├── ConfigError                config.yaml cannot be used (file:line:col, key, fix)
    ├── MessageError               a message fails its canonical schema or a domain check
    ├── ConnectorError             a call to an endpoint failed
    │   ├── RecoverableError       worth retrying: timeouts, 5xx, refused, 429, broker gone
    │   │   ├── TimeoutError_      no answer within the per-call timeout
    │   │   └── CircuitOpenError   the breaker is open; fail fast until half-open
    │   └── PermanentError         retrying will not help: 4xx, SOAP client fault, bad reply
    │       └── UnsafeXMLError     the peer sent a DTD, entities or a huge tree
    ├── RouteError                 a route step cannot complete (carries route and step)
    ├── StoreError                 the store (SQLite / PostgreSQL) failed
    └── BridgeError                diode or ferry
        ├── IntegrityError_        size, hash or signature does not match
        ├── ReplayError            a batch or session already consumed
        ├── ExpiredError           a batch past its expiry (not a replay: never consumed)
        └── PolicyError            content policy refused an object (goes to quarantine)

``RecoverableError`` versus ``PermanentError`` is what retry, park and
dead-letter policies look at; nothing else in the hub inspects library errors.
"""

from __future__ import annotations


class HubError(Exception):
    """Root of every error the hub raises on purpose.

    ``str(err)`` is a complete sentence for a person, already translated.
    """

    exit_code = 1


class ConfigError(HubError):
    """The configuration cannot be used. ``problems`` holds every problem found."""

    exit_code = 2

    def __init__(self, problems: list[str] | str):
        if isinstance(problems, str):
            problems = [problems]
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class MessageError(HubError):
    """A message violates its schema. ``violations`` are (json_path, message) pairs."""

    def __init__(self, message: str, violations: list[tuple[str, str]] | None = None):
        self.violations = list(violations or [])
        super().__init__(message)


class ConnectorError(HubError):
    """A connector call failed. ``connector`` and ``operation`` say where."""

    recoverable = False

    def __init__(self, message: str, *, connector: str = "", operation: str = "",
                 status: int | None = None, retry_after: float | None = None):
        self.connector = connector
        self.operation = operation
        self.status = status
        self.retry_after = retry_after
        super().__init__(message)


class RecoverableError(ConnectorError):
    recoverable = True


class TimeoutError_(RecoverableError):  # noqa: N801 - avoid shadowing the builtin
    pass


class CircuitOpenError(RecoverableError):
    pass


class PermanentError(ConnectorError):
    recoverable = False


class UnsafeXMLError(PermanentError):
    pass


class RouteError(HubError):
    def __init__(self, message: str, *, route: str = "", step: str = ""):
        self.route = route
        self.step = step
        super().__init__(message)


class StoreError(HubError):
    pass


class BridgeError(HubError):
    pass


class IntegrityError_(BridgeError):  # noqa: N801
    pass


class ReplayError(BridgeError):
    pass


class ExpiredError(BridgeError):
    pass


class PolicyError(BridgeError):
    pass
