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

from ...language import EXPR
from ..base import Compiling, StepKind
from . import notice_pdf

URL = "/api/v1/applications/{business_no}/notices/{id}"
_SAFE = re.compile(r"[^A-Za-z0-9_-]")


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
        },
    }

    def compile(self, spec: Any, ctx: Compiling) -> dict[str, Any]:
        spec = spec or {}
        return {"kind": ctx.expr(spec["kind"], "kind") if spec.get("kind") else None,
                "font": spec.get("font")}

    def run(self, engine, step, run) -> str:  # noqa: ANN001 - see StepKind.run
        c = step.compiled
        kind = c["kind"].search(run.data()) if c["kind"] else notice_pdf.KINDS.get(run.type)
        if kind not in notice_pdf.TITLES:
            raise PermanentError(_("no notice of kind '{kind}' for a {type} message",
                                   kind=kind, type=run.type))
        notice_id = derive_id(run.origin, run.route.name, step.id, "notice")
        try:
            kept = engine.store.notice(run.tenant, run.business_no, notice_id)
            if kept is None:
                kept = self._render(engine, run, kind, notice_id, c["font"])
        except StoreError as exc:  # the store comes back; the notice waits for it
            raise RecoverableError(str(exc)) from exc
        run.body = {**run.body,
                    "notice_file": {k: kept[k] for k in ("name", "media_type", "sha256", "size")},
                    "notice_id": notice_id,
                    "notice_url": URL.format(business_no=run.business_no, id=notice_id),
                    "notice_content": kept["content"]}
        return f"{kind} {notice_id} sha256 {kept['sha256']} {kept['size']} B"

    @staticmethod
    def _render(engine, run, kind: str, notice_id: str, font: str | None) -> dict[str, Any]:  # noqa: ANN001
        found = notice_pdf.find_font(font)
        if found is None:
            raise RecoverableError(_("no CJK font to set the notice in: install Debian's "
                                     "fonts-wqy-microhei or name one with {env}",
                                     env=notice_pdf.FONT_ENV))
        try:
            pdf = notice_pdf.render(kind, run.body, business_no=run.business_no,
                                    notice_no=notice_id, font=found)
        except Exception as exc:  # noqa: BLE001 - fpdf2 and fontTools raise their own kinds
            raise PermanentError(_("the {kind} notice of {business_no} cannot be rendered: "
                                   "{error}", kind=kind, business_no=run.business_no,
                                   error=exc)) from exc
        row = {"id": notice_id, "tenant": run.tenant, "business_no": run.business_no,
               "message_id": run.received.id, "kind": kind,
               "name": f"{_SAFE.sub('_', run.business_no)}-{kind}.pdf",
               "media_type": notice_pdf.MEDIA_TYPE, "sha256": hashlib.sha256(pdf).hexdigest(),
               "size": len(pdf), "content": base64.b64encode(pdf).decode("ascii"),
               "created_at": run.clock()}
        if not engine.store.add_notice(**row):  # another worker kept it first: theirs stands
            return engine.store.notice(run.tenant, run.business_no, notice_id) or row
        return row


KIND = RenderNotice()
