"""A connector for unit tests, like httpx's MockTransport.

In YAML it answers from canned ``responses`` (operation -> reply). In Python a
``handler(operation, payload, context)`` may be given instead, and every call
is recorded in ``calls`` so tests can assert what the hub sent.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bdchub.core.errors import PermanentError

from .base import CallContext, Connector, Health

Handler = Callable[[str, Any, CallContext], Any]


class FakeConnector(Connector):
    type_name = "fake"
    loop_ready = True  # answers from memory, never waits (unless a handler is given)
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "responses": {"type": "object",
                          "description": "operation name -> reply returned as is"},
            "operations": {"type": "object",
                           "description": "operation name -> anything (only the names are used)"},
        },
    }

    def __init__(self, name: str, config: dict[str, Any], handler: Handler | None = None,
                 *, base_dir: str | Path | None = None):
        super().__init__(name, config, base_dir=base_dir)
        self.handler = handler
        if handler is not None:  # a test's handler may block: the loop hands it to a thread
            self.loop_ready = False
        self.calls: list[tuple[str, Any, CallContext]] = []
        self.opened = False
        self.closed = False

    def operations(self) -> list[str]:
        return sorted(set(self.config.get("responses") or {}) | set(super().operations()))

    def open(self) -> None:
        self.opened = True

    def call(self, operation: str, payload: Any, context: CallContext | None = None) -> Any:
        context = context or CallContext()
        self.calls.append((operation, copy.deepcopy(payload), context))
        if self.handler is not None:
            return self.handler(operation, payload, context)
        responses = self.config.get("responses") or {}
        if operation not in responses:
            raise PermanentError(f"fake connector {self.name} has no reply for {operation}",
                                 connector=self.name, operation=operation)
        return copy.deepcopy(responses[operation])

    def close(self) -> None:
        self.closed = True

    def health(self) -> Health:
        return Health(up=True, detail="fake")
