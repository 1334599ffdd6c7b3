"""Hostile XML in any encoding libxml2 reads is refused, by core.safexml and by
each of its readers: the inbound SOAP endpoint, the SOAP connector, the bridge's
content policy."""

from __future__ import annotations

import codecs
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from lxml import etree
from prometheus_client import CollectorRegistry
from werkzeug.test import Client

from bdchub.core import safexml
from bdchub.sandbox.soap import billion_laughs_dtd

# name in the XML declaration, byte order mark, codec of the rest
ENCODINGS = {
    "utf-8": ("UTF-8", b"", "utf-8"),
    "utf-8 bom": ("UTF-8", codecs.BOM_UTF8, "utf-8"),
    "utf-16le": ("UTF-16", b"", "utf-16-le"),
    "utf-16le bom": ("UTF-16", codecs.BOM_UTF16_LE, "utf-16-le"),
    "utf-16be": ("UTF-16", b"", "utf-16-be"),
    "utf-16be bom": ("UTF-16", codecs.BOM_UTF16_BE, "utf-16-be"),
    "utf-32le": ("UTF-32", b"", "utf-32-le"),
    "utf-32le bom": ("UTF-32", codecs.BOM_UTF32_LE, "utf-32-le"),
    "utf-32be": ("UTF-32", b"", "utf-32-be"),
    "utf-32be bom": ("UTF-32", codecs.BOM_UTF32_BE, "utf-32-be"),
}
UTF16 = [name for name in ENCODINGS if name.startswith("utf-16")]

_LOL_DTD, _LOL_REF = billion_laughs_dtd()
PAYLOADS = {
    "doctype": ("<!DOCTYPE r>", "<r/>"),
    "entity": ('<!DOCTYPE r [<!ENTITY e "x">]>', "<r>&e;</r>"),
    "external entity": ('<!DOCTYPE r [<!ENTITY e SYSTEM "file:///etc/passwd">]>', "<r>&e;</r>"),
    "billion laughs": (_LOL_DTD, f"<r>{_LOL_REF}</r>"),
}


def encoded(text: str, encoding: str) -> bytes:
    name, bom, codec = ENCODINGS[encoding]
    return bom + f'<?xml version="1.0" encoding="{name}"?>\n{text}'.encode(codec)


def hostile(payload: str, encoding: str) -> bytes:
    dtd, body = PAYLOADS[payload]
    return encoded(f"{dtd}\n{body}", encoding)


def soap_envelope(prolog: str = "", note: str = "材料齐全") -> str:
    return (f'{prolog}<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">'
            f'<soap:Body><tns:ReportStageChange xmlns:tns="urn:bdc-hub:inbound:1">'
            f"<tns:YWH>YWH2024000001</tns:YWH><tns:Note>{note}</tns:Note>"
            f"</tns:ReportStageChange></soap:Body></soap:Envelope>")


# -- the module --------------------------------------------------------------------

@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("payload", PAYLOADS)
def test_dtd_payloads_are_refused_in_every_encoding(payload, encoding):
    document = hostile(payload, encoding)

    assert safexml.mentions_dtd(document)
    assert safexml.declares_dtd(document)
    with pytest.raises(safexml.ForbiddenDtd) as refused:
        safexml.parse(document)
    assert refused.value.reason == "doctype"


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_the_payloads_are_dtds_to_libxml2_in_every_encoding(encoding):
    """Without the scan, libxml2 would take each DTD: the refusals above are not
    about documents it could not read anyway."""
    parser = etree.XMLParser(resolve_entities=False)
    for payload in set(PAYLOADS) - {"billion laughs"}:
        root = etree.fromstring(hostile(payload, encoding), parser)
        assert root.getroottree().docinfo.doctype == "<!DOCTYPE r>"
    with pytest.raises(etree.XMLSyntaxError, match="(?i)amplification|entit"):  # it expanded
        etree.fromstring(hostile("billion laughs", encoding), parser)


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_a_plain_document_parses_in_every_encoding(encoding):
    document = encoded("<r><!-- 注释 --><name>不动产登记</name></r>", encoding)

    assert not safexml.mentions_dtd(document)
    assert not safexml.declares_dtd(document)
    assert safexml.parse(document).findtext("name") == "不动产登记"


def test_a_dtd_hidden_in_utf7_is_found():
    # libxml2 decodes what the declaration names: "+ADw-" is "<" in UTF-7.
    document = (b'<?xml version="1.0" encoding="UTF-7"?>\n'
                b"+ADw-!DOCTYPE r +AFs-+ADw-!ENTITY e +ACI-x+ACI-+AD4-+AF0-+AD4-\n<r>&e;</r>")

    assert safexml.mentions_dtd(document)
    assert safexml.declares_dtd(document)


def test_a_declared_encoding_that_cannot_be_read_counts_as_a_dtd():
    document = b'<?xml version="1.0" encoding="x-unheard-of"?><r/>'

    assert safexml.mentions_dtd(document)
    assert safexml.declares_dtd(document)


def test_legacy_chinese_encodings_read_as_themselves():
    document = '<?xml version="1.0" encoding="GB18030"?><r>不动产</r>'.encode("gb18030")

    assert not safexml.mentions_dtd(document)
    assert safexml.parse(document).text == "不动产"


