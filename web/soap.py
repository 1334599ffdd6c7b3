"""Inbound SOAP 1.1 endpoint for legacy systems: ``POST /soap/inbound``, WSDL at ``?wsdl``.

Operations (document/literal, namespace ``urn:bdc-hub:inbound:1``; see
``schemas/wsdl/hub_inbound.wsdl``):

- ``ReportStageChange`` (YWH, Stage, Status, Time, Org, Note …) publishes
  ``progress.reported`` (canonical schema ``progress``);
- ``SubmitResult`` (YWH, RegType, RightType, UnitCode*, RegisteredAt, Org,
  RightHolder*, CertificateNo*, ProofNo*) publishes ``registration.recorded``
  (schema ``registration_result``).

Authentication: the same signed HTTP headers as the JSON API (checked before
the XML is parsed), or, for clients that cannot add headers, a WS-Security
UsernameToken with PasswordDigest (Username = app key, single-use Nonce,
Created within clock_skew). PasswordText is refused: it would put the secret on
the wire. The token is read before the client is known, so only the envelope's
Header is read for it, by a streaming parser that builds no tree, within hard
limits (``HEADER_BYTES``, ``HEADER_DEPTH``, ``HEADER_ELEMENTS``,
``HEADER_ATTRIBUTES``); the body becomes a tree only once the token is good.
A token beyond those limits counts as none (401).

Both operations report facts the legacy system may send again when unsure it
was heard: the message id is derived from the content (``web.dedupe``), so a
retry is the same message, answered with the same MessageId.

XML is read through ``core.safexml``: a document mentioning a DOCTYPE or an
ENTITY at all, in whatever encoding, is refused with a Client fault before the
parser sees it, and the parser itself loads no DTD, resolves no entity, fetches
nothing and keeps libxml2's tree limits. A checked message goes into the hub
through ``web.intake``, as the JSON API's do.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from lxml import etree

from bdchub.core import safexml
from bdchub.core.i18n import _

from .dedupe import ContentId
from .http import Answer, ApiError, Request
from .intake import Intake
from .signing import UsernameToken

WSDL_FILE = Path(__file__).resolve().parent.parent / "schemas" / "wsdl" / "hub_inbound.wsdl"
WSDL_ADDRESS = "http://127.0.0.1:8080/soap/inbound"

NS = "urn:bdc-hub:inbound:1"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
PASSWORD_DIGEST = ("http://docs.oasis-open.org/wss/2004/01/"
                   "oasis-200401-wss-username-token-profile-1.0#PasswordDigest")

XML_HEADERS = [("Content-Type", "text/xml; charset=utf-8"), ("Cache-Control", "no-store")]

STAGES = {"申请": "application", "受理": "acceptance", "不予受理": "refusal", "补正": "correction",
          "审核": "review", "不予登记": "refusal_to_register", "登簿": "registration",
          "缮证": "certificate", "发证": "certificate", "缮证发证": "certificate",
          "归档": "archive"}
STATUSES = {"办理中": "in_progress", "已完成": "completed", "完成": "completed",
            "中止": "suspended", "已撤回": "withdrawn", "撤回": "withdrawn"}

#: What an unauthenticated request may make the parser read: the token must lie
#: within the first HEADER_BYTES, in a header of at most these many elements,
#: attributes and levels.
HEADER_BYTES = 64 * 1024
HEADER_DEPTH = 12
HEADER_ELEMENTS = 200
HEADER_ATTRIBUTES = 200
_CHUNK = 8192
_SECURITY = f"{{{WSSE}}}Security"
_TOKEN = f"{{{WSSE}}}UsernameToken"
_TOKEN_FIELDS = {f"{{{WSSE}}}Username": "username", f"{{{WSSE}}}Password": "password",
                 f"{{{WSSE}}}Nonce": "nonce", f"{{{WSU}}}Created": "created"}

_HOST = re.compile(r"^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")


class SoapEndpoint:
    """The SOAP front door. ``public_url``: the hub's address as callers reach it,
    for the WSDL (default: the address the request came to)."""

    def __init__(self, intake: Intake, *, public_url: str | None = None):
        self.intake = intake
        self.public_url = public_url
        self.wsdl_template = WSDL_FILE.read_text(encoding="utf-8")
        self._wsdl_cache: dict[str, bytes] = {}
        self.content_id = ContentId()
        self.operations = {
            f"{{{NS}}}ReportStageChange": ("ReportStageChange", "progress.reported", "progress",
                                           self._stage_change),
            f"{{{NS}}}SubmitResult": ("SubmitResult", "registration.recorded",
                                      "registration_result", self._result),
        }

    # -- WSDL ------------------------------------------------------------------
    def get_wsdl(self, req: Request) -> Answer:
        if not req.has_arg("wsdl"):
            raise ApiError(404, "not_found", _("ask for the service description with ?wsdl"))
        base = self.public_url
        if not base:
            host = req.header("HTTP_HOST")
            if not _HOST.match(host):
                host = f"{req.header('SERVER_NAME') or '127.0.0.1'}:{req.header('SERVER_PORT') or '80'}"
            base = f"{req.environ.get('wsgi.url_scheme', 'http')}://{host}"
        body = self._wsdl_cache.get(base)
        if body is None:
            address = base.rstrip("/") + (req.environ.get("SCRIPT_NAME") or "") + "/soap/inbound"
            body = self.wsdl_template.replace(WSDL_ADDRESS, escape(address)).encode("utf-8")
            if len(self._wsdl_cache) < 64:
                self._wsdl_cache[base] = body
        return 200, list(XML_HEADERS), body

    # -- calls -----------------------------------------------------------------
    def post(self, req: Request) -> Answer:
        intake = self.intake
        body = intake.read_body(req)
        ctype = (req.header("CONTENT_TYPE").split(";")[0]).strip().lower()
        if ctype == "application/soap+xml":
            raise ApiError(415, "unsupported_media_type",
                           _("this endpoint speaks SOAP 1.1 (text/xml), not SOAP 1.2"),
                           reason="soap12")
        if ctype not in ("text/xml", "application/xml"):
            raise ApiError(415, "unsupported_media_type", _("a SOAP 1.1 request must be text/xml"),
                           reason="content_type")
        if req.header("HTTP_X_APP_KEY"):  # before parsing: no XML of an unknown client
            intake.authenticate(req)
        else:  # the header alone, streamed: no tree of an unknown client's body
            intake.authenticate_token(req, read_token(body))
        root = self.parse(body)
        operation = self._envelope_parts(root)
        name, type_, schema, build = self._operation(operation)
        message = build(operation)
        # Legacy systems may leave AreaCode out: the message takes the request's
        # tenant before its schema (which requires one) is checked.
        message.setdefault("tenant", intake.choose_tenant(req, message))
        envelope = intake.accept(req, type_, message, schema=schema,
                                 source=f"soap:{req.client.name}" if req.client else "soap",
                                 dedupe=self.content_id)
        answer = (f'<soap:Envelope xmlns:soap="{SOAP_ENV}"><soap:Body>'
                  f'<tns:{name}Response xmlns:tns="{NS}"><tns:Accepted>true</tns:Accepted>'
                  f"<tns:MessageId>{escape(envelope.id)}</tns:MessageId>"
                  f"<tns:YWH>{escape(envelope.business_no)}</tns:YWH>"
                  f"</tns:{name}Response></soap:Body></soap:Envelope>")
        return 200, list(XML_HEADERS), answer.encode("utf-8")

    @staticmethod
    def parse(body: bytes) -> etree._Element:
        if not body:
            raise ApiError(400, "malformed_xml", _("the SOAP request is empty"))
        try:
            return safexml.parse(body)
        except safexml.ForbiddenDtd as refused:
            raise ApiError(400, "unsafe_xml", _("DTDs and entity declarations are not allowed"),
                           reason=refused.reason) from None
        except etree.XMLSyntaxError as exc:
            raise ApiError(400, "malformed_xml", _("the request is not well-formed XML: {error}",
                                                   error=str(exc)[:200])) from None

    @staticmethod
    def _envelope_parts(root: etree._Element) -> etree._Element:
        """The one operation element in the envelope's Body."""
        _check_root(root.tag)
        body = root.find(f"{{{SOAP_ENV}}}Body")
        operations = [child for child in (body if body is not None else [])
                      if isinstance(child.tag, str)]
        if len(operations) != 1:
            raise ApiError(400, "malformed_xml",
                           _("the SOAP body must hold exactly one operation element"),
                           reason="body_shape")
        return operations[0]

    def _operation(self, element: etree._Element):
        found = self.operations.get(element.tag)
        if found is None:
            local = etree.QName(element).localname
            raise ApiError(404, "unknown_type", _("unknown operation '{name}'", name=local[:80]))
        return found

    # -- operations -> canonical messages --------------------------------------
    @staticmethod
    def _text(element: etree._Element, name: str) -> str | None:
        value = element.findtext(f"{{{NS}}}{name}")
        if value is None:
            return None
        value = value.strip()
        return value or None

    def _stage_change(self, op: etree._Element) -> dict[str, Any]:
        t = self._text
        stage = t(op, "Stage")
        status = t(op, "Status")
        message: dict[str, Any] = {
            "business_no": t(op, "YWH"),
            "stage": STAGES.get(stage or "", stage),
            "status": STATUSES.get(status or "", status),
            "time": t(op, "Time"),
            "organisation": _organisation(t(op, "Org"), t(op, "OrgCode")),
            "handler": t(op, "Handler"),
            "note": t(op, "Note"),
            "tenant": t(op, "AreaCode"),
        }
        return {k: v for k, v in message.items() if v is not None}

    def _result(self, op: etree._Element) -> dict[str, Any]:
        t = self._text
        holders = []
        for party in op.findall(f"{{{NS}}}RightHolder"):
            holder = {"name": t(party, "Name"), "id_type": t(party, "IdType"),
                      "id_number": t(party, "IdNumber"), "co_ownership": t(party, "CoOwnership"),
                      "share": t(party, "Share")}
            holders.append({k: v for k, v in holder.items() if v is not None})

        def many(name: str) -> list[str] | None:
            values = [(e.text or "").strip() for e in op.findall(f"{{{NS}}}{name}")]
            return values or None

        message: dict[str, Any] = {
            "business_no": t(op, "YWH"),
            "tenant": t(op, "AreaCode"),
            "registration_type": t(op, "RegType"),
            "right_type": t(op, "RightType"),
            "unit_codes": many("UnitCode"),
            "registered_at": t(op, "RegisteredAt"),
            "registrar": t(op, "Registrar"),
            "organisation": _organisation(t(op, "Org"), t(op, "OrgCode")),
            "right_holders": holders or None,
            "certificate_numbers": many("CertificateNo"),
            "proof_numbers": many("ProofNo"),
        }
        return {k: v for k, v in message.items() if v is not None}

    # -- faults ----------------------------------------------------------------
    @staticmethod
    def fault_answer(err: ApiError, request_id: str) -> Answer:
        """A SOAP 1.1 fault. Client faults for bad input, Server faults for the hub's
        own trouble; HTTP 500 as SOAP 1.1 requires, except where the HTTP layer has
        its own answer (401, 403, 405, 413, 415)."""
        side = "soap:Server" if err.status >= 500 else "soap:Client"
        if err.code == "version_mismatch":
            side = "soap:VersionMismatch"
        violations = "".join(
            f"<tns:Violation path={quoteattr(v['path'])}>{escape(v['message'])}</tns:Violation>"
            for v in (err.violations or []))
        text = (f'<soap:Envelope xmlns:soap="{SOAP_ENV}"><soap:Body><soap:Fault>'
                f"<faultcode>{side}</faultcode><faultstring>{escape(err.message)}</faultstring>"
                f'<detail><tns:Violations xmlns:tns="{NS}"><tns:Code>{escape(err.code)}</tns:Code>'
                f"<tns:RequestId>{escape(request_id)}</tns:RequestId>{violations}"
                f"</tns:Violations></detail></soap:Fault></soap:Body></soap:Envelope>")
        status = err.status if err.status in (401, 403, 405, 413, 415) else 500
        headers = [*XML_HEADERS, *err.headers]
        return status, headers, text.encode("utf-8")


