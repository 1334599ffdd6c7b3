"""``render_notice``: the electronic notice document of a decision (guide §三(一)1).

::

    - render_notice: {}                       # kind from the message type
    - render_notice: {kind: "'refusal'", font: /srv/fonts/simsun.ttf}

Renders the notice the message is (``acceptance.notified`` 受理通知书,
``refusal.notified`` 不予受理告知书, ``correction.requested`` 补正通知书) as PDF
(``notice_pdf``), keeps it in the store (``notices``, sealed) and puts on the
body what the platform needs to show and check it:

- ``notice_file``: ``{name, media_type, sha256, size}`` (the canonical ``file``);
- ``notice_id`` and ``notice_url``: where the platform fetches it again
  (``GET /api/v1/applications/{business_no}/notices/{id}``, signed, for the
  cases it may read);
- ``notice_content``: the file, base64, so it travels with the notice.

A document that answers a request rather than a case (the no-property
certificate, 无房证明)::

    - render_notice: {kind: "'no_property'", into: document_file, issued_to_requester: true}

has no business number: it is kept under its own id (32 hex digits, a number
the notices URL takes) and, with ``issued_to_requester``, as issued to the client
that sent the request (its ``inbound.client`` and channel), who fetches it as it
fetches its own cases' notices. With ``into`` the body gains, at that path, only
``{file_name, media_type, sha256, size, id, url}``: an answer that goes out
through the masking block carries no file and no ``name`` field to mask. A
document that names a person (kind ``no_property``) is rendered from the body
as the masking block shows it, so the file says what the answer says.

The notice's id is derived from the message it answers, so a retry, a park or
a redelivery after a crash finds the document already kept and sends the same
bytes again. The hop says the id and the SHA-256 (``hub trace``).

No CJK font on the machine is an installation fault the operator fixes (Debian:
``fonts-wqy-microhei``): the step fails as recoverable, so the notice parks
and goes out once the font is there. A notice that cannot be laid out at all
is a permanent error (dead letter).
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

from bdchub.core.errors import PermanentError, RecoverableError, StoreError
from bdchub.core.i18n import _
from bdchub.core.ids import derive_id

from ...body import with_path
from ...language import EXPR
from ..base import Compiling, StepKind
from . import notice_pdf

URL = "/api/v1/applications/{business_no}/notices/{id}"
_SAFE = re.compile(r"[^A-Za-z0-9_-]")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def _date(value: Any) -> str | None:
    """The YYYY-MM-DD a correction notice's ``deadline`` starts with, or None."""
    return value[:10] if isinstance(value, str) and _DATE.match(value) else None


class RenderNotice(StepKind):
    name = "render_notice"
    schema = {
        "type": "object", "additionalProperties": False,
        "properties": {
            "kind": {**EXPR, "description": "acceptance, refusal or correction; default: by "
                                            "the message type"},
            "font": {"type": "string", "minLength": 1,
                     "description": "a TrueType CJK font file; default $BDCHUB_NOTICE_FONT, "
                                    "else Debian's fonts-wqy-microhei"},
            "into": {"type": "string", "minLength": 1,
                     "description": "dotted body path of {file_name, media_type, sha256, size, "
                                    "id, url} instead of the notice_* fields"},
            "issued_to_requester": {"type": "boolean", "default": False,
                                    "description": "kept as issued to the client that sent "
                                                   "the request, who may fetch it"},
        },
    }

    def compile(self, spec: Any, ctx: Compiling) -> dict[str, Any]:
        spec = spec or {}
        return {"kind": ctx.expr(spec["kind"], "kind") if spec.get("kind") else None,
                "font": spec.get("font"), "into": spec.get("into"),
                "requester": bool(spec.get("issued_to_requester"))}

    def run(self, engine, step, run) -> str:  # noqa: ANN001 - see StepKind.run
        c = step.compiled
        kind = c["kind"].search(run.data()) if c["kind"] else notice_pdf.KINDS.get(run.type)
        if kind not in notice_pdf.TITLES:
            raise PermanentError(_("no notice of kind '{kind}' for a {type} message",
                                   kind=kind, type=run.type))
        notice_id = derive_id(run.origin, run.route.name, step.id, "notice")
        # A document answering a request (no business number) is kept under its own id.
        key = run.business_no or notice_id.replace("-", "")
        try:
            kept = engine.store.notice(run.tenant, key, notice_id)
            if kept is None:
                kept = self._render(engine, run, kind, key, notice_id, c)
            if kind == "correction" and run.business_no:
                # What the notice states is what binds: the door refuses materials after it.
                engine.store.note_correction_deadline(
                    run.tenant, run.business_no, deadline=_date(run.body.get("deadline")),
                    notice_id=notice_id, at=float(kept["created_at"]))
        except StoreError as exc:  # the store comes back; the notice waits for it
            raise RecoverableError(str(exc)) from exc
        url = URL.format(business_no=key, id=notice_id)
        if c["into"]:
            run.body = with_path(run.body, c["into"], {
                "file_name": kept["name"], **{k: kept[k] for k in ("media_type", "sha256", "size")},
                "id": notice_id, "url": url})
        else:
            run.body = {**run.body,
                        "notice_file": {k: kept[k] for k in ("name", "media_type", "sha256", "size")},
                        "notice_id": notice_id, "notice_url": url,
                        "notice_content": kept["content"]}
        return f"{kind} {notice_id} sha256 {kept['sha256']} {kept['size']} B"

    @staticmethod
    def _render(engine, run, kind: str, key: str, notice_id: str,  # noqa: ANN001
                c: dict[str, Any]) -> dict[str, Any]:
        found = notice_pdf.find_font(c["font"])
        if found is None:
            raise RecoverableError(_("no CJK font to set the notice in: install Debian's "
                                     "fonts-wqy-microhei or name one with {env}",
                                     env=notice_pdf.FONT_ENV))
        # A certificate about a person says what the (masked) answer says, no more.
        notice = engine.masking(run.body) if kind in notice_pdf.MASKED else run.body
        try:
            pdf = notice_pdf.render(kind, notice, business_no=key, notice_no=notice_id,
                                    font=found)
        except Exception as exc:  # noqa: BLE001 - fpdf2 and fontTools raise their own kinds
            raise PermanentError(_("the {kind} notice of {business_no} cannot be rendered: "
                                   "{error}", kind=kind, business_no=key,
                                   error=exc)) from exc
        row = {"id": notice_id, "tenant": run.tenant, "business_no": key,
               "message_id": run.received.id, "kind": kind,
               "name": f"{_SAFE.sub('_', key)}-{kind}.pdf",
               "media_type": notice_pdf.MEDIA_TYPE, "sha256": hashlib.sha256(pdf).hexdigest(),
               "size": len(pdf), "content": base64.b64encode(pdf).decode("ascii"),
               "created_at": run.clock()}
        recipient = ({"client": run.headers.get("inbound.client") or "",
                      "channel": run.headers.get("inbound.channel") or ""}
                     if c["requester"] else None)
        if not engine.store.add_notice(recipient=recipient, **row):
            # another worker kept it first: theirs stands
            return engine.store.notice(run.tenant, key, notice_id) or row
        return row


KIND = RenderNotice()
