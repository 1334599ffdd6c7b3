"""``window_county`` / ``window_province`` / ``window_national`` — one-window
platforms receiving progress and notices, app-key HMAC auth.

``POST /progress``, ``POST /notices`` and ``POST /results`` take any JSON
object and answer ``{"receipt_id", "duplicate"}``; an ``Idempotency-Key``
header seen before gets the first receipt back with ``duplicate: true`` (the
received log keeps every delivery, so tests can count retries).

A notice that carries its electronic document (``notice_content``, base64,
with ``notice_file: {sha256, size}``) is checked as a platform would before
showing it to the applicant: content that does not match its digest or size
answers 422 ``BAD_NOTICE_FILE`` and is not received. Outages, errors and
latency are the generic fault knobs (``sandbox/README.md``), per level.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import threading
from typing import Any

from bdchub.core.i18n import _

from ..rest import AppKeyAuth, RestEndpoint, route
from ..server import HttpError, Request


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
        self._check_document(req.json_object())
        return self._accept(req, "notice")

    @route("POST", "/results", "result")
    def results(self, req: Request) -> Any:
        return self._accept(req, "result")

    @staticmethod
    def _check_document(body: dict[str, Any]) -> None:
        content = body.get("notice_content")
        if content is None:
            return
        described = body.get("notice_file") if isinstance(body.get("notice_file"), dict) else {}
        try:
            raw = base64.b64decode(str(content), validate=True)
        except (binascii.Error, ValueError):
            raw = None
        if (raw is None or hashlib.sha256(raw).hexdigest() != described.get("sha256")
                or len(raw) != described.get("size")):
            raise HttpError(422, "BAD_NOTICE_FILE",
                            _("the notice document does not match its SHA-256 or size"))