def _check_root(tag: str) -> None:
    if tag == f"{{{SOAP12_ENV}}}Envelope":
        raise ApiError(400, "version_mismatch",
                       _("this endpoint speaks SOAP 1.1, not SOAP 1.2"), reason="soap12")
    if tag != f"{{{SOAP_ENV}}}Envelope":
        raise ApiError(400, "malformed_xml", _("the request is not a SOAP 1.1 envelope"),
                       reason="no_envelope")


def _header_too_large() -> ApiError:
    return ApiError(401, "bad_signature",
                    _("the WS-Security header must lie within the first {size} bytes of the "
                      "request, in at most {elements} elements", size=HEADER_BYTES,
                      elements=HEADER_ELEMENTS), reason="header_too_large")


class _PastHeader(Exception):
    """The parser reached what follows the SOAP Header: stop reading."""


class _HeaderReader:
    """Parser target that follows the envelope to the end of its Header, counting
    what it meets and keeping only the first UsernameToken's fields."""

    def __init__(self) -> None:
        self.stack: list[str] = []
        self.elements = 0
        self.attributes = 0
        self.fields: dict[str, str] = {}
        self.password_type: str | None = None
        self._field: str | None = None
        self._text: list[str] = []
        self._tokens = 0

    def start(self, tag: str, attrib: Any) -> None:
        depth = len(self.stack)
        if depth == 0:
            _check_root(tag)
        elif depth == 1 and tag != f"{{{SOAP_ENV}}}Header":
            raise _PastHeader  # the Body, or whatever stands where the Header would
        self.elements += 1
        self.attributes += len(attrib)
        if (depth >= HEADER_DEPTH or self.elements > HEADER_ELEMENTS
                or self.attributes > HEADER_ATTRIBUTES):
            raise _header_too_large()
        self.stack.append(tag)
        if tag == _TOKEN and depth == 3 and self.stack[2] == _SECURITY:
            self._tokens += 1
        elif depth == 4 and self._tokens == 1 and self.stack[3] == _TOKEN \
                and tag in _TOKEN_FIELDS and _TOKEN_FIELDS[tag] not in self.fields:
            self._field = _TOKEN_FIELDS[tag]
            self._text = []
            if self._field == "password":
                self.password_type = attrib.get("Type", "")

    def data(self, text: str) -> None:
        if self._field is not None:
            self._text.append(text)

    def end(self, tag: str) -> None:
        if self._field is not None and len(self.stack) == 5:
            self.fields[self._field] = "".join(self._text).strip()
            self._field = None
        self.stack.pop()
        if len(self.stack) == 1:
            raise _PastHeader  # the Header is over

    def close(self) -> None:
        return None

    def token(self) -> UsernameToken | None:
        if not self._tokens:
            return None
        fields = self.fields
        return UsernameToken(username=fields.get("username", ""),
                             password=fields.get("password", ""),
                             digest=self.password_type == PASSWORD_DIGEST,
                             nonce=fields.get("nonce", ""), created=fields.get("created", ""))


