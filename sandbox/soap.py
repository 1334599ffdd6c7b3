"""SOAP 1.1 / 1.2 by hand with lxml: envelopes, faults, WS-Security, WSDL serving.

Requests are parsed with a hardened parser (no DTD loading, no entity
resolution, no network, no huge trees) and any DOCTYPE is refused with a
Client fault. Operations are dispatched on the body's first element (document/
literal wrapped), whatever the SOAPAction says. Faults: HTTP 500 with
``soap:Client`` / ``soap:Server`` (1.1), or ``soap:Sender`` (HTTP 400) /
``soap:Receiver`` (HTTP 500) in 1.2, with a ``ServiceFault`` detail
(``Code``, ``Message``) in the service's namespace.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lxml import etree

from bdchub.core.i18n import _

from .server import Call, Endpoint, HttpError, Request, Response

NS_SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
NS_SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
NS_WSDL_SOAP11 = "http://schemas.xmlsoap.org/wsdl/soap/"
NS_WSDL_SOAP12 = "http://schemas.xmlsoap.org/wsdl/soap12/"
NS_XSD = "http://www.w3.org/2001/XMLSchema"
NS_WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
NS_WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
PASSWORD_DIGEST = ("http://docs.oasis-open.org/wss/2004/01/"
                   "oasis-200401-wss-username-token-profile-1.0#PasswordDigest")
CT_SOAP11 = "text/xml; charset=utf-8"
CT_SOAP12 = "application/soap+xml; charset=utf-8"
WSDL_DIR = Path(__file__).resolve().parent.parent / "schemas" / "wsdl"
WSSE_MAX_SKEW_S = 300.0


class SoapFault(Exception):
    """``code`` is "Client" (the caller's fault: permanent) or "Server" (recoverable)."""

    def __init__(self, code: str, message: str, detail_code: str = ""):
        super().__init__(message)
        self.code = code
        self.message = message
        self.detail_code = detail_code or ("CLIENT_ERROR" if code == "Client" else "SERVER_ERROR")


def safe_parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False,
                           load_dtd=False, dtd_validation=False, remove_pis=True)


def parse_envelope(body: bytes) -> tuple[int, Any, Any]:
    """(soap version 11|12, Header element or None, first Body child)."""
    if not body:
        raise SoapFault("Client", _("empty request; a SOAP envelope was expected"), "EMPTY")
    if b"<!DOCTYPE" in body[:4096].upper() or b"<!ENTITY" in body.upper():
        raise SoapFault("Client", _("DTDs and entities are not allowed"), "DTD_FORBIDDEN")
    try:
        root = etree.fromstring(body, safe_parser())
    except etree.XMLSyntaxError as exc:
        raise SoapFault("Client", _("malformed XML: {error}", error=str(exc)), "MALFORMED_XML") from None
    if root.getroottree().docinfo.doctype:
        raise SoapFault("Client", _("DTDs and entities are not allowed"), "DTD_FORBIDDEN")
    qn = etree.QName(root)
    if qn.localname != "Envelope" or qn.namespace not in (NS_SOAP11, NS_SOAP12):
        raise SoapFault("Client", _("not a SOAP 1.1 or 1.2 envelope"), "NOT_SOAP")
    version = 11 if qn.namespace == NS_SOAP11 else 12
    header = root.find(f"{{{qn.namespace}}}Header")
    body_el = root.find(f"{{{qn.namespace}}}Body")
    payload = None
    if body_el is not None:
        payload = next((c for c in body_el if isinstance(c.tag, str)), None)
    if payload is None:
        raise SoapFault("Client", _("the SOAP Body is empty"), "EMPTY_BODY")
    return version, header, payload


def to_dict(el: Any) -> Any:
    """Element to plain data: leaves are stripped text, repeated names become lists."""
    children = [c for c in el if isinstance(c.tag, str)]
    if not children:
        nil = el.get("{http://www.w3.org/2001/XMLSchema-instance}nil")
        if nil in ("true", "1"):
            return None
        return (el.text or "").strip()
    out: dict[str, Any] = {}
    for child in children:
        key = etree.QName(child).localname
        value = to_dict(child)
        if key in out:
            if not isinstance(out[key], list):
                out[key] = [out[key]]
            out[key].append(value)
        else:
            out[key] = value
    return out


def as_list(value: Any) -> list[Any]:
    if value in (None, ""):
        return []
    return value if isinstance(value, list) else [value]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.2f}" if value != int(value) else f"{value:.1f}"
    return str(value)


