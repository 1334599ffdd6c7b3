"""Idempotent intake: a repeated inbound write gets its first answer and goes nowhere.

A platform that gets no answer in time sends again. Every inbound write (the
JSON API's submissions and ``/api/v1/messages/{type}``, endpoints with
``reply: false``, the SOAP operations) honours an ``Idempotency-Key`` header
(IETF draft "The Idempotency-Key HTTP Header Field": a key the client chooses
per logical request, a bare token or a structured-field string): within
``inbound.idempotency.retention`` a request with a key its client already used

- with the same content answers the first answer (status, body, message id) with
  ``Idempotent-Replayed: true``, and nothing is forwarded;
- with other content is refused, 409 ``idempotency_key_reused``;
- while the first is still being handed over waits up to ``wait`` seconds for its
  answer, then answers 409 ``in_progress`` with ``Retry-After``.

The draft answers a reused key with 422; issue #11 asks for 409, and the codes
tell the cases apart. Applications (``application.submitted``) are also kept
by (client, business number) without a header: a second submission of a number
answers the first answer, or 409 ``business_no_reused`` with other content.
Corrected materials after a correction request (补正) go to
``POST /api/v1/applications/{business_no}/materials``; an application refused
(不予受理) and made again is a new application with a new business number.

Records are keyed by (tenant, client, key) in the hub's store (``HubPort.
request_records``, ``core.store.inbound_requests``), so every process and
every hub on one store agrees: the first request inserts its row before it is
handed over (insert-or-fail), and only the one that inserted forwards. A
request that is refused or cannot be handed over (a 4xx or 5xx) lets go of its
row, so it can be sent again; only accepted requests are remembered.
Department callbacks keep their content-derived ids (``web.dedupe``) besides.

Where a request stands is kept in its WSGI environ (``ENVIRON``) between the
intake's ``claim`` and the application's ``settle`` or ``abandon``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from werkzeug.http import unquote_header_value

from bdchub.core import greenloop
from bdchub.core.envelope import Envelope
from bdchub.core.errors import HubError
from bdchub.core.i18n import _

from .dedupe import _canonical
from .http import Answer, ApiError, Request

log = logging.getLogger("bdchub.web")

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
ENVIRON = "bdchub.idempotency"
APPLICATION = "application.submitted"

#: A key as the draft's examples send it: printable ASCII without spaces; quotes only
#: around a structured-field string.
KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
#: Headers of an answer kept with it; the rest (Content-Length …) are the server's.
KEPT_HEADERS = ("content-type", "location", "cache-control", "x-content-type-options")


class RecordStore(Protocol):
    """What the records need of the store (``core.store.Store`` has it)."""

    def claim_request(self, request_id: str, *, tenant: str, client: str, scope: str,
                      fingerprint: str, owner: str, now: float, lease: float,
                      expires_at: float) -> dict[str, Any] | None: ...

    def inbound_request(self, request_id: str) -> dict[str, Any] | None: ...

    def settle_request(self, request_id: str, owner: str, *, message_id: str, answer: str,
                       expires_at: float) -> bool: ...

    def release_request(self, request_id: str, owner: str) -> bool: ...


class Replay(Exception):
    """The request was answered before: ``answer`` is that answer, to send again."""

    def __init__(self, answer: Answer, message_id: str, scope: str):
        super().__init__(message_id)
        self.answer = answer
        self.message_id = message_id
        self.scope = scope


@dataclass(frozen=True)
class Claim:
    """One record a request holds until it is answered."""

    id: str
    owner: str
    scope: str
    message_id: str


def request_key(req: Request) -> str | None:
    """The request's ``Idempotency-Key`` (unquoted), None without one; 400 when malformed."""
    raw = req.environ.get("HTTP_IDEMPOTENCY_KEY")
    if raw is None:
        return None
    raw = raw.strip()
    quoted = raw.startswith('"')
    key = unquote_header_value(raw) if quoted and len(raw) > 1 and raw.endswith('"') else raw
    if quoted and key is raw or not KEY.match(key):
        raise ApiError(400, "bad_request",
                       _("the Idempotency-Key header must be 1 to 255 printable ASCII "
                         "characters without spaces"), reason="bad_idempotency_key")
    return key


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