def test_only_a_doctype_in_the_prolog_is_declared_but_any_is_mentioned():
    quoted = b"<r><![CDATA[<!DOCTYPE html><p>receipt</p>]]></r>"

    assert not safexml.declares_dtd(quoted)
    assert safexml.mentions_dtd(quoted)
    assert safexml.declares_dtd(b'<?xml version="1.0"?>\n<!-- c --><?pi x?> <!DOCTYPE r><r/>')


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16le", "utf-32be bom"])
def test_the_stream_scan_finds_a_declaration_cut_by_chunk_boundaries(encoding):
    document = encoded("<r>" + "x" * 1000 + "</r><!ENTITY e 'x'>", encoding)
    cut = document.index("<!ENT".encode(ENCODINGS[encoding][2]))

    for size in (1, 7, cut, cut + 2, len(document)):
        scan = safexml.DtdScan()
        for start in range(0, len(document), size):
            scan.feed(document[start:start + size])
        assert scan.close(), size


def test_the_stream_scan_passes_a_long_plain_document():
    scan = safexml.DtdScan()
    scan.feed(encoded("<r>", "utf-16le"))
    for _ in range(100):
        scan.feed("<p>不动产单元</p>".encode("utf-16-le") * 100)
    scan.feed("</r>".encode("utf-16-le"))

    assert not scan.close()


def test_the_hardened_parser_fetches_and_expands_nothing():
    """The second wall, should a DTD ever get past the scan."""
    parser = safexml.hardened_parser()
    document = hostile("external entity", "utf-8")

    root = etree.fromstring(document, parser)

    assert "root:" not in etree.tostring(root, encoding="unicode")


# -- the readers -------------------------------------------------------------------

@pytest.mark.parametrize("encoding", UTF16)
def test_the_soap_endpoint_answers_a_utf16_doctype_with_a_client_fault(encoding):
    from bdchub.web.app import create_app
    from bdchub.web.fake import FakeHub
    from bdchub.web.metrics import InboundMetrics
    from bdchub.web.signing import signed_headers

    hub = FakeHub()
    secret = "s3cret-for-tests-only-0123456789"
    app = create_app(hub, {"tenant": "320684", "inbound": {"clients": {"window": {
        "app_key": "ck-window", "app_secret": secret, "tenants": ["320684"]}}}},
        metrics=InboundMetrics(CollectorRegistry()))
    body = encoded(soap_envelope(_LOL_DTD + "\n", note=_LOL_REF), encoding)

    response = Client(app).post("/soap/inbound", data=body, headers={
        "Content-Type": "text/xml; charset=utf-16",
        **signed_headers("ck-window", secret, "POST", "/soap/inbound", body)})

    assert response.status_code == 500
    fault = etree.fromstring(response.get_data())
    assert fault.findtext(".//faultcode") == "soap:Client"
    assert fault.findtext(".//{urn:bdc-hub:inbound:1}Code") == "unsafe_xml"
    assert hub.published == []
    assert [a["reason"] for a in hub.audited("inbound.rejected")] == ["doctype"]


class _Department(BaseHTTPRequestHandler):
    reply = b""
    calls = 0

    def do_POST(self):  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).calls += 1
        self.send_response(200)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(self.reply)))
        self.end_headers()
        self.wfile.write(self.reply)

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("encoding", UTF16)
def test_the_soap_connector_raises_a_permanent_error_for_a_utf16_doctype_reply(encoding):
    from bdchub import connectors
    from bdchub.core.errors import PermanentError, UnsafeXMLError

    handler = type("Department", (_Department,), {
        "reply": encoded(soap_envelope(_LOL_DTD + "\n", note=_LOL_REF), encoding), "calls": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    wsdl = Path(__file__).resolve().parents[2] / "schemas" / "wsdl" / "tax.wsdl"
    try:
        with connectors.build("tax", {"type": "soap", "wsdl": str(wsdl), "timeout": 5,
                                      "address": f"http://127.0.0.1:{server.server_port}/ws",
                                      "retry": {"attempts": 3, "backoff": 0.01, "jitter": 0}},
                              sleep=lambda s: None) as conn, \
                pytest.raises(PermanentError) as raised:
            conn.call("QueryClearance", {"BusinessNo": "320684-2026-000001"})
    finally:
        server.shutdown()
        server.server_close()

    assert isinstance(raised.value, UnsafeXMLError)
    assert handler.calls == 1  # refused, not retried


@pytest.mark.parametrize("encoding", UTF16)
def test_the_content_policy_refuses_utf16_doctype_files_and_archive_members(tmp_path, encoding):
    from bdchub.bridge.policy import ContentPolicy, quarantine

    document = hostile("billion laughs", encoding)
    (tmp_path / "parcel.xml").write_bytes(document)
    with zipfile.ZipFile(tmp_path / "survey.zip", "w") as zf:
        zf.writestr("survey/parcel.xml", document)
    policy = ContentPolicy()

    for name in ("parcel.xml", "survey.zip"):
        verdict = policy.inspect(tmp_path / name)
        assert not verdict.ok, name
        moved = quarantine(tmp_path / name, verdict, tmp_path / "quarantine")
        assert moved.exists() and not (tmp_path / name).exists()


def test_the_content_policy_names_the_dtd_of_a_utf16_file_read_as_xml(tmp_path):
    # Without a byte order mark UTF-16LE XML begins with "<", so it is sniffed as XML.
    path = tmp_path / "parcel.xml"
    path.write_bytes(hostile("external entity", "utf-16le"))
    from bdchub.bridge.policy import ContentPolicy

    verdict = ContentPolicy().inspect(path)

    assert (verdict.ok, verdict.kind) == (False, "xml")
    assert "DTD" in verdict.reason