def read_token(body: bytes) -> UsernameToken | None:
    """The WS-Security UsernameToken of a SOAP request, read before its client is
    known: no further than the end of the Header and never past ``HEADER_BYTES``,
    by a parser target that builds no tree. None when the Header holds none; 401
    when the Header does not end within the limits."""
    if not body:
        raise ApiError(400, "malformed_xml", _("the SOAP request is empty"))
    head = body[:HEADER_BYTES]
    if safexml.mentions_dtd(head):
        raise ApiError(400, "unsafe_xml", _("DTDs and entity declarations are not allowed"),
                       reason="doctype")
    reader = _HeaderReader()
    parser = safexml.hardened_parser(target=reader)
    try:
        for start in range(0, len(head), _CHUNK):
            parser.feed(head[start:start + _CHUNK])
        if len(head) < len(body):
            raise _header_too_large()
        parser.close()
    except _PastHeader:
        pass
    except etree.XMLSyntaxError as exc:
        raise ApiError(400, "malformed_xml", _("the request is not well-formed XML: {error}",
                                               error=str(exc)[:200])) from None
    return reader.token()


def _organisation(name: str | None, code: str | None) -> dict[str, str] | None:
    if name is None and code is None:
        return None
    org: dict[str, str] = {}
    if name is not None:
        org["name"] = name
    if code is not None:
        org["code"] = code
    return org
