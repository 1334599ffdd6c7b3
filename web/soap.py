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
the wire.

The parser is hardened: no DTD is loaded, no entity is resolved, nothing is
fetched from the network, libxml2's tree limits stay on (no huge_tree), and a
document carrying a DOCTYPE at all is refused with a Client fault before any of
its declarations could matter.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape, quoteattr

from lxml import etree

from bdchub.core.i18n import _

from .signing import AuthFailure

if TYPE_CHECKING:
    from .app import ApiError, InboundApp, Request

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

_DOCTYPE = re.compile(rb"<\s*!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_HOST = re.compile(r"^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")


def hardened_parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                           dtd_validation=False, huge_tree=False, remove_comments=True,
                           remove_pis=True, collect_ids=False)


class SoapEndpoint:
    def __init__(self, app: InboundApp):
        self.app = app
        self.wsdl_template = WSDL_FILE.read_text(encoding="utf-8")
        self._wsdl_cache: dict[str, bytes] = {}
        self._parser = hardened_parser()
        self.operations = {
            f"{{{NS}}}ReportStageChange": ("ReportStageChange", "progress.reported", "progress",
                                           self._stage_change),
            f"{{{NS}}}SubmitResult": ("SubmitResult", "registration.recorded",
                                      "registration_result", self._result),
        }

    # -- WSDL ------------------------------------------------------------------
    def get_wsdl(self, req: Request):
        from .app import ApiError

        if not req.has_arg("wsdl"):
            raise ApiError(404, "not_found", _("ask for the service description with ?wsdl"))
        base = self.app.public_url
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
    def post(self, req: Request):
        from .app import ApiError

        app = self.app
        body = app.read_body(req)
        ctype = (req.header("CONTENT_TYPE").split(";")[0]).strip().lower()
        if ctype == "application/soap+xml":
            raise ApiError(415, "unsupported_media_type",
                           _("this endpoint speaks SOAP 1.1 (text/xml), not SOAP 1.2"),
                           reason="soap12")
        if ctype not in ("text/xml", "application/xml"):
            raise ApiError(415, "unsupported_media_type", _("a SOAP 1.1 request must be text/xml"),
                           reason="content_type")
        signed = bool(req.header("HTTP_X_APP_KEY"))
        if signed:  # before parsing: unauthenticated XML never reaches the parser
            app.authenticate(req)
        root = self.parse(body)
        header, operation = self._envelope_parts(root)
        if not signed:
            self._ws_security(req, header)
        name, type_, schema, build = self._operation(operation)
        message = build(operation)
        tenant = app.choose_tenant(req, message)
        message.setdefault("tenant", tenant)
        app.check_schema(schema, message)
        envelope = app.envelope(req, type_, tenant, message, source=f"soap:{req.client.name}"
                                if req.client else "soap")
        app.publish(req, envelope)
        app._audit_accepted(req, envelope)
        answer = (f'<soap:Envelope xmlns:soap="{SOAP_ENV}"><soap:Body>'
                  f'<tns:{name}Response xmlns:tns="{NS}"><tns:Accepted>true</tns:Accepted>'
                  f"<tns:MessageId>{escape(envelope.id)}</tns:MessageId>"
                  f"<tns:YWH>{escape(envelope.business_no)}</tns:YWH>"
                  f"</tns:{name}Response></soap:Body></soap:Envelope>")
        return 200, list(XML_HEADERS), answer.encode("utf-8")

    def parse(self, body: bytes) -> etree._Element:
        from .app import ApiError

        if not body:
            raise ApiError(400, "malformed_xml", _("the SOAP request is empty"))
        # Cheap refusal first; the parse check below also catches encodings this misses.
        if _DOCTYPE.search(body) or _DOCTYPE.search(_as_utf8(body)):
            raise ApiError(400, "unsafe_xml", _("DTDs and entity declarations are not allowed"),
                           reason="doctype")
        try:
            root = etree.fromstring(body, self._parser)
        except etree.XMLSyntaxError as exc:
            raise ApiError(400, "malformed_xml", _("the request is not well-formed XML: {error}",
                                                   error=str(exc)[:200])) from None
        docinfo = root.getroottree().docinfo
        if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
            raise ApiError(400, "unsafe_xml", _("DTDs and entity declarations are not allowed"),
                           reason="doctype")
        for _node in root.iter(etree.Entity):
            raise ApiError(400, "unsafe_xml", _("DTDs and entity declarations are not allowed"),
                           reason="entity")
        return root

    def _envelope_parts(self, root: etree._Element) -> tuple[etree._Element | None, etree._Element]:
        from .app import ApiError

        if root.tag == f"{{{SOAP12_ENV}}}Envelope":
            raise ApiError(400, "version_mismatch",
                           _("this endpoint speaks SOAP 1.1, not SOAP 1.2"), reason="soap12")
        if root.tag != f"{{{SOAP_ENV}}}Envelope":
            raise ApiError(400, "malformed_xml", _("the request is not a SOAP 1.1 envelope"),
                           reason="no_envelope")
        header = root.find(f"{{{SOAP_ENV}}}Header")
        body = root.find(f"{{{SOAP_ENV}}}Body")
        operations = [child for child in (body if body is not None else [])
                      if isinstance(child.tag, str)]
        if len(operations) != 1:
            raise ApiError(400, "malformed_xml",
                           _("the SOAP body must hold exactly one operation element"),
                           reason="body_shape")
        return header, operations[0]

    def _operation(self, element: etree._Element):
        from .app import ApiError

        found = self.operations.get(element.tag)
        if found is None:
            local = etree.QName(element).localname
            raise ApiError(404, "unknown_type", _("unknown operation '{name}'", name=local[:80]))
        return found

    def _ws_security(self, req: Request, header: etree._Element | None) -> None:
        app = self.app
        token = None
        if header is not None:
            token = header.find(f"{{{WSSE}}}Security/{{{WSSE}}}UsernameToken")
        if token is None:
            raise app.auth_error(AuthFailure("bad_signature", "missing_headers"))
        username = (token.findtext(f"{{{WSSE}}}Username") or "").strip()
        password = token.find(f"{{{WSSE}}}Password")
        nonce = (token.findtext(f"{{{WSSE}}}Nonce") or "").strip()
        created = (token.findtext(f"{{{WSU}}}Created") or "").strip()
        client = app.verifier.by_key.get(username)
        if client is None:
            raise app.auth_error(AuthFailure("bad_signature", "unknown_app_key"))
        req.client = client
        if password is None or password.get("Type", "") != PASSWORD_DIGEST:
            raise app.auth_error(AuthFailure("bad_signature", "password_not_digest", client.name))
        try:
            nonce_bytes = base64.b64decode(nonce, validate=True)
            when = datetime.fromisoformat(created.replace("Z", "+00:00"))
            if when.tzinfo is None:
                raise ValueError("Created needs a time zone")
        except ValueError:
            raise app.auth_error(AuthFailure("bad_signature", "malformed_token", client.name)) from None
        if not 8 <= len(nonce_bytes) <= 64:
            raise app.auth_error(AuthFailure("bad_signature", "malformed_token", client.name))
        expected = base64.b64encode(hashlib.sha1(  # noqa: S324 - fixed by the WSS profile
            nonce_bytes + created.encode() + client.app_secret.encode()).digest()).decode()
        if not hmac.compare_digest(expected, (password.text or "").strip()):
            raise app.auth_error(AuthFailure("bad_signature", "signature_mismatch", client.name))
        try:
            app.verifier.check_fresh(client, when.timestamp(), nonce, scope="wsse:")
        except AuthFailure as failure:
            raise app.auth_error(failure) from None

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
    def fault_answer(self, err: ApiError, request_id: str):
        """A SOAP 1.1 fault. Client faults for bad input, Server faults for the hub's
        own trouble; HTTP 500 as SOAP 1.1 requires, except where the HTTP layer has
        its own answer (401, 405, 413, 415)."""
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
        status = err.status if err.status in (401, 405, 413, 415) else 500
        headers = [*XML_HEADERS, *err.headers]
        return status, headers, text.encode("utf-8")


def _as_utf8(body: bytes) -> bytes:
    """The body re-encoded as UTF-8 when it is UTF-16/32, for the DOCTYPE scan."""
    head = body[:4]
    if b"\x00" not in head:
        return b""
    for codec in ("utf-32", "utf-16") if head[:4] in (b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff") \
            else ("utf-16", "utf-16-le", "utf-16-be", "utf-32"):
        try:
            return body.decode(codec).encode("utf-8")
        except UnicodeDecodeError:
            continue
    return b""


def _organisation(name: str | None, code: str | None) -> dict[str, str] | None:
    if name is None and code is None:
        return None
    org: dict[str, str] = {}
    if name is not None:
        org["name"] = name
    if code is not None:
        org["code"] = code
    return org