def build(parent: Any, ns: str, data: dict[str, Any]) -> None:
    """Append ``data`` (ordered as the XSD sequence) under ``parent`` in ``ns``."""
    for key, value in data.items():
        for item in (value if isinstance(value, list) else [value]):
            if item is None:
                continue
            el = etree.SubElement(parent, f"{{{ns}}}{key}")
            if isinstance(item, dict):
                build(el, ns, item)
            else:
                el.text = _text(item)


def envelope(version: int, payload: Any, ns: str) -> bytes:
    env_ns = NS_SOAP11 if version == 11 else NS_SOAP12
    env = etree.Element(f"{{{env_ns}}}Envelope", nsmap={"soap": env_ns, "tns": ns})
    etree.SubElement(env, f"{{{env_ns}}}Body").append(payload)
    return etree.tostring(env, xml_declaration=True, encoding="utf-8")


def fault_body(version: int, code: str, message: str, detail_code: str, ns: str) -> bytes:
    env_ns = NS_SOAP11 if version == 11 else NS_SOAP12
    fault = etree.Element(f"{{{env_ns}}}Fault", nsmap={"soap": env_ns})
    if version == 11:
        etree.SubElement(fault, "faultcode").text = f"soap:{code}"
        etree.SubElement(fault, "faultstring").text = message
        detail = etree.SubElement(fault, "detail")
    else:
        value = "Sender" if code == "Client" else "Receiver"
        code_el = etree.SubElement(fault, f"{{{env_ns}}}Code")
        etree.SubElement(code_el, f"{{{env_ns}}}Value").text = f"soap:{value}"
        reason = etree.SubElement(fault, f"{{{env_ns}}}Reason")
        text = etree.SubElement(reason, f"{{{env_ns}}}Text")
        text.set("{http://www.w3.org/XML/1998/namespace}lang", "en")
        text.text = message
        detail = etree.SubElement(fault, f"{{{env_ns}}}Detail")
    sf = etree.SubElement(detail, f"{{{ns}}}ServiceFault", nsmap={"tns": ns})
    etree.SubElement(sf, f"{{{ns}}}Code").text = detail_code
    etree.SubElement(sf, f"{{{ns}}}Message").text = message
    return envelope(version, fault, ns)


def billion_laughs_dtd(depth: int = 9) -> tuple[str, str]:
    """An exponential-entity DTD and the reference that expands to 10**depth 'lol's."""
    lines = ['<!ENTITY lol "lol">']
    for i in range(1, depth + 1):
        prev = "lol" if i == 1 else f"lol{i - 1}"
        lines.append(f'<!ENTITY lol{i} "{("&" + prev + ";") * 10}">')
    return "<!DOCTYPE lolz [\n  " + "\n  ".join(lines) + "\n]>", f"&lol{depth};"


def malicious_payload(kind: str, ns: str, canary_url: str, probe_url: str) -> bytes:
    """A SOAP 1.1 answer carrying a DTD: exponential entities, or two external
    entities: the sandbox's canary file and an HTTP probe that counts fetches."""
    if kind == "billion_laughs":
        dtd, ref = billion_laughs_dtd()
    else:
        dtd = (f'<!DOCTYPE r [\n  <!ENTITY xxe SYSTEM "{canary_url}">\n'
               f'  <!ENTITY xxenet SYSTEM "{probe_url}">\n]>')
        ref = "&xxe;&xxenet;"
    return (f'<?xml version="1.0" encoding="utf-8"?>\n{dtd}\n'
            f'<soap:Envelope xmlns:soap="{NS_SOAP11}" xmlns:tns="{ns}"><soap:Body>'
            f"<tns:ServiceFault><tns:Code>X</tns:Code><tns:Message>{ref}</tns:Message>"
            f"</tns:ServiceFault></soap:Body></soap:Envelope>").encode()


