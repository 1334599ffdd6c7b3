"""``window_county`` / ``window_province`` / ``window_national`` — one-window
platforms receiving progress and notices, app-key HMAC auth.

``POST /progress`` and ``POST /notices`` take any JSON object and answer
``{"receipt_id", "duplicate"}``; an ``Idempotency-Key`` header seen before
gets the first receipt back with ``duplicate: true`` (the received log keeps
every delivery, so tests can count retries).
"""

from __future__ import annotations

import threading
from typing import Any

from ..rest import AppKeyAuth, RestEndpoint, route
from ..server import Request


class WindowEndpoint(RestEndpoint):
    protocol = "REST/JSON + app-key HMAC"

    def __init__(self, sandbox: Any, name: str):
        super().__init__(sandbox, name)
        creds = sandbox.data["secrets"][name]
        self.auth = AppKeyAuth(creds["app_key"], creds["app_secret"])
        self._receipts: dict[str, str] = {}
        self._seq = 0
        self._seq_lock = threading.Lock()
        self.level = name.split("_", 1)[1]

    def authenticate(self, req: Request) -> None:
        self.auth.check(req)

    def _accept(self, req: Request, kind: str) -> Any:
        req.json_object()
        key = req.header("Idempotency-Key")
        with self._seq_lock:
            if key and key in self._receipts:
                return {"receipt_id": self._receipts[key], "duplicate": True}
            self._seq += 1
            receipt = f"{self.level[0].upper()}{kind[0].upper()}{self._seq:08d}"
            if key:
                self._receipts[key] = receipt
        return {"receipt_id": receipt, "duplicate": False}

    @route("POST", "/progress", "progress")
    def progress(self, req: Request) -> Any:
        return self._accept(req, "progress")

    @route("POST", "/notices", "notice")
    def notices(self, req: Request) -> Any:
        return self._accept(req, "notice")