class Idempotency:
    """The records of one application. ``records`` gives the hub's store when first
    needed (``HubPort.request_records``); ``settings`` is the ``inbound.idempotency``
    block with its defaults."""

    def __init__(self, records: Callable[[], RecordStore], settings: Mapping[str, Any], *,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = greenloop.sleep):
        self._records_of = records
        self._records: RecordStore | None = None
        self.retention = float(settings["retention"])
        self.wait = float(settings["wait"])
        self.lease = float(settings["lease"])
        self.by_business_no = bool(settings["business_no"])
        self.clock = clock
        self.sleep = sleep

    @property
    def records(self) -> RecordStore:
        if self._records is None:
            self._records = self._records_of()
        return self._records

    # -- the intake's side -------------------------------------------------------
    def claim(self, req: Request, envelope: Envelope) -> None:
        """Hold ``envelope``'s records for ``req`` before it is handed over: raises
        ``Replay`` with the first answer, or 409, when another request holds one, and
        ``HubError`` when the store cannot tell (nothing may be forwarded then)."""
        key = request_key(req)
        by_number = (self.by_business_no and envelope.type == APPLICATION
                     and bool(envelope.business_no))
        if key is None and not by_number:
            return
        client = req.client.name if req.client else ""
        content = _canonical(envelope.body)
        wanted = []
        if key is not None:
            # What the key stands for: the same call with the same content.
            wanted.append(("key", key, _digest(req.method, req.endpoint, *req.params,
                                               envelope.type,
                                               envelope.headers.get("http.query", ""), content)))
        if by_number:
            wanted.append(("business_no", envelope.business_no, _digest(envelope.type, content)))
        held: list[Claim] = req.environ.setdefault(ENVIRON, [])
        try:
            for scope, value, fingerprint in wanted:
                held.append(self._take(envelope, client, scope, value, fingerprint))
        except BaseException:
            self.abandon(req)
            raise

    def _take(self, envelope: Envelope, client: str, scope: str, value: str,
              fingerprint: str) -> Claim:
        tenant = envelope.tenant
        request_id = _digest(scope, tenant, client, value)
        owner = str(uuid.uuid4())
        deadline: float | None = None
        pause = 0.02
        while True:
            now = self.clock()
            held = self._call(self.records.claim_request, request_id, tenant=tenant,
                              client=client, scope=scope, fingerprint=fingerprint, owner=owner,
                              now=now, lease=self.lease, expires_at=now + self.retention)
            if held is None:
                return Claim(request_id, owner, scope, envelope.id)
            if held["fingerprint"] != fingerprint:
                raise _reused(scope, value)
            if held["state"] == "done" and held.get("answer"):
                raise Replay(_answer(held["answer"]), held.get("message_id") or "", scope)
            # The first request is being handed over: its answer is moments away.
            deadline = now + self.wait if deadline is None else deadline
            if now >= deadline:
                raise ApiError(409, "in_progress",
                               _("the same request is still being handled; try again in a "
                                 "moment"), reason=f"{scope}_in_progress",
                               headers=[("Retry-After", "1")])
            self.sleep(min(pause, max(0.0, deadline - now)))
            pause = min(pause * 2, 0.25)

    # -- the application's side --------------------------------------------------
    def settle(self, req: Request, answer: Answer) -> None:
        """Keep ``answer`` for the repeats of ``req`` when it was accepted (2xx); let
        the records go otherwise."""
        held = req.environ.pop(ENVIRON, None)
        if not held:
            return
        status, headers, body = answer
        if not 200 <= status < 300:
            self._release(held)
            return
        kept = {"status": status, "body": body.decode("utf-8", errors="replace"),
                "headers": [[name, value] for name, value in headers
                            if name.lower() in KEPT_HEADERS]}
        text = json.dumps(kept, ensure_ascii=False, separators=(",", ":"))
        expires_at = self.clock() + self.retention
        for claim in held:
            try:
                if not self._call(self.records.settle_request, claim.id, claim.owner,
                                  message_id=claim.message_id, answer=text,
                                  expires_at=expires_at):
                    log.warning("an idempotency record (%s) was taken over before its answer "
                                "was kept", claim.scope)
            except HubError as exc:
                # Accepted all the same; a repeat finds the record pending, then free
                # once its lease ends, and may be forwarded again.
                log.warning("the answer of an accepted request was not kept (%s): %s",
                            claim.scope, exc)

    def abandon(self, req: Request) -> None:
        """Let go of what ``req`` holds: it was not accepted."""
        held = req.environ.pop(ENVIRON, None)
        if held:
            self._release(held)

    def _release(self, held: list[Claim]) -> None:
        for claim in held:
            try:
                self._call(self.records.release_request, claim.id, claim.owner)
            except HubError as exc:  # the lease frees it in the end
                log.warning("an idempotency record (%s) was not released: %s", claim.scope, exc)

    @staticmethod
    def _call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        # A database write: on the inbound server's loop a thread waits for it.
        return greenloop.blocking(fn, *args, **kwargs)


def _answer(text: str) -> Answer:
    kept = json.loads(text)
    headers = [(name, value) for name, value in kept["headers"]]
    headers.append((REPLAYED, "true"))
    return int(kept["status"]), headers, kept["body"].encode("utf-8")


def _reused(scope: str, value: str) -> ApiError:
    if scope == "business_no":
        return ApiError(409, "business_no_reused",
                        _("business number {business_no} was already submitted by this client "
                          "with other content; send corrected materials to "
                          "/api/v1/applications/{business_no}/materials, and an application "
                          "made again after a refusal under a new business number",
                          business_no=value[:64]))
    return ApiError(409, "idempotency_key_reused",
                    _("this Idempotency-Key was already used for another request; use a new "
                      "key for every new request"))