class UsernameTokenCheck:
    """Server side of the WS-Security UsernameToken profile (text or digest)."""

    def __init__(self, username: str, password: str):
        self.username = username
        self.password = password
        self._nonces: dict[str, float] = {}
        self._lock = threading.Lock()

    def check(self, header: Any) -> None:
        sec = header.find(f"{{{NS_WSSE}}}Security") if header is not None else None
        token = sec.find(f"{{{NS_WSSE}}}UsernameToken") if sec is not None else None
        if token is None:
            raise SoapFault("Client", _("a WS-Security UsernameToken is required"),
                            "SECURITY_TOKEN_REQUIRED")
        user = (token.findtext(f"{{{NS_WSSE}}}Username") or "").strip()
        pw_el = token.find(f"{{{NS_WSSE}}}Password")
        supplied = (pw_el.text or "") if pw_el is not None else ""
        if pw_el is not None and pw_el.get("Type") == PASSWORD_DIGEST:
            nonce_b64 = (token.findtext(f"{{{NS_WSSE}}}Nonce") or "").strip()
            created = (token.findtext(f"{{{NS_WSU}}}Created") or "").strip()
            try:
                nonce = base64.b64decode(nonce_b64, validate=True)
                when = dt.datetime.fromisoformat(created.replace("Z", "+00:00"))
            except (binascii.Error, ValueError):
                raise SoapFault("Client", _("authentication failed"), "FAILED_AUTHENTICATION") from None
            if when.tzinfo is None:
                when = when.replace(tzinfo=dt.UTC)
            if abs(time.time() - when.timestamp()) > WSSE_MAX_SKEW_S:
                raise SoapFault("Client", _("the UsernameToken is too old"), "MESSAGE_EXPIRED")
            expected = base64.b64encode(hashlib.sha1(
                nonce + created.encode() + self.password.encode()).digest()).decode()
            good = hmac.compare_digest(expected, supplied.strip())
            if good:
                with self._lock:
                    now = time.time()
                    for old in [n for n, t in self._nonces.items() if now - t > 2 * WSSE_MAX_SKEW_S]:
                        del self._nonces[old]
                    if nonce_b64 in self._nonces:
                        raise SoapFault("Client", _("the UsernameToken nonce was already used"),
                                        "REPLAYED_NONCE")
                    self._nonces[nonce_b64] = now
        else:
            good = hmac.compare_digest(supplied.encode(), self.password.encode())
        if not good or not hmac.compare_digest(user.encode(), self.username.encode()):
            raise SoapFault("Client", _("authentication failed"), "FAILED_AUTHENTICATION")


class SoapEndpoint(Endpoint):
    """A document/literal SOAP service at ``/ws`` with its WSDL at ``/ws?wsdl``."""

    kind = "soap"
    protocol = "SOAP 1.1"
    namespace = ""
    wsdl_file = ""
    xsd_files: tuple[str, ...] = ()

    def __init__(self, sandbox: Any, name: str):
        super().__init__(sandbox, name)
        self.auth: UsernameTokenCheck | None = None
        self.xxe_hits = 0  # fetches of the external_entity payload's HTTP entity
        self._docs: dict[str, bytes] = {}

    # operations: name -> handler(body: dict, header) -> dict (response content)
    def operations(self) -> dict[str, Callable[[dict[str, Any], Any], dict[str, Any]]]:
        raise NotImplementedError

    @property
    def wsdl_path(self) -> Path:
        return WSDL_DIR / self.wsdl_file

    @property
    def wsdl_url(self) -> str:
        return f"{self.url}/ws?wsdl"

    # -- documents
    def _document(self, filename: str) -> bytes:
        with self.lock:
            cached = self._docs.get(filename)
            if cached is not None:
                return cached
            tree = etree.parse(str(WSDL_DIR / filename), safe_parser())
            for el in tree.iter(f"{{{NS_WSDL_SOAP11}}}address", f"{{{NS_WSDL_SOAP12}}}address"):
                el.set("location", f"{self.url}/ws")
            for el in tree.iter(f"{{{NS_XSD}}}import", f"{{{NS_XSD}}}include"):
                loc = el.get("schemaLocation")
                if loc and "://" not in loc:
                    el.set("schemaLocation", f"{self.url}/ws?xsd={Path(loc).name}")
            data = etree.tostring(tree, xml_declaration=True, encoding="utf-8")
            self._docs[filename] = data
            return data

    def forget_documents(self) -> None:
        with self.lock:
            self._docs.clear()

    def meta(self, req: Request) -> Response | None:
        if req.method not in ("GET", "HEAD"):
            return None
        if req.path in ("/ws", "/ws/"):
            query = {k.lower(): v for k, v in req.query.items()}
            if "wsdl" in query:
                return Response(body=self._document(self.wsdl_file), content_type=CT_SOAP11)
            if "xsd" in query:
                if query["xsd"] in self.xsd_files:
                    return Response(body=self._document(query["xsd"]), content_type=CT_SOAP11)
                return Response(status=404, body=b"no such schema", content_type="text/plain")
            return Response(status=405, body=b"POST SOAP envelopes here; GET ?wsdl for the WSDL",
                            content_type="text/plain", headers={"Allow": "POST"})
        return None

    def control(self, action: str, req: Request) -> Response | None:
        return None

    # -- faults
    def _version(self, req: Request) -> int:
        return getattr(req, "soap_version", 11)

    def fault_response(self, version: int, code: str, message: str, detail_code: str = "",
                       headers: dict[str, str] | None = None) -> Response:
        status = 400 if (version == 12 and code == "Client") else 500
        body = fault_body(version, code, message, detail_code or
                          ("CLIENT_ERROR" if code == "Client" else "SERVER_ERROR"), self.namespace)
        return Response(status=status, body=body, headers=dict(headers or {}),
                        content_type=CT_SOAP11 if version == 11 else CT_SOAP12)

    def error_response(self, req: Request, status: int, code: str, message: str,
                       headers: dict[str, str] | None = None, soap_fault: str | None = None,
                       extra: dict[str, Any] | None = None) -> Response:
        if soap_fault in ("client", "server"):
            version = self._version(req)
            return self.fault_response(version, "Client" if soap_fault == "client" else "Server",
                                       message, code, headers)
        return Response(status=status, body=f"{status} {message}".encode(),
                        content_type="text/plain; charset=utf-8", headers=dict(headers or {}))

    def malicious(self, kind: str) -> Response:
        return Response(body=malicious_payload(kind, self.namespace, self.sandbox.xxe_canary_url,
                                               f"{self.url}/_sandbox/xxe-probe"),
                        content_type=CT_SOAP11)

    def _control(self, req: Request) -> Response:
        if req.path.rstrip("/") == "/_sandbox/xxe-probe":
            with self.lock:
                self.xxe_hits += 1
            return Response(body=b"SANDBOX-XXE-PROBE", content_type="text/plain")
        return super()._control(req)

    def corrupt(self, resp: Response, mode: str) -> Response:
        if mode == "truncated":
            cut = max(1, len(resp.body) // 2)
            return Response(status=resp.status, body=resp.body[:cut] + b"<unclosed",
                            content_type=resp.content_type, headers=resp.headers)
        return super().corrupt(resp, mode)

    # -- dispatch
    def identify(self, req: Request) -> Call:
        if req.path not in ("/ws", "/ws/"):
            raise HttpError(404, "NOT_FOUND", _("no such operation: {method} {path}",
                                                method=req.method, path=req.path))
        if req.method != "POST":
            raise HttpError(405, "METHOD_NOT_ALLOWED",
                            _("method {method} not allowed on {path}", method=req.method,
                              path=req.path), headers={"Allow": "POST"})
        ctype = (req.header("Content-Type") or "").lower()
        guess = 12 if "application/soap+xml" in ctype else 11
        req.soap_version = guess  # type: ignore[attr-defined]
        try:
            version, header, payload = parse_envelope(req.body)
        except SoapFault as exc:
            raw = req.body[:4096].decode("utf-8", errors="replace")
            bad = exc
            return Call("invalid", raw, lambda: self.fault_response(guess, bad.code, bad.message,
                                                                    bad.detail_code))
        req.soap_version = version  # type: ignore[attr-defined]
        qn = etree.QName(payload)
        body = to_dict(payload)
        if not isinstance(body, dict):
            body = {}
        handler = self.operations().get(qn.localname) if qn.namespace == self.namespace else None

        def run() -> Response:
            try:
                if handler is None:
                    raise SoapFault("Client", _("unknown operation {op}", op=qn.text),
                                    "UNKNOWN_OPERATION")
                if self.auth is not None:
                    self.auth.check(header)
                data = handler(body, header)
            except SoapFault as fault:
                return self.fault_response(version, fault.code, fault.message, fault.detail_code)
            response = etree.Element(f"{{{self.namespace}}}{qn.localname}Response",
                                     nsmap={"tns": self.namespace})
            build(response, self.namespace, data)
            return Response(body=envelope(version, response, self.namespace),
                            content_type=CT_SOAP11 if version == 11 else CT_SOAP12)

        return Call(qn.localname, body, run)


def require(body: dict[str, Any], *names: str) -> None:
    missing = [n for n in names if body.get(n) in (None, "", [], {})]
    if missing:
        raise SoapFault("Client", _("missing required element(s): {names}", names=", ".join(missing)),
                        "MISSING_ELEMENT")


def now_iso() -> str:
    return dt.datetime.now().astimezone().replace(microsecond=0).isoformat()
